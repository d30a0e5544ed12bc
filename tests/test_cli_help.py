"""Every option of every command has a one-line description; choice options list their choices."""

import argparse

import pytest

from eval.__main__ import build_parser as eval_parser
from pointcloud_sivae import interpolate, reconstruct, sample, train, view
from shapenet_prep.__main__ import build_parser as prep_parser


def _parsers():
    yield "train", train.build_parser()
    yield "shapenet_prep", prep_parser()
    yield "sample", sample.build_parser()
    yield "reconstruct", reconstruct.build_parser()
    yield "interpolate", interpolate.build_parser()
    yield "view", view.build_parser()
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
    assert "0 means take it from the prepared data" in text
    assert "--method {soft-intro,vae,intro}" in text and "--amp {off,bf16}" in text
    assert "--chamfer-backend {auto,numba,torch,keops,pytorch3d}" in text
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
