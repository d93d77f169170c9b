"""Speed of one pretraining step of each built-in method, on occbench's STGCN and on the published formulation.

Run: ``python -m pytest benchmarks/test_method_steps.py`` (pytest-benchmark; not part of the normal test
run). For each of SkeletonCLR, 2s-CrosSCLR, AimCLR, PSTL and OPSTL the method is built as the runner
builds it from the ``paper`` profile (encoder 16/256 channels, dropout 0.5; queues of 32768 keys, PSTL's
6144-d projector), once on STGCN and once on ReferenceSTGCN (the published formulation, the baseline),
and one step is timed: the views, ``training_step``, backward, the optimiser step of the profile
(SGD or Adam) and the momentum update, at batch 128 x (3, 50, 25, 2), in float32, with 2 torch
threads on CPU. The epoch is past CrosSCLR's and AimCLR's mining epoch (150), so their full losses run.
Each row ``test_step[<method>-<device>]`` times STGCN's step over 3 rounds; before each round, and
outside the row's timer, the reference's step is timed (``extra_info``: ``reference_seconds``,
``paired_ratios``), so that each ratio compares two steps run back to back on the same machine.

``OCCBENCH_BENCH_BATCH`` shrinks the batch for a quick check, ``OCCBENCH_BENCH_THREADS`` sets the CPU
threads, ``OCCBENCH_BENCH_METHODS`` (comma-separated) picks methods. The ``cuda`` rows run when a GPU is
present. ``test_summary`` prints samples per second of both and the median of the paired ratios per
method and device; no goal is asserted (the encoder's is, in test_encoder_speed.py). Its run time at
batch 128 is in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import statistics
import time

import pytest
import torch

from occbench.catalogue import load_catalogue
from occbench.data.batches import Batch
from occbench.engine import build_optimizer
from occbench.nn.stgcn import ReferenceSTGCN
from occbench.plan import pretrain_settings, resolved_profile
from occbench.plugins import load_plugins

BATCH = int(os.environ.get("OCCBENCH_BENCH_BATCH", "128"))
METHODS = os.environ.get("OCCBENCH_BENCH_METHODS", "skeletonclr,crossclr,aimclr,pstl,opstl").split(",")
EPOCH = 200  # past the mining epochs (150) of CrosSCLR and AimCLR
ROUNDS = 3
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
RESULTS: dict = {}


pytestmark = pytest.mark.usefixtures("bench_threads")  # benchmarks/conftest.py


@pytest.fixture(scope="module")
def host():
    return load_plugins()


def build(host, method: str, encoder: str, device: str):
    """The method with the paper profile's settings, as the runner builds it, and its optimiser."""
    cls = host.methods[method]
    settings, pretrain = pretrain_settings(cls, method, resolved_profile(load_catalogue(), host, "paper"))
    if encoder == "reference":
        cls = type(f"Reference{cls.__name__}", (cls,), {
            "build_encoder": lambda self: ReferenceSTGCN(**self.settings.get("encoder", {}))})
    torch.manual_seed(0)
    model = cls(settings).to(device).train()
    return model, build_optimizer(model.param_groups(), pretrain["optimizer"]).optimizer


def make_batch(device: str) -> Batch:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 3, 50, 25, 2, generator=g).cumsum(2) * 0.05
    mask = torch.rand(BATCH, 50, 25, 2, generator=g) > 0.1  # 10% of the joints occluded
    x = x * mask[:, None]
    missing = ~mask.all(dim=(1, 3))
    batch = Batch(x, mask, torch.zeros(BATCH, dtype=torch.long), missing, torch.arange(BATCH))
    return Batch(*(t.to(device) for t in (batch.x, batch.mask, batch.label, batch.missing, batch.index)))


def stepper(model, optimizer, batch, device):
    generator = torch.Generator(device=device).manual_seed(0)

    def step():
        losses = model.training_step(batch, EPOCH, generator)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        model.after_step()
        if device == "cuda":
            torch.cuda.synchronize()

    return step


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", METHODS)
def test_step(benchmark, host, method, device):
    """The row times STGCN's step; before each round (untimed by the row) the reference's step is timed."""
    batch = make_batch(device)
    small = Batch(*(t[:8] for t in (batch.x, batch.mask, batch.label, batch.missing, batch.index)))
    steps = {}
    for encoder in ("reference", "stgcn"):
        model, optimizer = build(host, method, encoder, device)
        stepper(model, optimizer, small, device)()  # warm-up: first-use costs, optimiser state
        steps[encoder] = stepper(model, optimizer, batch, device)
    reference_seconds = []

    def reference_round():
        started = time.perf_counter()
        steps["reference"]()
        reference_seconds.append(time.perf_counter() - started)

    benchmark.pedantic(steps["stgcn"], setup=reference_round, rounds=ROUNDS, iterations=1)
    stgcn_seconds = benchmark.stats.stats.data
    ratios = [r / s for r, s in zip(reference_seconds, stgcn_seconds, strict=True)]
    benchmark.extra_info.update({"batch": BATCH, "threads": torch.get_num_threads(), "epoch": EPOCH,
                                 "reference_seconds": reference_seconds, "paired_ratios": ratios})
    RESULTS[method, device] = (statistics.median(reference_seconds), benchmark.stats.stats.median,
                               statistics.median(ratios))


def test_summary():
    if not RESULTS:
        pytest.skip("run the whole module (the benchmarks above) first")
    threads = torch.get_num_threads()
    print(f"\none pretraining step, batch {BATCH}, paper profile, {threads} CPU threads, {ROUNDS} alternated pairs:")
    for (method, device), (reference, stgcn, ratio) in RESULTS.items():
        row = {"reference_s": round(reference, 3), "stgcn_s": round(stgcn, 3),
               "reference_samples_per_s": round(BATCH / reference, 1), "stgcn_samples_per_s": round(BATCH / stgcn, 1),
               "median_paired_ratio": round(ratio, 2)}
        print(f"  {method}-{device}: {json.dumps(row)}")
