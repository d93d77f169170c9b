import importlib.util
import math
import time

import pytest
import torch
from torch import nn

from occbench.data.batches import Batch
from occbench.methods import barlow_twins_loss
from occbench.plugins import PluginInfo, Registry
from occbench_plugins import pstl
from occbench_plugins.pstl import (
    DEGREES,
    PSTL,
    barlow_twins_projector,
    draw_from_multiset,
    graph_degrees,
    motion_attention_temporal_mask,
)
from tests.plugins.stand_ins import with_double

PSTL_DEGREES = [3, 2, 2, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 1, 4, 1, 2, 1, 2]  # model.py, 0-based
STGCN_EXISTS = importlib.util.find_spec("occbench.nn.stgcn") is not None


TinyPSTL = with_double(PSTL)


def make_batch(n=32, t=50, seed=0, missing=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, t, 25, 2, generator=g).cumsum(2) * 0.1
    missing = torch.zeros(n, 25, dtype=torch.bool) if missing is None else missing
    return Batch(x, torch.ones(n, t, 25, 2, dtype=torch.bool), torch.zeros(n, dtype=torch.long), missing,
                 torch.arange(n))


def test_degrees_come_from_the_graph_and_equal_the_published_list():
    assert graph_degrees().tolist() == PSTL_DEGREES and graph_degrees().sum() == 48


def test_matm_drops_the_high_motion_frames_and_keeps_the_order():
    n, t, mask_frame = 4, 50, 10
    steps = torch.full((n, t), 0.01)
    loud = [torch.randperm(t - 1, generator=torch.Generator().manual_seed(i))[:mask_frame] for i in range(n)]
    for i, frames in enumerate(loud):
        steps[i, frames] = 1.0 + torch.arange(mask_frame) * 0.1  # x[t+1] - x[t] large for these t
    position = torch.cat([torch.zeros(n, 1), steps[:, :-1].cumsum(1)], dim=1)  # strictly increasing per sample
    x = position[:, None, :, None, None].expand(n, 3, t, 25, 2).contiguous()
    out = motion_attention_temporal_mask(x, mask_frame, torch.Generator().manual_seed(0))
    assert out.shape == (n, 3, t - 2 * mask_frame, 25, 2)
    ranks = []
    for i in range(n):
        frames = torch.searchsorted(position[i], out[i, 0, :, 0, 0].contiguous())  # back to frame numbers
        assert torch.equal(position[i, frames], out[i, 0, :, 0, 0])
        assert (frames.diff() > 0).all()  # original order
        assert not set(frames.tolist()) & set(loud[i].tolist())  # the loud frames are gone
        calm = [f for f in range(t) if f not in set(loud[i].tolist())]
        ranks.append([calm.index(f) for f in frames.tolist()])
    assert all(r == ranks[0] for r in ranks)  # one random subset of positions for the whole batch


def test_matm_needs_frames_left():
    with pytest.raises(Exception, match="mask_frame"):
        motion_attention_temporal_mask(torch.zeros(2, 3, 20, 25, 2), 10, None)


def test_csm_draws_follow_the_degree_multiset():
    g, k = torch.Generator().manual_seed(0), 8
    draws = torch.stack([draw_from_multiset(DEGREES, k, g) for _ in range(10000)])  # (D, k)
    counts = torch.zeros(len(draws), 25, dtype=torch.long).scatter_add_(1, draws, torch.ones_like(draws))
    assert (counts <= torch.tensor(PSTL_DEGREES)).all()  # without replacement: never more than deg(j) times
    expected = torch.tensor([1 - math.comb(48 - d, k) / math.comb(48, k) for d in PSTL_DEGREES], dtype=torch.float64)
    frequency = (counts > 0).double().mean(0)
    assert torch.allclose(frequency, expected, atol=0.02)  # joint 20 (deg 4) ~0.53, joint 3 (deg 1) ~0.17
    assert (counts > 0).sum(1).double().mean() == pytest.approx(7.3456, abs=0.03)  # duplicates: < 8 unique


def test_projector_has_the_published_shape():
    with torch.device("meta"):
        projector = barlow_twins_projector(256, 6144)
    linears = [m for m in projector if isinstance(m, nn.Linear)]
    assert [m.bias for m in linears] == [None] * 3
    assert [type(m).__name__ for m in projector] == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear"]
    expected = 256 * 6144 + 2 * 6144 * 6144 + 2 * (2 * 6144)  # three bias-free Linears + two affine BNs
    assert sum(p.numel() for p in projector.parameters()) == expected == 77_094_912


def test_views_reach_the_encoder_as_specified():
    method = TinyPSTL({"projector_dim": 64})
    batch = make_batch(8)
    batch.mask[:, :, 5] = False
    batch.x[:, :, :, 5] = 1e6  # garbage at an occluded joint must not survive the augmentations
    losses = method.training_step(batch, 0, torch.Generator().manual_seed(1))
    assert set(losses) == {"loss", "loss_temporal", "loss_spatial"}
    assert torch.allclose(losses["loss"], losses["loss_temporal"] + losses["loss_spatial"])
    calls = method.encoders["joint"].calls
    (anchor, a_ignore), (temporal, t_ignore), (spatial, s_ignore) = ((c.x, c.ignore_joints) for c in calls)
    assert all(c.mask is not None and c.mask.shape == (c.x.shape[0], *c.x.shape[2:]) for c in calls)
    assert not calls[0].mask[:, :, 5].any() and not calls[1].mask[:, :, 5].any()  # the occluded joint, in each view
    assert anchor.shape == spatial.shape == (8, 3, 50, 25, 2) and temporal.shape == (8, 3, 30, 25, 2)
    assert a_ignore is None and t_ignore is None and 1 <= len(s_ignore) <= 8 and s_ignore == sorted(set(s_ignore))
    assert all(view.abs().max() < 1e3 for view in (anchor, temporal, spatial))
    assert not torch.equal(anchor, spatial)  # independently augmented
    with torch.no_grad():  # L = L_BT(anchor, MATM view) + L_BT(anchor, CSM view), one shared encoder and projector
        z = [method.projector(method.encoders["joint"](view, call.mask, ignore)) for view, ignore, call in
             ((anchor, None, calls[0]), (temporal, None, calls[1]), (spatial, s_ignore, calls[2]))]
    assert torch.allclose(losses["loss_temporal"], barlow_twins_loss(z[0], z[1], 2e-4))
    assert torch.allclose(losses["loss_spatial"], barlow_twins_loss(z[0], z[2], 2e-4))


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    method = TinyPSTL({"projector_dim": 64, "mask_frame": 4}).train()
    batch = make_batch(16, t=24)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)

    def loss(seed=7):
        with torch.no_grad():
            return method.training_step(batch, 0, torch.Generator().manual_seed(seed))["loss"].item()

    before = loss()
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        optimizer.zero_grad()
        method.training_step(batch, 0, g)["loss"].backward()
        optimizer.step()
    assert loss() < 0.7 * before


def test_registered():
    registry = Registry("methods")
    registry._current = PluginInfo("pstl", "occbench", "0")
    pstl.occbench_register_methods(registry)
    assert registry["pstl"] is PSTL


@pytest.mark.skipif(not STGCN_EXISTS, reason="occbench.nn.stgcn not written yet")
def test_trains_with_the_real_stgcn():
    torch.manual_seed(0)
    method = PSTL({"projector_dim": 64, "mask_frame": 4, "encoder": {"hidden_channels": 16, "hidden_dim": 256}})
    batch = make_batch(8, t=20)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    before = method.encoders["joint"].data_bn.weight.detach().clone()
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(3):
        optimizer.zero_grad()
        loss = method.training_step(batch, 0, g)["loss"]
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
    assert time.perf_counter() - start < 60
    assert not torch.equal(before, method.encoders["joint"].data_bn.weight)
    assert method.feature_encoder().eval()(batch.x).shape == (8, 256)
