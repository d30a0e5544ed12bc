import torch

from pointcloud_sivae.model import ModelConfig, SoftIntroVAE, frozen_batchnorm_stats


def small_model(**kw):
    torch.manual_seed(0)
    return SoftIntroVAE(ModelConfig(z_dim=8, num_points=64, encoder_channels=(16, 32), encoder_fc=32,
                                    decoder_widths=(32, 64), **kw))


def test_shapes_channels_last():
    m = small_model()
    x = torch.rand(5, 100, 3)  # the encoder accepts any number of points
    mu, logvar = m.encode(x)
    assert mu.shape == logvar.shape == (5, 8)
    assert m.decode(mu).shape == (5, 64, 3)
    z = m.sample_prior(1000)
    assert z.shape == (1000, 8) and abs(z.std().item() - 0.2) < 0.01


def test_encoder_is_permutation_invariant():
    m = small_model().eval()
    x = torch.rand(2, 50, 3)
    torch.testing.assert_close(m.encode(x)[0], m.encode(x[:, torch.randperm(50)])[0])


def test_encode_refuses_channels_first():
    import pytest

    with pytest.raises(ValueError, match=r"expected clouds of shape \(B, N, 3\), got \(2, 3, 50\)"):
        small_model().encode(torch.rand(2, 3, 50))


def test_frozen_batchnorm_stats_normalises_with_batch_stats_but_keeps_running_stats():
    m = small_model()
    x = torch.rand(4, 30, 3) * 3 + 1
    before = {k: v.clone() for k, v in m.state_dict().items() if "running" in k or "num_batches" in k}
    with frozen_batchnorm_stats(m.encoder):
        inside = m.encode(x)[0]
    after = {k: v for k, v in m.state_dict().items() if k in before}
    assert all(torch.equal(before[k], after[k]) for k in before)
    outside = m.encode(x)[0]  # normal training pass: same output, running stats move
    torch.testing.assert_close(inside, outside)
    moved = [k for k in before if "running_mean" in k and not torch.equal(before[k], m.state_dict()[k])]
    assert moved
