"""environment.yml (for conda users) must list the same dependencies and bounds as pyproject.toml."""

import re
import tomllib

from .conftest import REPO

CONDA_NAMES = {"torch": "pytorch"}


def _env_specs():
    specs = {}
    for line in (REPO / "environment.yml").read_text().splitlines():
        m = re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+)\s*([<>=!~].*)?$", line)
        if m:
            specs[m.group(1).lower()] = (m.group(2) or "").strip()
    return specs


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = _env_specs()
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    for req in wanted:
        name, spec = re.match(r"^([A-Za-z0-9_.\-]+)(.*)$", req).groups()
        conda_name = CONDA_NAMES.get(name.lower(), name.lower())
        assert conda_name in env, f"{req} from pyproject.toml is missing in environment.yml"
        assert env[conda_name] == spec.strip(), f"{name}: pyproject says {spec!r}, environment.yml {env[conda_name]!r}"


def test_torch_is_pinned_for_every_install():
    assert "torch==" in (REPO / "constraints.txt").read_text()
    setup = (REPO / "scripts" / "setup.sh").read_text()
    installs = [ln for ln in setup.splitlines() if "pip install" in ln]
    assert installs and all("-c constraints.txt" in ln for ln in installs)
