"""How the stages of a plan get run: here one after another, here in N parallel slots, or as slurm jobs.

Every launcher hands each stage to the same `runner.run_stage`, so a stage computes the same thing
however it is launched, and every launcher trusts the same `done.json` markers: a stage already done is
never launched again, whichever launcher finished it.

* `local`, one slot: in this process, in plan order.
* `local`, N slots (by default one per GPU, or per CPU core up to 4): N worker processes; a stage
  starts as soon as the stages it needs are done. On GPUs each slot owns its own devices (slot i: GPUs
  i*g .. i*g+g-1 for g GPUs per cell); on CPU each slot gets cpu_count / N threads.
* `slurm`: one submitit job per stage, each job depending (afterok) on the jobs of the stages it needs,
  so evaluations start when their pretraining has finished. With submitit's `debug` cluster the jobs
  run in this process, in submission order (what the tests use).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import shutil
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from functools import partialmethod
from pathlib import Path

import torch
from tqdm import tqdm

from occbench import store
from occbench.errors import OccbenchError, brief
from occbench.plan import Stage
from occbench.runner import Context, is_done, note_failure, result_cell, run_stage

LAUNCHERS = ("local", "slurm")


@dataclass
class Failure:
    stage: Stage
    error: BaseException


def run_local(stages: list[Stage], context: Context, slots: int = 1, gpus_per_cell: int = 1) -> list[Failure]:
    """Run every stage not yet done; returns the stages that failed. A failed stage (an OccbenchError: a
    NaN loss, a bad input) stops only the stages that need it, so the rest of the grid still finishes;
    any other exception is a bug and is raised once the running stages are done."""
    todo = [stage for stage in stages if not is_done(stage, context)]
    done = {stage.key for stage in stages} - {stage.key for stage in todo}  # grows as stages finish
    bar = tqdm(total=len(stages), initial=len(stages) - len(todo), desc="grid", unit="stage", disable=None)
    failures: list[Failure] = []
    blocked: set[str] = set()  # keys of stages that failed, or need one that did

    def runnable(stage: Stage) -> bool:
        if any(need.key in blocked for need in stage.needs):
            blocked.add(stage.key)
            bar.write(f"skip  {stage.label}  (a stage it needs failed)")
            return False
        return True

    def finish(stage: Stage, outcome) -> None:
        if isinstance(outcome, BaseException):
            failures.append(Failure(stage, outcome))
            blocked.add(stage.key)
            bar.write(f"FAIL  {stage.label}: {outcome}")
            return
        done.add(stage.key)
        bar.update()
        bar.write(f"done  {stage.label}  ({outcome.get('wall_seconds', 0):.0f} s)")

    if slots <= 1:
        for stage in filter(runnable, todo):
            try:
                finish(stage, run_stage(stage, context))
            except OccbenchError as err:
                finish(stage, err)
        return _reported(failures, stages, context)
    spawn = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    claims = spawn.Queue()
    for slot in range(slots):
        claims.put(slot)
    devices = _slot_devices(context.device, slots, gpus_per_cell)
    threads = max(1, (os.cpu_count() or 1) // slots)
    broken = False
    with ProcessPoolExecutor(slots, mp_context=spawn, initializer=_claim_slot,
                             initargs=(claims, devices, threads, os.getpid())) as pool:
        running: dict = {}
        while todo or running:
            waiting = [s for s in todo if s.key not in blocked and not broken]
            todo = [s for s in waiting if runnable(s)]
            ready = [s for s in todo if all(need.key in done for need in s.needs)]
            for stage in ready:
                todo.remove(stage)
                running[pool.submit(run_stage, stage, context)] = stage  # each worker reloads the plugins
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                stage = running.pop(future)
                try:
                    finish(stage, future.result())
                except BrokenProcessPool:
                    if not broken:  # the pool is gone with every stage in it: nothing more can start
                        finish(stage, OccbenchError("a worker process died (killed, or out of memory?); use "
                                                    "--slots 1 if memory is short"))
                    broken = True
                except Exception as err:  # noqa: BLE001 (the other slots finish what they started first)
                    finish(stage, err)
    return _reported(failures, stages, context)


def _reported(failures: list[Failure], stages: list[Stage], context: Context) -> list[Failure]:
    for failure in failures:
        note_failure(failure.stage, failure.error, stages, context)
    bugs = [failure.error for failure in failures if not isinstance(failure.error, OccbenchError)]
    if bugs:
        raise bugs[0]
    return failures


def failure_summary(failures: list[Failure], stages: list[Stage], context: Context) -> str:
    """One line for the grid, one per failed stage: what `occbench run` ends with when stages failed."""
    not_run = [stage for stage in stages if not is_done(stage, context)
               and stage.key not in {failure.stage.key for failure in failures}]
    grid = (f"{len(failures)} of {len(stages)} stages failed"
            + (f", {len(not_run)} more did not run" if not_run else "")
            + "; finished stages are kept: fix the cause and re-run to continue")
    if len(failures) == 1:
        return f"{failures[0].stage.label}: {failures[0].error} ({grid})"
    return "\n".join([grid, *(f"  {failure.stage.label}: {failure.error}" for failure in failures)])


def default_slots(todo: list[Stage], device: str, gpus_per_cell: int = 1) -> int:
    """How many slots `local` uses unless told: one per GPU (or per gpus_per_cell GPUs); on CPU one per
    core, at most 4 (each worker holds its own copy of the data); never more than the stages that can
    run side by side (the pretrainings, and the evaluations of pretrainings already done), so that a
    single chain of stages keeps every thread.

    One worker per core because on a 2-core machine two one-thread workers ran the quick grid faster
    than one two-thread process (docs/benchmarks.md, "Quick grid").
    """
    if device.startswith("cuda"):
        width = len(_visible_gpus()) // gpus_per_cell
    elif gpus_per_cell > 1:  # each pretraining is already several processes
        width = 1
    else:
        width = min(os.cpu_count() or 1, 4)
    waiting = {stage.key for stage in todo}
    side_by_side = sum(stage.kind == "pretrain" or (stage.kind == "evaluate" and
                                                     not any(need.key in waiting for need in stage.needs))
                       for stage in todo)
    return max(1, min(width, side_by_side))


def _visible_gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]


def _slot_devices(device: str, slots: int, gpus_per_cell: int) -> list[str | None]:
    """The CUDA_VISIBLE_DEVICES value of each slot (None on CPU)."""
    if not device.startswith("cuda"):
        return [None] * slots
    gpus = _visible_gpus()
    if slots * gpus_per_cell > len(gpus):
        raise OccbenchError(f"--slots {slots} x --gpus-per-cell {gpus_per_cell} needs {slots * gpus_per_cell} GPUs, "
                            f"{len(gpus)} visible: lower --slots")
    return [",".join(gpus[i * gpus_per_cell:(i + 1) * gpus_per_cell]) for i in range(slots)]


def _claim_slot(claims, devices: list[str | None], threads: int, parent: int) -> None:
    _die_with_parent(parent)
    slot = claims.get()
    # Each slot draws its stage's progress bars on its own terminal line, below the grid's bar (line 0);
    # the bars are made in several modules, so the default goes onto tqdm itself.
    tqdm.__init__ = partialmethod(tqdm.__init__, position=slot + 1, leave=False)
    if devices[slot] is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[slot]  # before this process first touches CUDA
    else:
        torch.set_num_threads(threads)


def submit_slurm(stages: list[Stage], context: Context, folder: Path, options: dict, gpus_per_cell: int = 1) -> dict:
    """One job per stage not done yet; returns {stage key: submitit job}. `options` go to
    `AutoExecutor.update_parameters` (e.g. slurm_partition, timeout_min), except `cluster`, which picks
    submitit's cluster (`debug` runs the jobs in this process)."""
    import submitit

    options = dict(options)
    cluster = options.pop("cluster", None)
    if cluster is None and shutil.which("sbatch") is None:  # submitit would quietly run every job here at once
        raise OccbenchError("--launcher slurm: no Slurm on this machine (sbatch not found); run from a Slurm login "
                            "node, use --launcher local, or test the jobs in-process with --slurm-option cluster=debug")
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    if context.device.startswith("cuda"):
        options.setdefault("gpus_per_node", gpus_per_cell)
    extra = dict(options.pop("slurm_additional_parameters", {}))
    try:
        executor.update_parameters(**options)
    except (ValueError, TypeError) as err:
        raise OccbenchError(f"--slurm-option: {brief(err)}") from None
    job_context = replace(context, progress=False)
    jobs: dict = {}
    for stage in stages:
        if is_done(stage, context):
            continue
        after = [jobs[need.key].job_id for need in stage.needs if need.key in jobs]
        parameters = dict(extra, dependency=f"afterok:{':'.join(after)}") if after else extra
        if executor.cluster == "slurm":
            executor.update_parameters(name=f"occbench-{stage.kind}", slurm_additional_parameters=parameters)
        cells = [other for other in stages if other.kind == "evaluate"
                 and stage.key in {s.key for s in (other, *other.upstream())}]
        jobs[stage.key] = executor.submit(_slurm_job, stage, job_context, cells)
    if executor.cluster != "debug":  # until its record comes, a cell says it is waiting, and for which jobs
        for stage in stages:
            if stage.kind == "evaluate" and stage.key in jobs:
                waiting = ", ".join(f"{jobs[s.key].job_id} ({s.kind})" for s in (*stage.upstream(), stage)
                                    if s.key in jobs)
                cell = result_cell(stage, context)
                note = store.make_note(cell, "submitted", f"Slurm jobs {waiting}", jobs[stage.key].paths.stderr,
                                       labels=context.host.labels(cell))
                store.write_note(note, context.results)
    return jobs


def _slurm_job(stage: Stage, context: Context, cells: list[Stage]) -> dict:
    """One Slurm job: its stage, and on failure a failed note for each cell it kept from a result, with
    the path of the job's log (Slurm itself then never starts the jobs that need it)."""
    try:
        return run_stage(stage, context)
    except Exception as err:
        note_failure(stage, err, cells, context, log=_job_log())
        raise


def _job_log() -> str | None:
    import submitit

    try:
        return str(submitit.JobEnvironment().paths.stderr)
    except (RuntimeError, KeyError):  # not inside a Slurm job (the debug cluster runs jobs in this process)
        return None


def wait_debug_jobs(jobs: dict, stages: list[Stage]) -> list[Failure]:
    """Run the jobs of submitit's debug cluster in this process, in submission order, as Slurm would: a job
    whose needs failed does not start. Returns the failed stages, like `run_local`; a bug is raised."""
    by_key = {stage.key: stage for stage in stages}
    failures: list[Failure] = []
    for key, job in jobs.items():
        if any(need.key in {failure.stage.key for failure in failures} for need in by_key[key].upstream()):
            continue
        error = job.exception()  # not job.result(): on an error the debug cluster would open pdb
        if error is not None:
            failures.append(Failure(by_key[key], error))
    bugs = [failure.error for failure in failures if not isinstance(failure.error, OccbenchError)]
    if bugs:
        raise bugs[0]
    return failures


def _die_with_parent(parent: int) -> None:
    """Without this a worker outlives a SIGKILLed `occbench run`: it finishes its stage on its own while
    the re-run waits for that stage's lock, or, started but not yet given a slot, waits for one forever
    (Linux; elsewhere the lock alone keeps the stage single)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above: nobody will ever hand out a slot
        os._exit(1)
