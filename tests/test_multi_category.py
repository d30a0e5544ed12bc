"""One model of several categories (issue 42): the flag, the union's data, balanced epochs, per-category
validation, and each category served by a multi-category checkpoint (splits, mixtures, ids, interpolation)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import SHARED_DATA, SHAPENETPART, require_shared_airplanes, tiny_config

ONET = SHARED_DATA / "onet"


@pytest.fixture(scope="session")
def airplanes_benches(tmp_path_factory) -> Path:
    """Real ShapeNetPart airplanes and Occupancy-Networks benches, 256 points, unit sphere, one root."""
    require_shared_airplanes()
    if not (ONET / "02828884").is_dir():
        pytest.skip(f"the Occupancy-Networks benches are not at {ONET / '02828884'} (../shared/data is absent)")
    from shapenet_prep import PrepareOptions, prepare_category

    root = tmp_path_factory.mktemp("two_categories")
    prepare_category(PrepareOptions(source=SHAPENETPART, category="airplane", out=root, num_points=256,
                                    normalization="unit_sphere", progress=False))
    prepare_category(PrepareOptions(source=ONET, category="bench", out=root, format="onet", num_points=256,
                                    normalization="unit_sphere", progress=False))
    return root


@pytest.fixture(scope="session")
def two_category_run(airplanes_benches, tmp_path_factory) -> Path:
    """One epoch of a small model on airplanes + benches, balanced."""
    from pointcloud_sivae.runs.config import set_field
    from pointcloud_sivae.training.trainer import Trainer

    cfg = tiny_config(airplanes_benches, tmp_path_factory.mktemp("runs"), "ab", epochs=1)
    set_field(cfg, "data", "category", ["plane", "02828884"])
    set_field(cfg, "data", "category_sampling", "balanced")
    Trainer.new_run(cfg).fit()
    return Path(cfg.train.out_dir) / "ab"


def test_category_takes_one_name_as_before_or_several():
    from pointcloud_sivae.runs.config import resolve_config

    assert resolve_config(None, {"category": ["plane"]}).data.category == "airplane"  # one: a str, as ever
    assert resolve_config(None, {"category": ["plane", "02828884"]}).data.category == ["airplane", "bench"]
    assert resolve_config(None, {}, "official").data.category == ["car", "airplane"]  # the reference's classes
    with pytest.raises(ValueError, match="named twice"):
        resolve_config(None, {"category": ["airplane", "plane"]})
    with pytest.raises(ValueError, match="unknown category 'chiar'"):
        resolve_config(None, {"category": ["airplane", "chiar"]})
    with pytest.raises(ValueError, match="choose one of proportional, balanced"):
        resolve_config(None, {"category_sampling": "equal"})


def test_the_train_flag_reads_several_categories(tmp_path):
    from pointcloud_sivae.runs.config import explicit_flags, resolve_config
    from pointcloud_sivae.train import build_parser

    args = build_parser().parse_args(["--category", "airplane", "car", "--category-sampling", "balanced"])
    cfg = resolve_config(None, explicit_flags(args))
    assert (cfg.data.category, cfg.data.category_sampling) == (["airplane", "car"], "balanced")
    toml = tmp_path / "c.toml"
    toml.write_text('[data]\ncategory = ["car", "chair"]\n')
    assert resolve_config(str(toml), {}).data.category == ["car", "chair"]


def test_the_union_holds_each_category_as_it_is_alone(airplanes_benches):
    from pointcloud_sivae.data.prepared import load_categories, load_split

    union = load_categories(airplanes_benches, ["airplane", "bench"], "val", num_points=128, subset_seed=3)
    alone = [load_split(airplanes_benches, c, "val", num_points=128, subset_seed=3) for c in ("airplane", "bench")]
    assert union.categories == ["airplane", "bench"]
    assert union.ids == alone[0].ids + alone[1].ids
    assert torch.equal(union.labels, torch.tensor([0] * len(alone[0].ids) + [1] * len(alone[1].ids)))
    for k, part in enumerate(alone):  # the same points, normalisation and fixed subsets, bit for bit
        mine = union.of_category(part.categories[0])
        assert torch.equal(mine.points, part.points) and torch.equal(mine.scale, part.scale)
        assert mine.ids == part.ids and mine.manifest["category"] == part.categories[0]
    assert union.manifest["counts"]["bench"]["val"] == len(alone[1].ids)
    with pytest.raises(ValueError, match="not one this run was trained on"):
        union.of_category("car")
    one = load_categories(airplanes_benches, "airplane", "val")  # one category: load_split itself
    assert one.categories == ["airplane"] and not one.labels.any()


def test_a_missing_or_mismatched_category_is_named(airplanes_benches, tmp_path):
    from pointcloud_sivae.data.prepared import MissingDataError, load_categories

    with pytest.raises(MissingDataError, match="no prepared data for 'car'.*shapenet_prep"):
        load_categories(airplanes_benches, ["airplane", "car"], "train")
    root = tmp_path / "root"
    shutil.copytree(airplanes_benches, root)
    manifest = json.loads((root / "bench" / "manifest.json").read_text())
    manifest["normalization"] = {"method": "bbox"}
    (root / "bench" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="normalised differently.*airplane: unit_sphere, bench: bbox"):
        load_categories(root, ["airplane", "bench"], "train")
    manifest["normalization"], manifest["num_points"] = {"method": "unit_sphere"}, 512
    (root / "bench" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="different point counts.*airplane: 256, bench: 512"):
        load_categories(root, ["airplane", "bench"], "train")


def test_balanced_epochs_give_every_category_an_equal_share():
    from pointcloud_sivae.training.trainer import balanced_order

    labels = torch.tensor([0] * 85 + [1] * 14)
    order = balanced_order(labels, 2, torch.Generator().manual_seed(5))
    assert len(order) == 99 and order.max() < 99
    counts = torch.bincount(labels[order], minlength=2).tolist()
    assert counts == [50, 49]  # the remainder to the first category
    benches = order[labels[order] == 1]
    assert set(benches.tolist()) == set(range(85, 99))  # every bench, drawn 3 or 4 times
    assert torch.equal(order, balanced_order(labels, 2, torch.Generator().manual_seed(5)))  # seeded


def test_training_on_two_categories_mixes_them_and_validates_each(two_category_run):
    from pointcloud_sivae.training.trainer import Trainer

    config = json.loads((two_category_run / "config.json").read_text())
    assert config["data"]["category"] == ["airplane", "bench"]
    assert config["data"]["category_sampling"] == "balanced"
    session = json.loads((two_category_run / "run_info.json").read_text())["sessions"][-1]
    assert session["categories"]["bench"]["train"] > 0 and session["category_sampling"] == "balanced"
    record = json.loads((two_category_run / "metrics.jsonl").read_text().splitlines()[-1])
    for name in ("airplane", "bench"):
        assert np.isfinite(record[f"val_chamfer/{name}"]) and 0 <= record[f"val_cov_cd/{name}"] <= 1
    shares = record["val_prior_share/airplane"] + record["val_prior_share/bench"]
    assert shares == pytest.approx(1.0)
    trainer = Trainer.resume(two_category_run, {"epochs": 2})
    first = trainer.batches(2)[0]
    assert len(set(trainer.train_labels[first].tolist())) == 2  # a batch holds both categories
    shown = trainer.validator.shown_rows(len(trainer.val_points), True)  # TensorBoard: the categories in turn
    assert trainer.val_labels[shown[:4]].tolist() == [0, 1, 0, 1] and sorted(shown.tolist()) == list(
        range(len(trainer.val_points)))


def test_a_two_category_model_serves_each_category(two_category_run, tmp_path):
    from eval.__main__ import main as eval_main
    from pointcloud_sivae.inference import Inference, ShapeNotFoundError
    from pointcloud_sivae.interpolate import main as interpolate_main
    from pointcloud_sivae.models.latent_density import Sampler
    from pointcloud_sivae.sample import main as sample_main

    inf = Inference(two_category_run, "cpu")
    assert inf.categories == ["airplane", "bench"]
    benches = inf.split("test", category="bench")
    assert benches.ids == inf.manifest["per_category"]["bench"]["splits"]["test"]
    mixture = Sampler("gmm-aggregate", components=2)
    assert inf.latents(3, 0, mixture, "bench").shape == (3, 16)
    bench_mu = inf.train_posteriors("bench")[0]
    assert len(bench_mu) == len(inf.split("train", category="bench").ids)
    with pytest.raises(ValueError, match="the prior is shared"):
        inf.latents(3, 0, Sampler(), "bench")
    with pytest.raises(ValueError, match="trained on airplane, bench"):
        inf.split("test", category="car")
    label, cloud = inf.shape(f"bench:{benches.ids[0]}")
    assert label == f"bench:test:{benches.ids[0]}" and np.array_equal(cloud, benches.points[0].numpy())
    with pytest.raises(ShapeNotFoundError, match="bench data"):
        inf.shape("bench:" + inf.split("test", category="airplane").ids[0])

    plane = inf.split("test", category="airplane").ids[0]
    assert interpolate_main(["--checkpoint", str(two_category_run), "--from", f"airplane:{plane}", "--to",
                             f"bench:{benches.ids[0]}", "--steps", "4", "--no-render", "--out",
                             str(tmp_path / "interp")]) == 0
    meta = json.loads((tmp_path / "interp" / "meta.json").read_text())
    assert (meta["from"], meta["to"]) == (f"airplane:test:{plane}", f"bench:test:{benches.ids[0]}")
    assert sample_main(["--checkpoint", str(two_category_run), "--category", "bench", "-n", "2", "--sampler",
                        "gmm-aggregate", "--gmm-components", "2", "--no-render", "--out", str(tmp_path / "s")]) == 0
    assert json.loads((tmp_path / "s" / "meta.json").read_text())["category"] == "bench"

    common = ["--checkpoint", str(two_category_run), "--split", "test", "--protocol", "none", "--emd", "none",
              "--progress", "false"]
    assert eval_main(["generation", *common, "--category", "bench", "--sampler", "gmm-aggregate",
                      "--gmm-components", "2", "--out", str(tmp_path / "bench.json")]) == 0
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert bench["category"] == "bench" and bench["num_reference"] == len(benches.ids)
    assert eval_main(["generation", *common, "--out", str(tmp_path / "union.json")]) == 0
    union = json.loads((tmp_path / "union.json").read_text())
    by = union["by_category"]
    assert set(by) == {"airplane", "bench"}
    assert by["airplane"]["nearest-share"]["mean"] + by["bench"]["nearest-share"]["mean"] == pytest.approx(1.0)
    assert eval_main(["generation", *common, "--category", "bench", "--out", str(tmp_path / "x.json")]) == 2


def test_a_one_category_checkpoint_from_before_loads_and_resumes(trained_run, tmp_path):
    """A run saved before data.category_sampling existed: read as proportional, resumed unchanged."""
    from pointcloud_sivae.inference import Inference
    from pointcloud_sivae.training.checkpoint import save_checkpoint
    from pointcloud_sivae.training.trainer import Trainer

    old = tmp_path / "old"
    shutil.copytree(trained_run, old)
    config = json.loads((old / "config.json").read_text())
    del config["data"]["category_sampling"]
    (old / "config.json").write_text(json.dumps(config))
    state = torch.load(old / "checkpoints" / "last.pt", weights_only=True)
    del state["config"]["data"]["category_sampling"]
    state.pop("checkpoint_version")
    save_checkpoint(state, old / "checkpoints" / "last.pt")
    inf = Inference(old, "cpu")
    assert inf.categories == ["airplane"] and inf.category_key("plane") is None
    assert inf.split("val", category="airplane").ids == inf.split("val").ids
    trainer = Trainer.resume(old, {"epochs": 2})
    assert trainer.cfg.data.category_sampling == "proportional"
    g = torch.Generator().manual_seed(trainer.cfg.train.seed * 1_000_003 + 2)  # one category: the former order
    assert torch.equal(torch.cat(trainer.batches(2)), torch.randperm(len(trainer.train_points), generator=g)[
        : sum(len(b) for b in trainer.batches(2))])
