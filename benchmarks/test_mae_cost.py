"""What a masked autoencoder's pretraining step costs, and that masking is what makes it cheap.

Run: ``python -m pytest benchmarks/test_mae_cost.py -s`` (not part of the normal test run).

* ``test_masking_cuts_the_cost``: SkeletonMAE with the paper profile's transformer (width 256, 8
  blocks, 8 heads, decoder 3 blocks; 50 frames, 625 tokens per person), one pretraining step
  (forward, backward, AdamW step) at mask ratio 0.9 and at mask ratio 0 on the same batch, alternated
  ``PAIRS`` times; the median of the per-pair ratios must be at most 1/3 (issue 15's goal: the encoder
  sees only the kept tokens). ``OCCBENCH_BENCH_MAE_BATCH`` (default 8) is the batch.
* ``test_paper_profile_step``: for each of SkeletonMAE, MAMP and CFSEM, samples/s and peak resident
  memory of one paper-profile pretraining step and one finetune step (the feature encoder and a
  linear head, all tokens) at ``OCCBENCH_BENCH_BATCH`` (default 128), so that a GPU user knows the
  paper profile fits; reported, no goal. Each method runs in a fresh process, whose maximum resident
  set size (``ru_maxrss``) after each step is its peak.
"""

from __future__ import annotations

import os
import resource
import statistics
import time

import pytest
import torch

from occbench.catalogue import load_catalogue
from occbench.data.batches import Batch
from occbench.engine import build_optimizer
from occbench.plan import pretrain_settings, resolved_profile
from occbench.plugins import load_plugins

MAE_BATCH = int(os.environ.get("OCCBENCH_BENCH_MAE_BATCH", "8"))
BATCH = int(os.environ.get("OCCBENCH_BENCH_BATCH", "128"))
PAIRS = 3

pytestmark = pytest.mark.usefixtures("bench_threads")  # benchmarks/conftest.py


def paper_method(name: str, **changes):
    host = load_plugins()
    cls = host.methods[name]
    settings, pretrain = pretrain_settings(cls, name, resolved_profile(load_catalogue(), host, "paper"))
    torch.manual_seed(0)
    model = cls({**settings, **changes}).train()
    return model, build_optimizer(model.param_groups(), pretrain["optimizer"]).optimizer


def batch(n: int) -> Batch:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 50, 25, 2, generator=g).cumsum(2) * 0.05
    mask = torch.rand(n, 50, 25, 2, generator=g) > 0.1  # 10% of the joints occluded
    return Batch(x * mask[:, None], mask, torch.zeros(n, dtype=torch.long), ~mask.all(dim=(1, 3)), torch.arange(n))


def timed_step(model, optimizer, data: Batch) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    model.training_step(data, 0, torch.Generator().manual_seed(0))["loss"].backward()
    optimizer.step()
    return time.perf_counter() - start


def test_masking_cuts_the_cost():
    masked, masked_opt = paper_method("skeletonmae", mask_ratio=0.9)
    full, full_opt = paper_method("skeletonmae", mask_ratio=0.0)
    data = batch(MAE_BATCH)
    timed_step(masked, masked_opt, data), timed_step(full, full_opt, data)  # warm-up
    pairs = [(timed_step(masked, masked_opt, data), timed_step(full, full_opt, data)) for _ in range(PAIRS)]
    ratio = statistics.median(a / b for a, b in pairs)
    print(f"\nSkeletonMAE paper-profile step, batch {MAE_BATCH}, {torch.get_num_threads()} threads: mask 0.9 "
          f"{statistics.median(a for a, _ in pairs):.3f} s, mask 0 {statistics.median(b for _, b in pairs):.3f} s, "
          f"median paired ratio {ratio:.3f}")
    assert ratio <= 1 / 3


def measure(name: str, size: int, threads: int) -> dict:
    """One paper-profile pretraining step, then one finetune step (the feature encoder and a linear head,
    every token) of method `name` at batch `size`: samples/s and the process's peak resident memory
    after each. Run in a fresh process per method, since a peak only grows."""
    torch.set_num_threads(threads)
    model, optimizer = paper_method(name)
    data = batch(size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = timed_step(model, optimizer, data)
    pretrain_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    encoder = model.feature_encoder().train()
    del model, optimizer
    head = torch.nn.Linear(encoder.feature_dim, 60)
    tune = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=3e-4)
    start = time.perf_counter()
    torch.nn.functional.cross_entropy(head(encoder(data.x, mask=data.mask)), data.label).backward()
    tune.step()
    finetune_seconds = time.perf_counter() - start
    return {"pretrain": size / seconds, "finetune": size / finetune_seconds, "before_mib": before,
            "pretrain_peak_mib": pretrain_peak,
            "finetune_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


@pytest.mark.parametrize("name", ["skeletonmae", "mamp", "cfsem"])
def test_paper_profile_step(name):
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        row = pool.apply(measure, (name, BATCH, torch.get_num_threads()))
    print(f"\n{name} paper profile, batch {BATCH}, {torch.get_num_threads()} threads: pretraining step "
          f"{row['pretrain']:.1f} samples/s (peak RSS {row['pretrain_peak_mib']:.0f} MiB); finetune step "
          f"{row['finetune']:.1f} samples/s (peak RSS {row['finetune_peak_mib']:.0f} MiB; "
          f"{row['before_mib']:.0f} MiB before the steps)")
