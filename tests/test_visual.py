"""Sampling, interpolation, PLY output, headless rendering and the viewer."""

import json
import sys

import numpy as np
import pytest
import torch

from pointcloud_sivae.inference import Inference
from pointcloud_sivae.interpolate import main as interpolate_main
from pointcloud_sivae.models.latent import interpolate
from pointcloud_sivae.utils.ply import read_points, write_ply
from pointcloud_sivae.reconstruct import main as reconstruct_main
from pointcloud_sivae.sample import main as sample_main
from pointcloud_sivae.view import Player, Sequence
from pointcloud_sivae.view import main as view_main

BACKGROUND_RGB = 255


def foreground(img: np.ndarray) -> np.ndarray:
    """Mask of pixels that are not the white background."""
    return (img < BACKGROUND_RGB - 8).any(axis=2)


def centroid_x(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[1].mean() / mask.shape[1])


# ----- latent paths ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["slerp", "linear"])
def test_interpolation_endpoints_are_exact(path):
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(16, generator=g), torch.randn(16, generator=g)
    z = interpolate(z0, z1, 7, path)
    assert z.shape == (7, 16) and torch.equal(z[0], z0) and torch.equal(z[-1], z1)


def test_slerp_keeps_the_norm_and_linear_is_affine():
    z0 = torch.tensor([1.0, 0.0, 0.0])
    z1 = torch.tensor([0.0, 1.0, 0.0])
    s = interpolate(z0, z1, 5, "slerp")
    torch.testing.assert_close(s.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(s[2], torch.tensor([2**-0.5, 2**-0.5, 0.0]))
    torch.testing.assert_close(interpolate(z0, z1, 3, "linear")[1], torch.tensor([0.5, 0.5, 0.0]))
    with pytest.raises(ValueError, match="steps must be at least 2"):
        interpolate(z0, z1, 1)
    with pytest.raises(ValueError, match="unknown path"):
        interpolate(z0, z1, 3, "bezier")


# ----- PLY -----------------------------------------------------------------------------------

def test_ply_round_trip_is_exact(tmp_path):
    pts = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)
    write_ply(tmp_path / "a.ply", pts)
    assert np.array_equal(read_points(tmp_path / "a.ply"), pts)
    with pytest.raises(ValueError, match=r"must be \(N, 3\)"):
        write_ply(tmp_path / "b.ply", pts[:, :2])
    with pytest.raises(ValueError, match="not found"):
        read_points(tmp_path / "missing.ply")


# ----- headless rendering ---------------------------------------------------------------------

def test_headless_render_shows_the_cloud_where_expected(airplanes_256):
    from pointcloud_sivae.utils.render import ROLE_COLORS, HeadlessRenderer, side_by_side_offsets

    plane = np.load(airplanes_256 / "airplane" / "val.npz")["points"][0]
    left, right = side_by_side_offsets(2)
    with HeadlessRenderer() as r:
        empty = r.render([plane + 100.0], [ROLE_COLORS["real"]])  # far outside the framed cube
        centre = r.render([plane], [ROLE_COLORS["real"]])
        pair = r.render([plane, plane], [ROLE_COLORS["real"], ROLE_COLORS["reconstruction"]],
                        offsets=[left, right])
    assert empty.shape == centre.shape == (360, 480, 3)
    assert foreground(empty).sum() == 0
    mask = foreground(centre)
    assert mask.mean() > 0.01 and abs(centroid_x(mask) - 0.5) < 0.15
    blue = foreground(pair) & (pair[..., 2] > pair[..., 0])  # input: blue hue
    orange = foreground(pair) & (pair[..., 0] > pair[..., 2])  # reconstruction: orange hue
    assert blue.sum() > 200 and orange.sum() > 200
    assert centroid_x(blue) < 0.45 < 0.55 < centroid_x(orange)


def test_one_cloud_shown_twice_side_by_side_gives_the_same_image_up_to_the_shift(airplanes_256):
    """A picture of pairs must show every cloud from one direction: with a perspective camera, clouds
    placed side by side in one scene are seen from two angles, and one shape looks like two."""
    from pointcloud_sivae.utils.render import ROLE_COLORS, HeadlessRenderer, side_by_side_offsets

    plane = np.load(airplanes_256 / "airplane" / "val.npz")["points"][1]
    with HeadlessRenderer() as r:
        row = r.render_row([plane, plane], [ROLE_COLORS["real"]] * 2)  # pictures: reconstruct, view --headless
        scene = r.render([plane, plane], [ROLE_COLORS["real"]] * 2, offsets=side_by_side_offsets(2))  # the viewer
    w = row.shape[1] // 2
    assert row.shape == (360, 960, 3) and foreground(row[:, :w]).sum() > 200
    np.testing.assert_array_equal(row[:, :w], row[:, w:])
    left, right = foreground(scene[:, : scene.shape[1] // 2]), foreground(scene[:, scene.shape[1] // 2:])

    def crop(mask):
        ys, xs = np.nonzero(mask)
        return mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]

    a, b = crop(left), crop(right)  # the same silhouette, shifted: near-parallel projection in one scene
    assert abs(a.shape[0] - b.shape[0]) <= 2 and abs(a.shape[1] - b.shape[1]) <= 2
    h, w2 = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    overlap = (a[:h, :w2] & b[:h, :w2]).sum() / max((a[:h, :w2] | b[:h, :w2]).sum(), 1)
    assert overlap > 0.6


# ----- commands on a trained checkpoint ------------------------------------------------------

def test_interpolate_command_endpoints_ply_strip_gif(trained_run, tmp_path):
    inf = Inference(trained_run, "cpu")
    test_ids = inf.manifest["splits"]["test"]
    out = tmp_path / "interp"
    assert interpolate_main(["--checkpoint", str(trained_run), "--from", test_ids[0], "--to", test_ids[1],
                             "--steps", "5", "--out", str(out), "--device", "cpu"]) == 0
    with np.load(out / "clouds.npz") as z:
        clouds = z["interpolation"]
    assert clouds.shape == (5, 256, 3)
    # endpoints equal the decodings of the endpoint latents (posterior means)
    ends = np.stack([inf.shape(test_ids[0])[1], inf.shape(test_ids[1])[1]])
    expected = inf.frame.to_evaluation(inf.decode(inf.encode(ends)))
    np.testing.assert_allclose(clouds[[0, -1]], expected, atol=1e-6)
    for k in range(5):  # written PLY files read back identical
        assert np.array_equal(read_points(out / f"interpolation_{k:02d}.ply"), clouds[k])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["path"] == "slerp" and meta["t"] == [0.0, 0.25, 0.5, 0.75, 1.0]

    from PIL import Image

    strip = np.asarray(Image.open(out / "strip.png").convert("RGB"))
    assert strip.shape == (360, 5 * 480, 3)
    for k in range(5):  # every cell shows a cloud near its centre
        cell = foreground(strip[:, k * 480 : (k + 1) * 480])
        assert cell.mean() > 0.005 and abs(centroid_x(cell) - 0.5) < 0.2
    grid = np.asarray(Image.open(out / "grid.png").convert("RGB"))  # 5 steps: one row of five, as the strip
    np.testing.assert_array_equal(grid, strip)
    gif = Image.open(out / "interpolation.gif")
    assert gif.is_animated and gif.size == (480, 360) and gif.info["loop"] == 0


def test_tiles_fill_rows_and_pad_the_last():
    from pointcloud_sivae.utils.render import tile

    images = [np.full((2, 3, 3), k, np.uint8) for k in range(6)]
    t = tile(images, per_row=4)
    assert t.shape == (4, 12, 3)
    assert (t[:2, :3] == 0).all() and (t[2:, 3:6] == 5).all() and (t[2:, 6:] == 255).all()
    assert tile(images[:3], per_row=4).shape == (2, 9, 3)  # one short row: no padding


def test_the_second_view_turns_the_shapes_without_changing_them():
    from pointcloud_sivae.utils.render import O3D_FRONT, O3D_UP, turned

    x = np.random.default_rng(0).normal(size=(2, 50, 3)).astype(np.float32)
    y = turned(x, 135.0, 20.0)
    assert y.dtype == np.float32 and y.shape == x.shape
    d = lambda c: np.linalg.norm(c[:, None] - c[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(d(y[0]), d(x[0]), atol=1e-5)  # a rotation: the shape is the same
    np.testing.assert_allclose(turned(x, 360.0, 0.0), x, atol=1e-5)
    up = np.asarray(O3D_UP, np.float32)[None, None]
    np.testing.assert_allclose(turned(up, 90.0, 0.0), up, atol=1e-6)  # the azimuth turns about the up axis
    tilted = turned(up, 0.0, 20.0)[0, 0]  # the tilt brings the up axis towards the camera by 20 degrees
    front = np.asarray(O3D_FRONT) / np.linalg.norm(O3D_FRONT)
    assert tilted @ front > up[0, 0] @ front


def test_gif_plays_forth_and_back(tmp_path):
    from PIL import Image

    from pointcloud_sivae.utils.render import save_gif

    frames = [np.full((8, 8, 3), 40 * k, np.uint8) for k in range(5)]
    save_gif(tmp_path / "a.gif", frames, frame_ms=50)
    gif = Image.open(tmp_path / "a.gif")
    assert gif.n_frames == 8  # 0 1 2 3 4 3 2 1
    seen = []
    for k in range(gif.n_frames):
        gif.seek(k)
        seen.append(int(np.asarray(gif.convert("L"))[0, 0]))
    assert seen == sorted(seen[:5]) + sorted(seen[5:], reverse=True) and seen[4] > seen[0]


def test_interpolate_between_prior_samples_and_files(trained_run, tmp_path):
    inf = Inference(trained_run, "cpu")
    z = inf.prior(2, 3)
    assert interpolate_main(["--checkpoint", str(trained_run), "--from", "prior:3", "--to", "prior:4",
                             "--steps", "3", "--no-render", "--out", str(tmp_path / "p"), "--device", "cpu"]) == 0
    with np.load(tmp_path / "p" / "latents.npz") as lat:
        assert np.array_equal(lat["z"][0], z[0].numpy())
    big = np.random.default_rng(0).uniform(-0.3, 0.3, (300, 3)).astype(np.float32)
    write_ply(tmp_path / "big.ply", big)
    args = ["--checkpoint", str(trained_run), "--from", str(tmp_path / "big.ply"), "--to", "prior:0",
            "--no-render", "--device", "cpu", "--out", str(tmp_path / "f")]
    assert interpolate_main(args) == 2  # 300 points, model has 256
    assert interpolate_main(args + ["--resample"]) == 0


def test_sample_and_reconstruct_commands(trained_run, tmp_path):
    for seed_run in ("a", "b"):
        assert sample_main(["--checkpoint", str(trained_run), "-n", "3", "--seed", "7", "--no-render",
                            "--out", str(tmp_path / seed_run), "--device", "cpu"]) == 0
    a, b = np.load(tmp_path / "a" / "clouds.npz")["sample"], np.load(tmp_path / "b" / "clouds.npz")["sample"]
    assert a.shape == (3, 256, 3) and np.array_equal(a, b)  # seeded
    assert np.array_equal(read_points(tmp_path / "a" / "sample_001.ply"), a[1])
    out = tmp_path / "rec"
    assert reconstruct_main(["--checkpoint", str(trained_run), "--split", "val", "--limit", "2",
                             "--out", str(out), "--device", "cpu"]) == 0
    with np.load(out / "clouds.npz") as z:
        assert z["input"].shape == z["reconstruction"].shape == (2, 256, 3)
    assert len(json.loads((out / "meta.json").read_text())["chamfer_distance"]["values"]) == 2
    assert (out / "pairs.png").is_file()
    refined = tmp_path / "refined"  # the amortisation gap: the best latents of 20 Adam steps, decoder fixed
    assert reconstruct_main(["--checkpoint", str(trained_run), "--split", "val", "--limit", "2", "--no-render",
                             "--refine-steps", "20", "--out", str(refined), "--device", "cpu"]) == 0
    meta = json.loads((refined / "meta.json").read_text())
    plain, better = meta["chamfer_distance"]["values"], meta["refined"]["chamfer_distance"]["values"]
    assert all(b <= a * (1 + 1e-4) for a, b in zip(plain, better)) and sum(better) < sum(plain)
    with np.load(refined / "clouds.npz") as z:
        assert z["refined"].shape == (2, 256, 3)
    # the viewer renders the same folder headless: input left (blue), reconstruction right (orange)
    assert view_main([str(out), "--headless", "--out", str(tmp_path / "frames")]) == 0
    from PIL import Image

    frame = np.asarray(Image.open(tmp_path / "frames" / "frame_000.png").convert("RGB"))
    blue = foreground(frame) & (frame[..., 2] > frame[..., 0])
    orange = foreground(frame) & (frame[..., 0] > frame[..., 2])
    assert blue.sum() > 100 and orange.sum() > 100 and centroid_x(blue) < centroid_x(orange)
    assert len(Sequence(out).frames) == 2


def test_errors(trained_run, tmp_path, capsys, monkeypatch):
    base = ["--checkpoint", str(trained_run), "--no-render", "--device", "cpu", "--out", str(tmp_path / "x")]
    assert interpolate_main(base + ["--from", "not-an-id", "--to", "prior:0"]) == 2
    assert "neither a point-cloud file nor a model id" in capsys.readouterr().err
    assert sample_main(["--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "y")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert reconstruct_main(["--checkpoint", str(trained_run), "--ids", "zzz", "--no-render", "--device", "cpu",
                             "--out", str(tmp_path / "z")]) == 2
    assert "ids not in the test split" in capsys.readouterr().err
    assert view_main([str(tmp_path / "nothing")]) == 2
    assert "nothing not found; write one with python -m pointcloud_sivae.interpolate" in capsys.readouterr().err
    (tmp_path / "seq").mkdir()
    np.savez(tmp_path / "seq" / "clouds.npz", interpolation=np.zeros((2, 4, 3), np.float32))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert view_main([str(tmp_path / "seq")]) == 2
    err = capsys.readouterr().err
    assert "no display for an interactive window" in err and "--headless --out" in err
    from pointcloud_sivae.utils.render import RenderError

    with pytest.raises(RenderError, match="no display"):
        Player(Sequence(tmp_path / "seq"))
    assert view_main([str(tmp_path / "seq"), "--headless"]) == 2
    assert "--headless needs --out" in capsys.readouterr().err


def test_missing_open3d_names_the_extra(monkeypatch):
    from pointcloud_sivae.utils import render

    monkeypatch.setitem(sys.modules, "open3d", None)
    with pytest.raises(ImportError, match=r"pip install 'pointcloud-sivae\[viewer\]'"):
        render.import_open3d()
