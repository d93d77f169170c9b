"""Data parallelism inside one pretraining: torchrun's launcher starts one process per GPU (gloo on CPU).

Every rank builds the same model from the same seed, draws the same global batch order and trains on its
rows of each global batch (rank r takes rows r, r + world, ...), so the global batch, the epochs and the
schedule are those of a single-process run. Gradients are averaged over the ranks after each backward;
what a method computes over the whole batch is gathered: MoCo queues enqueue every rank's keys
(`gather`), the Barlow Twins cross-correlation is taken over the global batch (`gather_with_grad`).
BatchNorm statistics stay per rank (no SyncBatchNorm), as in the published multi-GPU code bases.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import fields, replace

import torch
import torch.distributed as dist

from occbench.errors import OccbenchError


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def launch(fn: Callable, processes: int, *args):
    """Run fn(*args) in `processes` ranks through torchrun's API (torch.distributed.launcher);
    returns rank 0's return value. A rank's OccbenchError comes back as one OccbenchError."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes, rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", run_id=uuid.uuid4().hex, max_restarts=0,
                          monitor_interval=0.1, start_method="spawn")
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # one line of ours instead
    try:
        results = elastic_launch(config, _rank_main)(fn, *args)
    except ChildFailedError as err:
        local_rank, failure = next(iter(err.failures.items()))
        message = failure.message.get("message", "") if isinstance(failure.message, dict) else failure.message
        message = message or f"exit code {failure.exitcode}"
        raise OccbenchError(f"rank {local_rank} of {processes} failed: {message}") from None
    outcome = results[0]
    if isinstance(outcome, OccbenchError):
        raise outcome
    return outcome


def _rank_main(fn: Callable, *args):
    backend = "nccl" if torch.cuda.is_available() and os.environ.get("OCCBENCH_DEVICE", "").startswith("cuda") \
        else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend)
    try:
        return fn(*args)
    except OccbenchError as err:  # the same error on every rank: hand it back rather than a crash report
        return err
    finally:
        dist.destroy_process_group()


def device(default: str) -> str:
    """This rank's device: cuda:LOCAL_RANK when training on GPUs."""
    return f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if active() and default.startswith("cuda") else default


def shard(batch):
    """This rank's rows of a global batch (a dataclass of tensors with the batch first)."""
    if not active():
        return batch
    world, me = world_size(), rank()
    size = len(batch.index)
    if size % world:
        raise OccbenchError(f"batch of {size} does not split over {world} processes: choose data.batch_size "
                            f"divisible by {world}")
    return replace(batch, **{f.name: getattr(batch, f.name)[me::world] for f in fields(batch)})


@torch.no_grad()
def gather(x: torch.Tensor) -> torch.Tensor:
    """Every rank's x concatenated in rank order (no gradient), e.g. keys for a shared queue."""
    if not active():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Like `gather`, with gradients flowing back to each rank's own rows."""
    if not active():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()))


def average_gradients(parameters) -> None:
    """All-reduce the gradients in one flat buffer and divide by the world size."""
    if not active():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar over the ranks (so that every rank takes the same decision on it)."""
    if not active():
        return value
    value = value.detach().clone().reshape(1).float()
    dist.all_reduce(value)
    return value[0] / world_size()


def broadcast_module(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank."""
    if not active():
        return
    for tensor in (*module.parameters(), *module.buffers()):
        dist.broadcast(tensor.data, src=0)


def barrier() -> None:
    if active():
        dist.barrier()
