"""Speed of the ST-GCN encoder: occbench's STGCN against the published formulation, ReferenceSTGCN.

Run: ``python -m pytest benchmarks/test_encoder_speed.py`` (pytest-benchmark; not part of the normal test
run; ``tox -e bench`` runs every benchmark and saves the JSON). Both formulations run in the same
process, on the same threads, with the same weights and the same input.

* ``test_encoder_step[reference-cpu]`` / ``[stgcn-cpu]``: one training step of the encoder alone, forward
  and backward in train mode (dropout 0.5 on, BatchNorm on batch statistics), float32, on a batch of 128
  x (3, 50, 25, 2) skeletons (N, C, T, V, M), with 2 torch threads (``OCCBENCH_BENCH_THREADS``; the
  batch: ``OCCBENCH_BENCH_BATCH``). ReferenceSTGCN is the straightforward published network (per block
  a 1x1 convolution to K*C channels, an einsum with the adjacency times the edge importance,
  ``nn.Conv2d`` 9x1, ``nn.Dropout``) and is the baseline.
* ``[stgcn-bf16-cpu]``: the same step of STGCN under ``torch.autocast("cpu", dtype=torch.bfloat16)``.
* ``test_eval_outputs_and_gradients_agree``: in eval mode both give the same outputs and gradients
  (parameters and input) within 1e-5, relative to the largest magnitude of each tensor, with a
  float64 run as the arbiter where the float32 reference is itself less exact than that.
* ``test_speedup``: prints the ratios of the benchmarks' medians, then times ``PAIRS`` more steps of
  the two float32 encoders alternately (reference, STGCN, reference, ...), so that both see the same
  machine, and requires the median of the per-pair ratios to be at least 2 (the goal of issue 6). A
  ratio measured in the same run: a slow machine does not fail it; a busy one (another process on
  the same cores, which a 2-thread GEMM then waits for) can.

Each step's minor page faults are saved in the JSON (``extra_info``): on glibc every fresh tensor over
32 MiB is a new mapping whose pages fault on first touch, a large part of the reference's time. Rows
ending in ``-cuda`` run when a GPU is present (reported, no goal); they force STGCN's own formulation
on CUDA, which it runs only where its equality test has passed (`stgcn.CHECKED_DEVICES`), so that
they measure it against cuDNN rather than the published formulation against itself.
"""

from __future__ import annotations

import json
import os
import resource

import pytest
import torch

from occbench.nn.stgcn import STGCN, ReferenceSTGCN, init_weights

BATCH = int(os.environ.get("OCCBENCH_BENCH_BATCH", "128"))
SHAPE = (3, 50, 25, 2)
ROUNDS = 3
PAIRS = 5
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
RESULTS: dict = {}


pytestmark = pytest.mark.usefixtures("bench_threads")  # benchmarks/conftest.py


@pytest.fixture(scope="module")
def encoders() -> dict:
    torch.manual_seed(0)
    stgcn = STGCN()
    stgcn.apply(init_weights)
    reference = ReferenceSTGCN()
    reference.load_state_dict(stgcn.state_dict())
    x = torch.randn(BATCH, *SHAPE, generator=torch.Generator().manual_seed(1))
    return {"stgcn": stgcn, "reference": reference, "x": x}


def train_step(model: torch.nn.Module, x: torch.Tensor, bf16: bool = False) -> None:
    model.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        features = model(x)
    features.float().square().mean().backward()
    if x.device.type == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", ["reference", "stgcn", "stgcn-bf16"])
def test_encoder_step(benchmark, encoders, variant, device, monkeypatch):
    from occbench.nn import stgcn

    monkeypatch.setattr(stgcn, "CHECKED_DEVICES", stgcn.CHECKED_DEVICES | {device})
    model = encoders[variant.split("-")[0]].to(device).train()
    x = encoders["x"].to(device)
    bf16 = variant.endswith("bf16")
    train_step(model, x, bf16)  # warm-up: first-use costs
    faults = []

    def step():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        train_step(model, x, bf16)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

    benchmark.pedantic(step, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update({"threads": torch.get_num_threads(), "batch": BATCH,
                                 "minor_page_faults": sorted(faults)[len(faults) // 2]})
    RESULTS[variant, device] = benchmark.stats.stats.median
    model.to("cpu")


def test_eval_outputs_and_gradients_agree():
    """Eval mode: the same outputs and gradients (parameters and input) within 1e-5.

    Errors are relative to each tensor's largest magnitude, on 8 samples, after three train-mode steps
    (so that the BatchNorm statistics are the data's). Two float32 effects are not the formulation's:
    some gradients are sums with heavy cancellation that float32 only gets to ~1e-4 (the reference's
    own convolution-bias gradients, for one), so a float64 run arbitrates (a tensor also passes when
    STGCN is no further from the float64 value than twice the float32 reference's distance to it);
    and on many samples a pre-activation within ~1e-7 of 0 can land on the other side of a ReLU in
    either formulation, which changes the gradients behind it (8 samples make that unlikely; the
    float64 equality tests in tests/nn/test_stgcn.py have no such caveat).
    """
    torch.manual_seed(0)
    stgcn = STGCN()
    stgcn.apply(init_weights)
    x = torch.randn(8, *SHAPE, generator=torch.Generator().manual_seed(2))
    for _ in range(3):
        stgcn(x).square().mean().backward()
    reference = ReferenceSTGCN()
    reference.load_state_dict(stgcn.state_dict())
    exact = ReferenceSTGCN().double()
    exact.load_state_dict(stgcn.state_dict())
    grads = {}
    for name, model, inputs in (("stgcn", stgcn, x), ("reference", reference, x), ("float64", exact, x.double())):
        model.eval().zero_grad(set_to_none=True)
        inputs = inputs.clone().requires_grad_()
        out = model(inputs)
        (out * torch.linspace(-1, 1, out.shape[1], dtype=out.dtype)).sum().backward()
        grads[name] = {"output": out.detach(), "input": inputs.grad}
        grads[name].update({n: p.grad for n, p in model.named_parameters()})

    def error(a, b):
        return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()

    report = {key: (error(grads["stgcn"][key], ref), error(grads["stgcn"][key], grads["float64"][key]),
                    error(ref, grads["float64"][key])) for key, ref in grads["reference"].items()}
    worst = max(report, key=lambda key: report[key][0])
    direct = [key for key, errors in report.items() if errors[0] <= 1e-5]
    print(f"\neval mode, STGCN vs reference (relative to each tensor's largest magnitude): output "
          f"{report['output'][0]:.1e}, input gradient {report['input'][0]:.1e}; {len(direct)} of {len(report)} "
          f"tensors within 1e-5 (largest {max(report[key][0] for key in direct):.1e}); largest overall "
          f"{report[worst][0]:.1e} ({worst}: STGCN vs float64 {report[worst][1]:.1e}, reference vs float64 "
          f"{report[worst][2]:.1e}); STGCN vs float64 at most {max(errors[1] for errors in report.values()):.1e}")
    failed = {key: errors for key, errors in report.items() if errors[0] > 1e-5 and errors[1] > 2 * errors[2]}
    assert not failed, failed


def test_speedup(encoders):
    if ("reference", "cpu") not in RESULTS or ("stgcn", "cpu") not in RESULTS:
        pytest.skip("run the whole module (the benchmarks above) first")
    import statistics
    import time

    pairs = []
    for _ in range(PAIRS):
        seconds = []
        for name in ("reference", "stgcn"):
            started = time.perf_counter()
            train_step(encoders[name].train(), encoders["x"])
            seconds.append(time.perf_counter() - started)
        pairs.append(seconds)
    paired = statistics.median(reference / stgcn for reference, stgcn in pairs)
    report = {"paired": {"reference_s": round(statistics.median(p[0] for p in pairs), 3),
                         "stgcn_s": round(statistics.median(p[1] for p in pairs), 3),
                         "median_ratio": round(paired, 2), "ratios": [round(r / f, 2) for r, f in pairs]}}
    for device in ("cpu", "cuda"):
        if ("reference", device) not in RESULTS:
            continue
        reference = RESULTS["reference", device]
        row = {"reference_s": round(reference, 3), "stgcn_s": round(RESULTS["stgcn", device], 3),
               "speedup": round(reference / RESULTS["stgcn", device], 2)}
        if ("stgcn-bf16", device) in RESULTS:
            bf16 = RESULTS["stgcn-bf16", device]
            row.update({"stgcn_bf16_s": round(bf16, 3), "bf16_speedup": round(reference / bf16, 2),
                        "bf16_over_fp32": round(RESULTS["stgcn", device] / bf16, 2)})
        report[device] = row
    threads = torch.get_num_threads()
    print(f"\nencoder fwd+bwd, batch {BATCH} x {SHAPE}, train mode, {threads} threads:", json.dumps(report))
    if BATCH != 128:
        pytest.skip(f"the goal (>= 2x) is set at batch 128; batch {BATCH} only reports")
    assert paired >= 2
