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


# Imported top-level modules whose distribution has another name.
DISTRIBUTIONS = {"PIL": "pillow", "sklearn": "scikit-learn", "torch_geometric": "torch-geometric", "yaml": "pyyaml"}
# Optional backends with no installable build on PyPI: used when present, never declared.
NOT_ON_PYPI = {"pytorch3d"}
PACKAGES = ("pointcloud_sivae", "shapenet_prep", "eval")


def _imported_modules() -> dict[str, str]:
    """Top-level third-party modules imported anywhere in the package: ``{module: first file}``."""
    import ast
    import sys

    found: dict[str, str] = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in PACKAGES:
                        found.setdefault(top, str(path.relative_to(REPO)))
    return found


def _requirement_names(reqs) -> set[str]:
    return {re.match(r"^([A-Za-z0-9_.\-]+)", r).group(1).lower() for r in reqs}


def test_every_imported_module_is_a_declared_dependency():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = _requirement_names(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared |= _requirement_names(extra)
    env = _env_specs()
    imported = _imported_modules()
    assert {"torch", "numpy", "numba", "llvmlite", "sklearn", "PIL"} <= imported.keys()  # the scan sees them
    for module, where in imported.items():
        if module in NOT_ON_PYPI:
            continue
        dist = DISTRIBUTIONS.get(module, module).lower()
        assert dist in declared, f"{where} imports {module}, but pyproject.toml does not declare {dist}"
        assert CONDA_NAMES.get(dist, dist) in env, f"{where} imports {module}, but environment.yml lacks {dist}"


def test_python_requirement_is_311_everywhere():
    """config.py imports tomllib (Python 3.11+)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert "python=3.11" in (REPO / "environment.yml").read_text()
    assert "Python 3.11" in (REPO / "README.md").read_text()
