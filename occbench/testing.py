"""What occbench's own tests use to check a plugin, for plugin authors: a batch of skeletons, a few
training steps of a method on it with the contract checks, and a tiny grid run end to end.

    from occbench.testing import check_method, tiny_grid

    def test_my_method_trains():
        losses = check_method(MyMethod, {"queue_size": 64})
        assert losses[-1] < losses[0] * 2

    def test_my_method_runs_through_the_grid(tmp_path):
        records = tiny_grid(tmp_path, methods=["mymethod"], imputers=["none"])
        assert 0 <= records[0]["metrics"]["top1"] <= 100

Nothing here is imported by occbench itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import yaml

from occbench import encoders, paths
from occbench.data.batches import Batch

# The embedded dataset at its smallest that still has every split: 4 classes, 4 subjects, 2 setups
TINY_SYNTH = {"classes": 4, "subjects": 4, "setups": 2, "replications": 1, "min_frames": 30, "max_frames": 40}
TINY_TRAINING = {"epochs": 2, "batch_size": 16, "eval_every": 1}  # every protocol's, and the pretraining's


def skeleton_batch(n: int = 8, frames: int = 12, seed: int = 0, occluded_joint: int = 7) -> Batch:
    """A batch as a method's `training_step` receives it: random skeletons of two bodies, one joint
    occluded in every frame (0 in `x`, False in `mask`)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, frames, 25, 2, generator=generator)
    mask = torch.ones(n, frames, 25, 2, dtype=torch.bool)
    mask[:, :, occluded_joint] = False
    missing = torch.zeros(n, 25, dtype=torch.bool)
    missing[:, occluded_joint] = True
    return Batch(x * mask[:, None], mask, torch.zeros(n, dtype=torch.long), missing, torch.arange(n))


def check_method(method_class: type, settings: dict | None = None, steps: int = 3, batch: Batch | None = None,
                 lr: float = 1e-3, folder: str | Path | None = None) -> list[float]:
    """Train `method_class` (built from `settings`, over its defaults) `steps` Adam steps on one batch and
    check what occbench relies on: a finite loss each step, gradients that reach the encoder, features
    of shape (N, feature_dim) from the feature encoder evaluation builds, and that encoder saved and
    loaded back (`folder`: where, default a temporary folder) computing the same features. Returns the
    losses; an AssertionError says which check failed."""
    import tempfile

    torch.manual_seed(0)
    batch = batch or skeleton_batch()
    method = method_class(settings or {})
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=lr)
    losses = []
    for step in range(steps):
        loss = method.training_step(batch, 0, torch.Generator().manual_seed(step))["loss"]
        assert torch.isfinite(loss), f"{method_class.__name__}: loss {loss.item()} at step {step}"
        optimizer.zero_grad()
        loss.backward()
        reached = [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in method.encoders.parameters()]
        assert any(reached), f"{method_class.__name__}: no gradient reaches the encoder"
        optimizer.step()
        method.after_step()
        losses.append(loss.item())
    encoder = method.feature_encoder().eval()
    with torch.no_grad():
        features = encoder(batch.x, mask=batch.mask)
    assert features.shape == (len(batch.x), encoder.feature_dim), (
        f"{method_class.__name__}: features of shape {tuple(features.shape)}, expected "
        f"({len(batch.x)}, {encoder.feature_dim})")
    assert torch.isfinite(features).all(), f"{method_class.__name__}: features that are not finite"
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(folder or scratch) / "encoder.pth"
        encoders.save(encoder, path)
        again = encoders.load(path).eval()
        with torch.no_grad():
            assert torch.equal(again(batch.x, mask=batch.mask), features), (
                f"{method_class.__name__}: its encoder, saved and loaded, computes other features")
    return losses


def tiny_registry(folder: str | Path, methods: list[str] = ()) -> Path:
    """A copy of occbench's catalogue with the embedded dataset at its smallest and a profile `tiny`
    (the quick profile, every protocol's and the pretraining's budget cut to TINY_TRAINING); written into
    `folder`. `methods`: those whose own pretraining schedule is cut too."""
    from occbench.catalogue import load_catalogue

    raw = yaml.safe_load(paths.CATALOGUE.read_text())
    for entry in raw["datasets"].values():
        if entry["source"] == "embedded":
            entry["synth"] = dict(TINY_SYNTH)
    quick = load_catalogue().profile("quick")
    raw["profiles"]["tiny"] = {
        "_base_": "quick", "data": {"batch_size": TINY_TRAINING["batch_size"]},
        "pretrain": {"epochs": TINY_TRAINING["epochs"]},
        "protocols": {name: _cut(settings) for name, settings in quick.get("protocols", {}).items()},
        "methods": {method: {"pretrain": {"epochs": TINY_TRAINING["epochs"]}} for method in methods},
    }
    path = Path(folder) / "tiny-registry.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _cut(settings: dict) -> dict:
    """TINY_TRAINING for a protocol that trains (it has epochs), for each recipe of one with named recipes
    (all its entries are mappings); nothing for one with nothing to train."""
    if settings and all(isinstance(value, dict) for value in settings.values()):
        return {name: _cut(recipe) for name, recipe in settings.items()}
    return dict(TINY_TRAINING) if "epochs" in settings else {}


def tiny_grid(folder: str | Path, methods: list[str], imputers: list[str] = (), protocols=(), seeds=(0,),
              options: list[str] = ()) -> list[dict]:
    """`occbench run` of `methods` x `imputers` x `protocols` (empty: the quick suite's) on the tiny
    embedded dataset, in this process
    (so that plugins installed in editable mode or on sys.path are found), with its cache and results
    under `folder`; returns the result records. `options`: more `--cfg-options`. A failed stage fails
    with its one-line error."""
    import os

    from occbench.cli import main

    folder = Path(folder)
    registry = tiny_registry(folder, list(methods))
    results = folder / "results"
    previous = os.environ.get("OCCBENCH_HOME")
    os.environ["OCCBENCH_HOME"] = str(folder / "home")
    try:
        grid = ["--methods", ",".join(methods), "--seeds", ",".join(map(str, seeds))]
        grid += ["--imputers", ",".join(imputers)] if imputers else []
        grid += ["--protocols", ",".join(protocols)] if protocols else []
        code = main(["run", "--registry", str(registry), "--profile", "tiny", *grid, "--slots", "1",
                     "--results", str(results), "--work", str(folder / "work"),
                     *(["--cfg-options", *options] if options else [])])
    finally:
        if previous is None:
            os.environ.pop("OCCBENCH_HOME", None)
        else:
            os.environ["OCCBENCH_HOME"] = previous
    assert code == 0, f"occbench run exited with {code} (its error is printed above)"
    records = {path: json.loads(path.read_text()) for path in sorted(results.glob("*.json"))}
    for path, record in records.items():
        for name, value in record["metrics"].items():
            assert not (isinstance(value, float) and not math.isfinite(value)), f"{path}: {name} is {value}"
    return list(records.values())
