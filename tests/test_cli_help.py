"""Every option of every command has a one-line description; choice options list their choices."""

import argparse

import pytest

from eval.__main__ import build_parser as eval_parser
from pointcloud_sivae import compare, interpolate, reconstruct, sample, sweep, train, view
from shapenet_prep.__main__ import build_parser as prep_parser

from .conftest import REPO


def _parsers():
    yield "train", train.build_parser()
    yield "shapenet_prep", prep_parser()
    yield "sample", sample.build_parser()
    yield "reconstruct", reconstruct.build_parser()
    yield "interpolate", interpolate.build_parser()
    yield "view", view.build_parser()
    yield "compare", compare.build_parser()
    yield "sweep", sweep.build_parser()
    top = eval_parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        yield f"eval {name}", parser


@pytest.mark.parametrize("name,parser", list(_parsers()), ids=[n for n, _ in _parsers()])
def test_every_option_has_help_and_choices_are_listed(name, parser):
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        flag = action.option_strings[-1] if action.option_strings else action.dest
        assert action.help and action.help.strip(), f"{name} {flag} has no help"
        assert "\n" not in action.help, f"{name} {flag}: help is not one line"
        if action.choices:
            listed = "{" + ",".join(map(str, action.choices)) + "}"
            assert listed in text, f"{name} {flag}: choices {listed} not shown"


def test_train_help_explains_the_special_values():
    text = " ".join(train.build_parser().format_help().split())
    assert "0 means the prepared count" in text
    assert "--method {soft-intro,vae,intro}" in text and "--amp {off,bf16,auto}" in text
    assert "--chamfer-backend {auto,torch,numba,keops,pytorch3d}" in text
    assert "--scale-points" in text and "(default: 2048)" in text


@pytest.mark.parametrize("argv,message", [
    (["--batch-size", "1"], "optim.batch_size = 1 is out of range; it must be >= 2"),
    (["--batch-size", "0"], "optim.batch_size = 0 is out of range"),
    (["--z-dim", "0"], "model.z_dim = 0 is out of range; it must be >= 1"),
    (["--z-dim", "-1"], "model.z_dim = -1 is out of range"),
    (["--val-every", "0"], "train.val_every = 0 is out of range"),
    (["--encoder-order", "bn"], "model.encoder_order = 'bn'; choose one of relu-bn, bn-relu"),
    (["--chamfer-backend", "cuda"], "loss.chamfer_backend = 'cuda'; choose one of auto"),
])
def test_out_of_range_flags_are_refused_before_a_run_folder_exists(tmp_path, capsys, argv, message):
    assert train.main(argv + ["--out-dir", str(tmp_path / "runs")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_inference_counts_are_checked_by_argparse(capsys):
    with pytest.raises(SystemExit):
        reconstruct.build_parser().parse_args(["--checkpoint", "x", "--out", "y", "--limit", "0"])
    assert "--limit: must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        reconstruct.build_parser().parse_args(["--checkpoint", "x", "--out", "y", "--limit", "-3"])
    assert "must be >= 1, got -3" in capsys.readouterr().err


COMMANDS = ["python -m pointcloud_sivae.train", "python -m pointcloud_sivae.sample",
            "python -m pointcloud_sivae.reconstruct", "python -m pointcloud_sivae.interpolate",
            "python -m pointcloud_sivae.view", "python -m pointcloud_sivae.compare", "python -m pointcloud_sivae.sweep",
            "python -m shapenet_prep", "python -m eval"] + [
            f"python -m eval {c}" for c in ("generation", "reconstruction", "sets", "ood", "prior-gap")]


def test_every_usage_line_names_the_command_that_prints_it():
    """Each command's --help starts ``usage: <the command as typed>``, so the usage line can be pasted and run."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    def usage(command: str) -> tuple[str, subprocess.CompletedProcess]:
        argv = [sys.executable, *command.split()[1:], "--help"]
        return command, subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(2) as pool:
        for command, proc in pool.map(usage, COMMANDS):
            assert proc.returncode == 0, (command, proc.stderr[-2000:])
            first = proc.stdout.splitlines()[0]
            assert first.startswith(f"usage: {command} ["), (command, first)


def test_one_option_one_meaning_across_commands():
    """An option spelled the same in two commands takes the same values there (the values --help shows)."""
    seen: dict[str, tuple] = {}
    allowed = {"--out", "--split", "--seed", "--seeds", "--data-root", "--category", "--epochs", "--num-points",
               "--config", "--preset", "--methods", "--emd", "--protocol", "--checkpoint-choice", "--num-importance"}
    for name, parser in _parsers():
        for action in parser._actions:
            for flag in action.option_strings:
                shown = action.metavar or ("{" + ",".join(map(str, action.choices)) + "}" if action.choices
                                           else action.dest.upper())
                key = (shown, action.nargs)
                if flag in allowed or flag in ("-h", "--help"):
                    continue  # same meaning, a default or a range of their own (checked by hand)
                assert seen.setdefault(flag, (name, key))[1] == key, (flag, name, seen[flag])
    assert "--num-samples" not in " ".join(a.option_strings[0] for a in _sub("ood")._actions if a.option_strings)


def _sub(name):
    top = eval_parser()
    return next(a for a in top._actions if isinstance(a, argparse._SubParsersAction)).choices[name]


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_is_accepted_before_and_after_the_subcommand(where, tmp_path, capsys):
    from eval.__main__ import main as eval_main

    base = ["generation", "--checkpoint", str(tmp_path / "nothing"), "--device", "cpu"]
    argv = ["--verbose", *base] if where == "before" else [*base, "--verbose"]
    assert eval_main(argv) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert eval_parser().parse_args(argv).verbose is True
    assert eval_parser().parse_args(base).verbose is False


def test_out_dir_and_run_name_with_resume_are_refused(tmp_path, capsys):
    assert train.main(["--resume", str(tmp_path / "run"), "--out-dir", str(tmp_path / "elsewhere")]) == 2
    assert "--out-dir cannot be combined with --resume" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere").exists()
