import json

import pytest

from pointcloud_sivae.runs.config import RunConfig, resolve_config


def test_defaults_are_the_reference_3d_hyperparameters():
    c = RunConfig()
    assert (c.loss.beta_rec, c.loss.beta_kl, c.loss.beta_neg, c.loss.gamma_r) == (20.0, 1.0, 256.0, 1e-8)
    assert (c.model.z_dim, c.model.prior_std, c.optim.lr_e, c.optim.lr_d) == (128, 0.2, 5e-4, 5e-4)
    assert c.optim.milestones == (350, 450, 550) and c.optim.lr_gamma == 0.5 and c.optim.batch_size == 32


def test_file_then_flags_precedence(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[model]\nz_dim = 64\n[optim]\nepochs = 5\nmilestones = [2, 4]\n')
    c = resolve_config(str(f), {"epochs": "7"})
    assert c.model.z_dim == 64 and c.optim.epochs == 7 and c.optim.milestones == (2, 4)


def test_json_round_trip(tmp_path):
    c = resolve_config(None, {"z_dim": "32", "progress": "false", "milestones": "10,20"})
    f = tmp_path / "c.json"
    f.write_text(json.dumps(c.to_dict()))
    assert resolve_config(str(f), {}).to_dict() == c.to_dict()


@pytest.mark.parametrize("text,msg", [
    ("[model]\nzdim = 3\n", "unknown key 'zdim' in \\[model\\]"),
    ("[models]\nz_dim = 3\n", "unknown section \\[models\\]"),
    ("[optim]\nepochs = 'many'\n", "optim.epochs = 'many' is not a valid int"),
])
def test_bad_config_files(tmp_path, text, msg):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ValueError, match=msg):
        resolve_config(str(f), {})


def test_config_files_that_are_no_table_of_sections_are_named(tmp_path):
    """Issue 43: a JSON list gave AttributeError, a binary file a UTF-8 decode error without the file."""
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ValueError, match=f"config file {listed}: the top level must be a table of sections.*list"):
        resolve_config(str(listed), {})
    binary = tmp_path / "bin.json"
    binary.write_bytes(bytes(range(128, 256)))
    with pytest.raises(ValueError, match=f"config file {binary} is not UTF-8 text"):
        resolve_config(str(binary), {})


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_config(str(tmp_path / "nope.toml"), {})
    (tmp_path / "c.yaml").write_text("a: 1")
    with pytest.raises(ValueError, match="expected a .json or .toml"):
        resolve_config(str(tmp_path / "c.yaml"), {})
