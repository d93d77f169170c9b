import math

import numpy as np
import torch

from occbench.data.batches import Batch
from occbench.plugins import PluginInfo, Registry
from occbench_plugins import opstl
from occbench_plugins.opstl import OPSTL, frequency_degrees
from occbench_plugins.pstl import DEGREES, PSTL, draw_from_multiset
from tests.plugins.stand_ins import with_double

TinyOPSTL = with_double(OPSTL)


TinyPSTL = with_double(PSTL)


def batch_with(missing: torch.Tensor) -> Batch:
    n = len(missing)
    x = torch.randn(n, 3, 24, 25, 2, generator=torch.Generator().manual_seed(0))
    return Batch(x, torch.ones(n, 24, 25, 2, dtype=torch.bool), torch.zeros(n, dtype=torch.long), missing,
                 torch.arange(n))


def test_frequency_degrees_worked_example():
    n = torch.zeros(25, dtype=torch.long) + 2
    n[[0, 3, 7, 11, 20]] = torch.tensor([5, 6, 9, 12, 2])
    # min 2, max 12: f = floor(1 + 3 (n - 2) / 10.001): 5 -> 1.9 -> 1, 6 -> 2.2 -> 2, 9 -> 3.1 -> 3, 12 -> 3.9997 -> 3
    f = frequency_degrees(n)
    expected = [1] * 25
    expected[3], expected[7], expected[11] = 2, 3, 3
    assert f.tolist() == expected
    pool = sorted(j for j, count in enumerate(expected) for _ in range(count))
    assert len(pool) == 25 + 1 + 2 + 2
    draws = draw_from_multiset(f, 9, torch.Generator().manual_seed(0))
    assert len(draws) == 9 and all((draws == j).sum() <= expected[j] for j in range(25))
    # the epsilon decides exact thirds of the range: 3 (n - min) / (max - min) = 1, 2, 3 -> f = 1, 2, 3 (not 2, 3, 4)
    assert frequency_degrees(torch.tensor([0, 1, 2, 3] * 6 + [0])).tolist() == [1, 1, 2, 3] * 6 + [1]


def test_frequency_degrees_match_the_published_formula():
    rng = np.random.default_rng(0)
    for _ in range(500):
        n = rng.integers(0, rng.integers(1, 200), 25)
        if n.sum() == 0:
            continue
        published = ((n - n.min()) * (1 / (n.max() - n.min() + 0.001) * 3) + 1).astype(np.uint8)
        assert frequency_degrees(torch.from_numpy(n)).tolist() == published.tolist()
        assert set(published.tolist()) <= {1, 2, 3}


def test_no_missing_joint_falls_back_to_csm():
    assert torch.equal(frequency_degrees(torch.zeros(25, dtype=torch.long)), DEGREES)
    batch = batch_with(torch.zeros(8, 25, dtype=torch.bool))
    settings = {"projector_dim": 32, "mask_joint": 9, "mask_frame": 4}
    pstl, opstl_ = TinyPSTL(settings), TinyOPSTL(settings)
    for method in (pstl, opstl_):
        method.training_step(batch, 0, torch.Generator().manual_seed(5))
    ignored = [[call.ignore_joints for call in method.encoders["joint"].calls] for method in (pstl, opstl_)]
    assert ignored[0] == ignored[1]


def test_all_equal_counts_give_a_uniform_mask():
    f = frequency_degrees(torch.full((25,), 7))
    assert f.tolist() == [1] * 25
    g = torch.Generator().manual_seed(0)
    assert all(len(draw_from_multiset(f, 9, g).unique()) == 9 for _ in range(200))  # no duplicates possible


def test_asm_masks_frequently_occluded_joints_more_often():
    missing = torch.zeros(128, 25, dtype=torch.bool)
    missing[:100, 7] = missing[:90, 11] = True  # f = 3
    missing[:50, 3] = True  # 50 / 100 of the range: f = 2
    missing[:5, 15] = True  # f = 1
    f = OPSTL.joint_weights(None, batch_with(missing))
    assert f[[7, 11]].tolist() == [3, 3] and f[3] == 2 and f[15] == 1 and f.sum() == 25 + 2 + 2 + 1
    g, k, total = torch.Generator().manual_seed(1), 9, int(f.sum())
    draws = torch.stack([draw_from_multiset(f, k, g) for _ in range(10000)])
    hit = torch.zeros(len(draws), 25, dtype=torch.bool).scatter_(1, draws, True).double().mean(0)
    expected = torch.tensor([1 - math.comb(total - c, k) / math.comb(total, k) for c in f.tolist()],
                            dtype=torch.float64)
    assert torch.allclose(hit, expected, atol=0.02)
    assert hit[7] > 2 * hit[15]


def test_training_step_draws_from_the_missing_flags():
    missing = torch.zeros(16, 25, dtype=torch.bool)
    missing[:, [4, 5, 6, 7]] = True
    batch = batch_with(missing)
    method = TinyOPSTL({"projector_dim": 32, "mask_frame": 4})
    assert method.settings["mask_joint"] == 9 and isinstance(method, PSTL)
    losses = method.training_step(batch, 0, torch.Generator().manual_seed(3))
    assert torch.isfinite(losses["loss"])
    expected = draw_from_multiset(frequency_degrees(missing.sum(0)), 9, torch.Generator().manual_seed(3))
    assert [call.ignore_joints for call in method.encoders["joint"].calls] == [None, None, expected.unique().tolist()]


def test_registered():
    registry = Registry("methods")
    registry._current = PluginInfo("opstl", "occbench", "0")
    opstl.occbench_register_methods(registry)
    assert registry["opstl"] is OPSTL
