"""Training loops on mmengine's optimiser wrappers and parameter schedulers, with checkpoints that resume.

One loop serves pretraining and every protocol: `fit` runs epochs of `step(batch, epoch) -> losses`,
steps the schedulers per epoch, calls `evaluate(epoch)` when asked, and after every epoch saves model,
optimiser, schedulers, RNG states and history atomically, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from mmengine.optim import CosineAnnealingLR, LinearLR, MultiStepLR, OptimWrapper

from occbench import distributed, paths
from occbench.errors import OccbenchError, brief, write_error
from occbench.settings import ByType, flag, integer, listing, number, one_of

OPTIMIZERS = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}
PRECISIONS = ("fp32", "bf16")

# The settings `fit` reads (occbench.settings): a pretraining's, and a trained protocol's optimizer and schedule.
_ADAM = {"lr": number(0, above=True), "betas": listing(number(0, 1, below=True)), "eps": number(0, above=True),
         "weight_decay": number(0), "amsgrad": flag()}
OPTIMIZER = ByType({
    "SGD": {"lr": number(0, above=True), "momentum": number(0, 1), "dampening": number(0, 1),
            "weight_decay": number(0), "nesterov": flag()},
    "Adam": _ADAM,
    "AdamW": _ADAM,
})
SCHEDULE = ByType({
    "step": {"milestones": listing(integer(0)), "gamma": number(0, above=True), "warmup_epochs": integer(0)},
    "cosine": {"warmup_epochs": integer(0)},
    "constant": {"warmup_epochs": integer(0)},
})
PRETRAIN = {"epochs": integer(0), "optimizer": OPTIMIZER, "schedule": SCHEDULE, "precision": one_of(*PRECISIONS)}


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; returns a CPU generator for batch order and augmentations."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def build_optimizer(params, optimizer: dict) -> OptimWrapper:
    settings = dict(optimizer)
    kind = settings.pop("type")
    if kind not in OPTIMIZERS:
        raise OccbenchError(f"optimizer type {kind!r} is not supported: use one of {', '.join(OPTIMIZERS)}")
    return OptimWrapper(OPTIMIZERS[kind](params, **settings))


def build_schedulers(wrapper: OptimWrapper, schedule: dict, epochs: int) -> list:
    """Per-epoch schedules: optional linear warm-up from 0, then `step` (milestones, gamma) or `cosine` to 0."""
    warmup = int(schedule.get("warmup_epochs", 0))
    schedulers = []
    if warmup:
        # lr rises linearly from ~0 at epoch 0 to the base lr at epoch `warmup` (PSTL's warm-up); mmengine's
        # chained form divides by the start factor, so it starts at 1e-6 of the base lr rather than 0.
        schedulers.append(LinearLR(wrapper, start_factor=1e-6, end_factor=1.0, begin=0, end=warmup + 1))
    kind = schedule.get("type", "constant")
    if kind == "step":
        schedulers.append(MultiStepLR(wrapper, milestones=list(schedule["milestones"]), gamma=schedule["gamma"]))
    elif kind == "cosine" and epochs > warmup:
        schedulers.append(CosineAnnealingLR(wrapper, T_max=epochs - warmup, eta_min=0.0, begin=warmup, end=epochs))
    elif kind not in ("constant", "cosine"):
        raise OccbenchError(f"schedule type {kind!r} is not supported: use step, cosine or constant")
    return schedulers


class Checkpoint:
    """`last.pth` in a folder, written atomically, with the digest of its bytes beside it.

    torch.load does not notice a flipped byte in a tensor, so a checkpoint whose bytes differ from their
    digest (or that cannot be read) is discarded and the training starts over: slower, never wrong.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / paths.CHECKPOINT
        self.digest = self.folder / paths.CHECKPOINT_DIGEST

    def save(self, state: dict) -> None:
        tmp, tmp_digest = self.path.with_name(self.path.name + ".tmp"), self.digest.with_name(self.digest.name + ".tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            torch.save(state, tmp)
            tmp_digest.write_text(paths.file_digest(tmp))
            # killed between these two, the pair disagrees and the next run starts over
            os.replace(tmp, self.path)
            os.replace(tmp_digest, self.digest)
        except (OSError, RuntimeError) as err:  # torch reports a full disk as a RuntimeError from its writer
            tmp.unlink(missing_ok=True)  # the last good checkpoint stays
            tmp_digest.unlink(missing_ok=True)
            if isinstance(err, OSError):
                raise write_error(self.path, err, "--work") from None
            raise OccbenchError(f"{self.path}: cannot write the checkpoint ({brief(err)}); free space, or pass --work "
                                "with a writable folder") from None

    def load(self) -> dict | None:
        if not self.path.is_file():
            return None
        try:
            if self.digest.read_text().strip() != paths.file_digest(self.path):
                raise ValueError("its bytes differ from the digest written with it")
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 (whatever is wrong with it, it is not resumed from)
            problem = "no digest beside it" if isinstance(err, FileNotFoundError) else err
            print(f"{self.path}: damaged checkpoint ({problem}); training starts over", flush=True)
            self.path.unlink(missing_ok=True)
            self.digest.unlink(missing_ok=True)
            return None


@torch.no_grad()
def calibrate_batch_norm(model: torch.nn.Module, inputs: Iterable[tuple[torch.Tensor, torch.Tensor | None]]) -> None:
    """Set every BatchNorm's running statistics to the exact average over `inputs`, (x, mask) pairs given
    to an encoder as ``model(x, mask=mask)`` (forward passes with only the BatchNorms in training mode:
    no dropout, no gradient, no weight change).

    An untrained encoder's BatchNorms still hold their initial statistics (mean 0, variance 1), so in
    eval mode its features are those of un-normalised layers, whose scale shrinks block after block
    under the published N(0, 0.02) initialisation: a linear probe on them stays at chance. With the
    statistics of the data, random weights give the usual random-features baseline.
    """
    modes = {module: module.training for module in model.modules()}
    norms = [m for m in modes if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches
        norm.train()
    for x, mask in inputs:
        model(x, mask=mask)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    for module, training in modes.items():
        module.training = training


def fit(
    model: torch.nn.Module,
    step: Callable[[object, int], dict],
    batches: Callable[[int, torch.Generator], Iterable],
    epochs: int,
    optimizer: dict,
    schedule: dict,
    generator: torch.Generator,
    checkpoint: Checkpoint | None = None,
    evaluate: Callable[[int], dict] | None = None,
    eval_every: int = 1,
    params=None,
    after_step: Callable[[int, int], None] | None = None,
    progress: str | None = None,
    train_mode: bool = True,
    precision: str = "fp32",
) -> list[dict]:
    """Train for `epochs`; returns the per-epoch history (mean losses, and metrics when evaluated).

    precision "bf16" runs each step under bfloat16 autocast (matrix products in bfloat16, reductions
    and the weights in float32); "fp32" is plain float32.
    """
    from tqdm import tqdm

    if precision not in PRECISIONS:
        raise OccbenchError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    device_type = next(model.parameters()).device.type

    wrapper = build_optimizer(params if params is not None else model.parameters(), optimizer)
    schedulers = build_schedulers(wrapper, schedule, epochs)
    history: list[dict] = []
    start = 0
    state = checkpoint.load() if checkpoint else None
    if state is not None:
        model.load_state_dict(state["model"])
        wrapper.load_state_dict(state["optimizer"])
        for scheduler, saved in zip(schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(saved)
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, start = state["history"], state["epoch"] + 1
    bar = tqdm(range(start, epochs), desc=progress, unit="epoch", disable=True if progress is None else None,
               leave=False)
    for epoch in bar:
        model.train(train_mode)
        totals: dict[str, float] = {}
        count = 0
        for index, batch in enumerate(batches(epoch, generator)):
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                losses = step(batch, epoch)
            loss = losses["loss"]
            agreed = distributed.mean(loss)  # every rank takes the same decision
            if not torch.isfinite(agreed):
                raise OccbenchError(
                    f"loss became {agreed.item()} at epoch {epoch}, step {index}; lower the learning rate "
                    "(--cfg-options ...optimizer.lr=...) or check the input data for NaN"
                )
            wrapper.backward(loss)
            distributed.average_gradients(p for group in wrapper.optimizer.param_groups for p in group["params"])
            wrapper.step()
            wrapper.zero_grad()
            if after_step is not None:
                after_step(epoch, index)
            for name, value in losses.items():
                totals[name] = totals.get(name, 0.0) + float(value.detach())
            count += 1
        record = {"epoch": epoch, "lr": wrapper.get_lr()["lr"][0]}
        record.update({name: value / max(count, 1) for name, value in totals.items()})
        for scheduler in schedulers:
            scheduler.step()
        if evaluate is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
            model.eval()
            with torch.no_grad():
                record.update(evaluate(epoch))
        history.append(record)
        bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if isinstance(v, float) and math.isfinite(v)})
        if checkpoint is not None and distributed.rank() == 0:
            checkpoint.save({
                "model": model.state_dict(), "optimizer": wrapper.state_dict(),
                "schedulers": [s.state_dict() for s in schedulers], "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(), "history": history, "epoch": epoch,
            })
    return history
