"""Every command in the README's and docs' code blocks parses: its module's parser accepts its flags."""

import importlib
import re
import shlex

import pytest

from pointcloud_sivae.runs.config import FLAG_SECTION, RunConfig, explicit_flags, set_field

from .conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MODULES = {  # python -m <module> -> the function that builds its parser
    "pointcloud_sivae.train": "pointcloud_sivae.train",
    "pointcloud_sivae.sample": "pointcloud_sivae.sample",
    "pointcloud_sivae.reconstruct": "pointcloud_sivae.reconstruct",
    "pointcloud_sivae.interpolate": "pointcloud_sivae.interpolate",
    "pointcloud_sivae.view": "pointcloud_sivae.view",
    "pointcloud_sivae.compare": "pointcloud_sivae.compare",
    "pointcloud_sivae.sweep": "pointcloud_sivae.sweep",
    "shapenet_prep": "shapenet_prep.__main__",
    "eval": "eval.__main__",
}
OTHER_PROGRAMS = {"tensorboard", "pip", "conda", "git", "cd", "export", "tar", "unzip", "ls", "rm"}


def _commands():
    """``(file, line, argv)`` of every command line in a ```bash block (continuations joined)."""
    for path in DOCS:
        text = path.read_text()
        for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, flags=re.S):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.split(" #")[0].strip()
                if not line or line.startswith("#"):
                    continue
                yield path.name, line, shlex.split(line)


def _strip_launcher(argv: list[str]) -> list[str]:
    """``[VAR=value ...] python -m X ...`` or ``torchrun ... -m X ...`` -> ``["-m", "X", ...]``."""
    while argv and re.match(r"^[A-Z_]+=", argv[0]):
        argv = argv[1:]
    if argv and argv[0] in ("python", "python3", ".venv/bin/python", "torchrun"):
        return argv[argv.index("-m"):] if "-m" in argv else argv
    return argv


def test_the_readme_opens_with_the_two_commands_and_stays_short():
    readme = [line for f, line, _ in _commands() if f == "README.md"]
    assert readme[:2] == ["bash scripts/train_airplanes.sh", "bash scripts/test.sh"]
    assert ".ci/run" in (REPO / "README.md").read_text() and "scripts/test.sh" in (REPO / ".ci" / "run").read_text()
    assert len((REPO / "README.md").read_text().splitlines()) <= 200
    assert sum(1 for _ in _commands()) > 30  # the docs hold the tutorials


@pytest.mark.parametrize("where,line,argv", list(_commands()), ids=[f"{f}:{ln[:60]}" for f, ln, _ in _commands()])
def test_documented_command_parses(where, line, argv):
    argv = _strip_launcher(argv)
    if argv[0] == "bash":
        assert (REPO / argv[1]).is_file(), f"{where}: {line}: no script {argv[1]}"
        return
    if argv[0] in OTHER_PROGRAMS:
        return
    assert argv[0] == "-m", f"{where}: {line}: not a command this test knows; add it to OTHER_PROGRAMS or fix it"
    module = argv[1]
    assert module in MODULES, f"{where}: {line}: python -m {module} is not a command of the package"
    parser = importlib.import_module(MODULES[module]).build_parser()
    try:
        args = parser.parse_args(argv[2:])
    except SystemExit as exc:
        pytest.fail(f"{where}: `{line}` is refused by python -m {module} (exit {exc.code})")
    if module == "pointcloud_sivae.train":  # config flags are checked when the config is resolved
        cfg = RunConfig()
        for key, value in explicit_flags(args).items():
            set_field(cfg, FLAG_SECTION[key], key, value, where=f"{where}: {line}")
