"""The launchers: parallel local slots, slurm jobs through submitit, data-parallel pretraining in a cell."""

import json
import os
import queue
import subprocess
import sys

import pytest

from occbench.cli import main
from occbench.errors import OccbenchError
from occbench.launchers import _claim_slot, _slot_devices, default_slots, submit_slurm
from occbench.plan import Stage
from occbench.report import render
from occbench.runner import Context
from occbench.store import records_frame
from tests.tiny_grid import cli_env, events


def records(tmp_path, notes=False):
    """The result records in the results folder (or, notes=True, the status notes of cells without one)."""
    found = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    return [record for record in found if ("status" in record) == notes]


def test_local_slots_run_ready_stages_in_parallel_worker_processes(tiny_grid, capsys, monkeypatch):
    tmp_path, _, args = tiny_grid
    monkeypatch.setenv("TINY_RENDEZVOUS", str(tmp_path / "rendezvous"))  # the two seeds' pretrainings must overlap
    assert main([*args, "--slots", "2"]) == 0
    assert "tinyclr" in capsys.readouterr().out.lower()  # the table at the end
    assert len(records(tmp_path)) == 2
    finished = events(tmp_path, "finished")
    assert len(finished) == len({key for _, key, _ in finished}) == 5  # each stage once
    pretrain_pids = {pid for kind, _, pid in finished if kind == "pretrain"}
    assert len(pretrain_pids) == 2 and str(os.getpid()) not in pretrain_pids
    threads = max(1, os.cpu_count() // 2)  # each slot its share of the cores, written beside every number
    assert [r["provenance"]["threads"]["pretrain"] for r in records(tmp_path)] == [threads, threads]
    monkeypatch.delenv("TINY_RENDEZVOUS")
    assert main([*args, "--slots", "2"]) == 0 and len(events(tmp_path, "started")) == 5  # all cached now


def test_slurm_debug_cluster_runs_one_job_per_stage(tiny_grid, capsys):
    tmp_path, _, args = tiny_grid
    work = tmp_path / "work"
    assert main([*args, "--work", str(work), "--launcher", "slurm", "--slurm-option", "cluster=debug"]) == 0
    assert "tinyclr" in capsys.readouterr().out.lower()
    assert len(records(tmp_path)) == 2 and len(events(tmp_path, "finished")) == 5
    assert {pid for *_, pid in events(tmp_path, "finished")} == {str(os.getpid())}  # in this process
    assert main([*args, "--work", str(work), "--launcher", "slurm", "--slurm-option", "cluster=debug"]) == 0
    assert len(events(tmp_path, "started")) == 5  # nothing submitted again


class RecordingExecutor:
    """Stands in for submitit.AutoExecutor on a slurm cluster: records parameters and submissions."""

    cluster = "slurm"

    def __init__(self, folder, cluster=None):
        self.parameters, self.submitted = {}, []

    def update_parameters(self, **parameters):
        self.parameters.update(parameters)

    def submit(self, fn, stage, context, cells):
        job_id = str(100 + len(self.submitted))
        job = type("Job", (), {"job_id": job_id, "paths": type("Paths", (), {"stderr": f"/logs/{job_id}.err"})()})()
        self.submitted.append((stage, dict(self.parameters), job))
        return job


def test_slurm_jobs_depend_on_the_jobs_of_the_stages_they_need(tiny_grid, monkeypatch, tmp_path):
    import submitit

    from occbench.catalogue import load_catalogue
    from occbench.plan import build_stages, resolve_grid

    _, _, args = tiny_grid
    bin_folder = tmp_path / "bin"  # a Slurm login node: sbatch on the PATH (never called: the executor records)
    bin_folder.mkdir()
    (bin_folder / "sbatch").write_text("#!/bin/sh\nexit 1\n")
    (bin_folder / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_folder}{os.pathsep}{os.environ['PATH']}")
    executors = []
    monkeypatch.setattr(submitit, "AutoExecutor", lambda folder, cluster=None: executors.append(
        RecordingExecutor(folder, cluster)) or executors[-1])
    context = Context(tmp_path / "work", tmp_path / "results", progress=False)
    registry = load_catalogue(args[args.index("--registry") + 1])
    grid = resolve_grid(registry, context.host, methods=["tinyclr"], imputers=["none"], seeds=[0])
    stages = build_stages(grid, registry, context.host, {})
    jobs = submit_slurm(stages, context, tmp_path / "slurm", {"timeout_min": 60, "slurm_partition": "gpu"})
    submitted = executors[0].submitted
    assert [stage.kind for stage, _, _ in submitted] == ["data", "pretrain", "evaluate"]
    ids = {stage.kind: job.job_id for stage, _, job in submitted}
    dependency = {stage.kind: params["slurm_additional_parameters"].get("dependency") for stage, params, _ in submitted}
    assert dependency == {"data": None, "pretrain": f"afterok:{ids['data']}",
                          "evaluate": f"afterok:{ids['pretrain']}:{ids['data']}"}
    assert submitted[0][1]["timeout_min"] == 60 and submitted[0][1]["slurm_partition"] == "gpu"
    assert set(jobs) == {stage.key for stage in stages}
    # until its record comes, `occbench table` shows the cell as pending, with its jobs and log
    [note] = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.status.json")]
    assert note["status"] == "submitted" and note["log"] == f"/logs/{ids['evaluate']}.err"
    data, pretrain, evaluate = ids["data"], ids["pretrain"], ids["evaluate"]
    assert note["error"] == f"Slurm jobs {data} (data), {pretrain} (pretrain), {evaluate} (evaluate)"
    table = render(records_frame(tmp_path / "results"))
    assert next(line for line in table.splitlines() if line.startswith("| tinyclr")).split("|")[-2].strip() == "pending"
    assert f"pending: tinyclr J, none xsub, seed 0: Slurm jobs {ids['data']} (data)" in table


def test_a_failed_slurm_job_is_a_failed_cell_in_the_table(tiny_grid, capsys, monkeypatch):
    tmp_path, _, args = tiny_grid
    args[args.index("--seeds") + 1] = "0"
    monkeypatch.setenv("TINY_NAN", "0.07")  # the pretraining diverges
    assert main([*args, "--launcher", "slurm", "--slurm-option", "cluster=debug"]) == 2
    assert "loss became nan at epoch 0" in capsys.readouterr().err
    [note] = records(tmp_path, notes=True)
    assert not records(tmp_path) and note["status"] == "failed"
    assert note["error"].startswith("pretrain tinyclr none synthetic/xsub seed0: ")
    assert main(["table", "--results", str(tmp_path / "results")]) == 0
    table = capsys.readouterr().out
    assert "failed: tinyclr J, none xsub, seed 0: pretrain tinyclr" in table


def test_slurm_option_errors_are_one_line(tiny_grid, capsys):
    _, _, args = tiny_grid
    assert main([*args, "--launcher", "slurm", "--slurm-option", "cluster"]) == 2
    assert "--slurm-option 'cluster': expected KEY=VALUE" in capsys.readouterr().err


def test_gpus_per_cell_pretrains_data_parallel_on_cpu(tiny_grid):
    tmp_path, _, args = tiny_grid
    seeds = args.index("--seeds")
    args[seeds + 1] = "0"
    assert main([*args, "--gpus-per-cell", "2"]) == 0
    (record,) = records(tmp_path)
    assert record["provenance"]["world_size"] == 2 and record["provenance"]["global_batch"] == 16
    assert record["config"]["pretrain"]["world_size"] == 2
    pretrain = [pid for kind, _, pid in events(tmp_path, "finished") if kind == "pretrain"]
    assert len(pretrain) == 1  # one stage, whatever its number of processes


def test_a_batch_that_does_not_split_over_the_processes_is_a_one_line_error(tiny_grid, capsys):
    _, _, args = tiny_grid
    args[args.index("--seeds") + 1] = "0"
    assert main([*args, "--gpus-per-cell", "3"]) == 2
    err = capsys.readouterr().err
    assert "batch of 16 does not split over 3 processes" in err and "Traceback" not in err


@pytest.mark.parametrize("slots", ["0", "-1"])
def test_slots_must_be_positive(tiny_grid, capsys, slots):
    _, _, args = tiny_grid
    assert main([*args, "--slots", slots]) == 2
    assert "--slots" in capsys.readouterr().err


def test_gpu_slots_each_own_their_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert _slot_devices("cuda", 2, 2) == ["4,5", "6,7"]
    assert _slot_devices("cuda", 4, 1) == ["4", "5", "6", "7"]
    assert _slot_devices("cpu", 3, 1) == [None, None, None]
    with pytest.raises(OccbenchError, match="--slots 3 x --gpus-per-cell 2 needs 6 GPUs, 4 visible"):
        _slot_devices("cuda", 3, 2)


def test_a_worker_takes_its_slots_devices_before_touching_cuda(monkeypatch):
    claims = queue.SimpleQueue()
    claims.put(1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    _claim_slot(claims, ["0,1", "2,3"], threads=8, parent=os.getppid())
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"


def test_default_slots_follow_the_hardware_and_the_work_to_do(monkeypatch):
    def plan(pretrainings):
        return [Stage("data", "data", {})] + [Stage("pretrain", f"p{i}", {"i": i}) for i in range(pretrainings)]

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert default_slots(plan(15), "cpu") == 2  # one one-thread worker per core
    assert default_slots(plan(1), "cpu") == 1  # a single chain keeps both threads in one process
    assert default_slots(plan(0), "cpu") == 1
    assert default_slots(plan(15), "cpu", gpus_per_cell=2) == 1  # each pretraining is already 2 processes
    cached = Stage("pretrain", "cached", {})  # done: not in the plan's to-do list
    finetunes = [Stage("evaluate", f"e{i}", {"i": i}, (cached,)) for i in range(10)]
    assert default_slots(finetunes, "cpu") == 2  # evaluations of finished pretrainings run side by side
    chain = [Stage("pretrain", "p", {})]
    chain += [Stage("evaluate", f"e{i}", {"i": i}, (chain[0],)) for i in range(3)]
    assert default_slots(chain, "cpu") == 1  # they wait for the one pretraining: one slot, two threads
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert default_slots(plan(15), "cpu") == 4  # each worker holds its own copy of the data
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert default_slots(plan(15), "cuda") == 4 and default_slots(plan(15), "cuda", gpus_per_cell=2) == 2


def test_two_runs_on_one_work_folder_compute_each_stage_once(tiny_grid):
    """A second `occbench run` (or a worker left over from a killed one) waits for a stage being computed
    instead of computing it again beside it."""
    tmp_path, site, args = tiny_grid
    env = cli_env(site)
    command = [sys.executable, "-m", "occbench", *args, "--slots", "1"]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    started = [key for _, key, _ in events(tmp_path, "started")]
    assert len(started) == len(set(started)) == 5  # every stage computed by one of the two runs only
    assert "another process is computing it" in "".join(out for out, _ in outputs)
    assert len(records(tmp_path)) == 2


def test_a_worker_that_dies_is_a_one_line_error_and_the_rerun_continues(tiny_grid, capsys, monkeypatch):
    tmp_path, _, args = tiny_grid
    monkeypatch.setenv("TINY_DIE", "1")  # each pretraining's worker is SIGKILLed, as by the OOM killer
    assert main([*args, "--slots", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "worker process died" in err and "re-run" in err
    assert not records(tmp_path)  # no half-written result
    assert {note["status"] for note in records(tmp_path, notes=True)} == {"failed"}
    monkeypatch.delenv("TINY_DIE")
    assert main([*args, "--slots", "2"]) == 0
    started = [kind for kind, _, _ in events(tmp_path, "started")]
    assert started.count("data") == 1  # the data stage finished before the deaths and is kept
    assert len(records(tmp_path)) == 2


def test_a_plugin_that_fails_to_load_in_a_worker_is_named_not_a_dead_worker(tiny_grid, capsys, monkeypatch):
    import os

    tmp_path, _, args = tiny_grid
    monkeypatch.setenv("TINY_PARENT", str(os.getpid()))  # loads here, fails in every spawned worker
    assert main([*args, "--slots", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "a worker process could not load the plugins" in err and "tiny_dependency" in err
    assert "worker process died" not in err and "Traceback" not in err
    assert not records(tmp_path)


def test_slurm_without_slurm_is_a_one_line_error(tiny_grid, capsys, monkeypatch, tmp_path):
    _, _, args = tiny_grid
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no sbatch anywhere
    assert main([*args, "--launcher", "slurm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("occbench: error: --launcher slurm: no Slurm on this machine (sbatch not found)")
    assert len(err.splitlines()) == 1
    assert not events(tmp_path, "started")
