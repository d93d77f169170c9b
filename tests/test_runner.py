"""The runner end to end, with a tiny third-party method plugin on a tiny embedded dataset."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from occbench.cli import main
from occbench.errors import OccbenchError
from tests.tiny_grid import cli_env, events


def test_a_third_party_method_runs_through_the_grid(tiny_grid, capsys):
    tmp_path, _, args = tiny_grid
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "plan: 5 stages (2 result cells), 0 already done" in out
    assert "tinyclr" in out.lower()  # the table at the end shows the plugin's method
    records = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    assert len(records) == 2 and {r["cell"]["seed"] for r in records} == {0, 1}
    record = records[0]
    assert record["cell"]["method"] == "tinyclr" and record["cell"]["stream"] == "J"
    assert 0 <= record["metrics"]["top1"] <= 100 and record["metrics"]["epochs"] == 4
    assert record["provenance"]["plugins"]["occbench_tiny"] == "1.2.3"
    assert record["config"]["pretrain"]["pretrain"]["epochs"] == 2  # the --cfg-options reached the stage
    # its own encoder takes no settings: the profile's ST-GCN ones are neither in its key nor its record
    assert record["config"]["pretrain"]["method_settings"]["encoder"] == {}
    # the settings it ships for the quick profile, over its paper ones and its defaults
    assert record["config"]["pretrain"]["method_settings"]["queue_size"] == 48
    assert record["config"]["pretrain"]["method_settings"]["feature_dim"] == 8
    # a second run computes nothing; a changed protocol setting re-runs only the evaluations
    started = len(events(tmp_path, "started"))
    assert main(args) == 0 and len(events(tmp_path, "started")) == started
    assert main([*args, "protocols.linear.torchlight.epochs=6"]) == 0
    again = events(tmp_path, "started")[started:]
    assert [kind for kind, *_ in again] == ["evaluate", "evaluate"]
    # cached stages still give their records to another results folder, without computing anything
    args[args.index("--results") + 1] = str(tmp_path / "other")
    started = len(events(tmp_path, "started"))
    assert main(args) == 0 and len(events(tmp_path, "started")) == started
    assert sorted(p.name for p in (tmp_path / "other").glob("*.json")) == sorted(
        p.name for p in (tmp_path / "results").glob("*.json") if json.loads(p.read_text())["metrics"]["epochs"] == 4)
    assert "tinyclr" in capsys.readouterr().out.lower()


def test_event_hooks_see_every_stage_with_its_kind_and_the_stored_records(tiny_grid, monkeypatch):
    tmp_path, _, args = tiny_grid
    args[args.index("--imputers") + 1] = "none,random"
    args[args.index("--seeds") + 1] = "0"
    log = tmp_path / "events.jsonl"
    monkeypatch.setenv("TINY_EVENTS", str(log))
    assert main(args) == 0
    finished = [json.loads(line) for line in log.read_text().splitlines()]
    plan = events(tmp_path, "started")
    assert sorted(e["kind"] for e in finished) == ["data", "evaluate", "evaluate", "impute", "pretrain", "pretrain"]
    assert [e["key"] for e in finished] == [key for _, key, _ in events(tmp_path, "started")] and len(plan) == 6
    assert not any(e["cached"] for e in finished) and all(e["seconds"] >= 0 for e in finished)
    stored = {p.name: json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")}
    for event in finished:
        assert event["label"].startswith(event["kind"]) and event["settings"]
        if event["kind"] == "evaluate":  # its record, as stored
            assert event["cell"]["method"] == "tinyclr" and event["record"] in stored.values()
            assert event["records"] == [event["record"]]
        elif event["kind"] == "impute":  # the imputer's quality, and leaving the zeros beside it
            assert event["cell"]["imputer"] == "random" and event["record"]["cell"]["imputer"] == "random"
            assert sorted(r["cell"]["imputer"] for r in event["records"]) == ["none", "random"]
        else:
            assert event["cell"] is None and event["record"] is None and event["records"] == []
        assert "wall_seconds" in event["output"]
    # a second run reuses every stage: one finished event each, marked cached, and nothing started
    log.unlink()
    assert main(args) == 0
    again = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(e["key"] for e in again) == sorted(e["key"] for e in finished) and all(e["cached"] for e in again)
    assert len(events(tmp_path, "started")) == 6


DATASET_PLUGIN = """
    import os

    from occbench.hookspecs import hookimpl


    class Mini:
        title = "a prepared folder that a plugin provides"
        splits = ["xsub"]

        def folder(self):
            return os.environ["MINI_FOLDER"]


    @hookimpl
    def occbench_register_datasets(registry):
        registry.add("mini", Mini())
        registry.remove("ntu120")
"""


def test_a_plugin_adds_a_dataset_and_removes_one(tiny_grid, third_party, monkeypatch, capsys):
    from occbench.data.embedded import embedded_datasets
    from occbench.data.synth import SynthConfig

    tmp_path, _, args = tiny_grid
    third_party("occbench-mini", "occbench_mini", DATASET_PLUGIN)
    clean = embedded_datasets(home=tmp_path / "made", config=SynthConfig(classes=4, subjects=4, setups=2,
                                                                           replications=1, min_frames=30,
                                                                           max_frames=40))["raw"]
    monkeypatch.setenv("MINI_FOLDER", str(clean.path))
    args[args.index("--seeds") + 1] = "0"
    assert main([*args[:1], "--datasets", "mini/xsub", *args[1:]]) == 0
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    assert record["cell"]["dataset"] == "mini" and 0 <= record["metrics"]["top1"] <= 100
    capsys.readouterr()
    assert main([*args[:1], "--datasets", "ntu120/xsub", *args[1:]]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'ntu120': choose from " in err
    assert set(err.split("choose from ")[1].strip().split(", ")) == {"synthetic", "ntu60", "mini"}
    monkeypatch.setenv("MINI_FOLDER", str(tmp_path / "nowhere"))
    assert main([*args[:1], "--datasets", "mini/xsub", *args[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("which is not a prepared dataset (no meta.json); prepare it with `occbench data prepare`, "
                        "or pass --data mini=DIR") and len(err.splitlines()) == 1


def test_dry_run_lists_the_plan(tiny_grid, capsys):
    _, _, args = tiny_grid
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("to run") == 5 and "pretrain tinyclr none synthetic/xsub seed1" in out


def test_unknown_names_are_one_line_errors(tiny_grid, capsys):
    _, _, args = tiny_grid
    assert main([*args, "--methods", "simclr"]) == 2
    assert "unknown method 'simclr': choose from" in capsys.readouterr().err
    assert main([*args, "--datasets", "ntu60"]) == 2
    assert "needs its prepared folder: pass --data ntu60=DIR" in capsys.readouterr().err


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc; empty elsewhere)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_sigkill_then_rerun_completes_each_cell_once(tiny_grid):
    tmp_path, site, args = tiny_grid
    env = cli_env(site)
    command = [sys.executable, "-m", "occbench", *args]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and not any(kind == "pretrain" for kind, *_ in events(tmp_path, "finished")):
        time.sleep(0.05)
    workers = children(first.pid)
    first.send_signal(signal.SIGKILL)
    first.wait()
    deadline = time.time() + 60
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "worker processes outlived the kill"
    lines_at_kill = len((tmp_path / "log.txt").read_text().splitlines())
    finished_before = {key for _, key, _ in events(tmp_path, "finished")}
    assert finished_before and len(finished_before) < 5, "the kill did not land mid-grid"
    assert not [p for p in (tmp_path / "results").glob("*") if not p.name.endswith(".json")]  # no partial files

    done = subprocess.run(command, env={**env, "TINY_SLOW": ""}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    second = (tmp_path / "log.txt").read_text().splitlines()[lines_at_kill:]
    started_again = {line.split()[2] for line in second if line.startswith("started")}
    assert not started_again & finished_before, "a finished stage was computed again"
    finished = [key for _, key, _ in events(tmp_path, "finished")]
    assert len(finished) == len(set(finished)) == 5  # every stage finished exactly once
    assert len(list((tmp_path / "results").glob("*.json"))) == 2


def test_every_builtin_method_runs_through_the_runner(tiny_grid, capsys):
    """The real ST-GCN and each built-in method's resolved quick settings, one epoch each."""
    tmp_path, _, args = tiny_grid
    args = [a for a in args if a != "tinyclr"]
    methods = args.index("--methods")
    args[methods + 1:methods + 1] = ["skeletonclr,crossclr,aimclr,pstl,opstl"]
    args[args.index("--seeds") + 1] = "0"
    args[methods + 1] += ",skeletonmae,mamp,cfsem"
    assert main([*args, "pretrain.epochs=1", "methods.pstl.pretrain.epochs=1",
                 "methods.opstl.pretrain.epochs=1", "methods.skeletonmae.pretrain.epochs=1",
                 "methods.mamp.pretrain.epochs=1", "methods.cfsem.pretrain.epochs=1"]) == 0
    records = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    assert {r["cell"]["method"] for r in records} == {"skeletonclr", "crossclr", "aimclr", "pstl", "opstl",
                                                      "skeletonmae", "mamp", "cfsem"}
    mae = next(r for r in records if r["cell"]["method"] == "skeletonmae")["config"]["pretrain"]["method_settings"]
    # its own encoder, sized by the profile's frames; none of the ST-GCN's settings
    assert mae["encoder"] == {"segment": 2, "width": 64, "depth": 2, "heads": 4, "mlp_ratio": 4.0, "frames": 12}
    streams = {r["cell"]["method"]: r["cell"]["stream"] for r in records}
    assert streams["crossclr"] == "J+M" and streams["pstl"] == "J"
    assert next(r for r in records if r["cell"]["method"] == "pstl")["config"]["pretrain"]["pretrain"]["optimizer"][
        "type"] == "Adam"


def test_imputation_quality_is_stored_with_the_results_and_tabled(tiny_grid, capsys):
    tmp_path, _, args = tiny_grid
    args[args.index("--imputers") + 1] = "none,random"
    args[args.index("--seeds") + 1] = "0"
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "MPJPE on the occluded joints of the test set (mm)" in out
    records = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    quality = {r["cell"]["imputer"]: r for r in records if r["cell"]["protocol"] == "imputation"}
    assert set(quality) == {"none", "random"}
    assert quality["random"]["metrics"]["mpjpe"] < quality["none"]["metrics"]["mpjpe"]
    assert quality["random"]["config"]["impute"]["imputer"] == "random"
    assert len(quality["random"]["metrics"]["per_joint"]) == 25
    assert main(["table", "--results", str(tmp_path / "results"), "--layout", "quality"]) == 0
    assert "random" in capsys.readouterr().out


def test_a_misspelt_method_setting_fails_before_anything_runs(tiny_grid, capsys):
    tmp_path, _, args = tiny_grid
    assert main([*args, "--cfg-options", "methods.tinyclr.temprature=0.2"]) == 2
    err = capsys.readouterr().err
    assert "methods.tinyclr.temprature: unknown setting; did you mean methods.tinyclr.temperature?" in err
    assert not list((tmp_path / "results").glob("*.json"))


def test_a_misspelt_protocol_setting_fails_before_anything_runs(tiny_grid, capsys):
    tmp_path, _, args = tiny_grid
    assert main([*args, "protocols.linear.torchlight.batchnorm=recompute"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("occbench: error: protocols.linear.torchlight.batchnorm: unknown setting; did you mean "
                          "protocols.linear.torchlight.batch_norm?")
    assert len(err.splitlines()) == 1
    assert not events(tmp_path, "started")  # not even the data stage


def test_a_protocol_setting_with_an_unknown_value_fails_before_anything_runs(tiny_grid, capsys):
    tmp_path, _, args = tiny_grid
    assert main([*args, "protocols.linear.torchlight.features=normalised"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("occbench: error: protocols.linear.torchlight.features='normalised': use raw or standardized")
    assert not events(tmp_path, "started")


def test_cached_records_reach_a_new_results_folder_from_anywhere(tiny_grid, monkeypatch):
    """The default --results is relative (results): a cached stage must hand its records over from
    its own copy, whatever the working directory, even when the first results folder is gone."""
    tmp_path, _, args = tiny_grid
    args[args.index("--results") + 1] = "runs"
    (tmp_path / "first").mkdir()
    monkeypatch.chdir(tmp_path / "first")
    assert main(args) == 0 and len(list((tmp_path / "first" / "runs").glob("*.json"))) == 2
    shutil.rmtree(tmp_path / "first")
    (tmp_path / "second").mkdir()
    monkeypatch.chdir(tmp_path / "second")
    started = len(events(tmp_path, "started"))
    assert main(args) == 0 and len(events(tmp_path, "started")) == started  # nothing computed again
    assert len(list((tmp_path / "second" / "runs").glob("*.json"))) == 2


def test_the_run_ends_with_a_table_per_protocol(tiny_grid, capsys):
    _, _, args = tiny_grid
    args.insert(args.index("--cfg-options"), "--protocols")
    args.insert(args.index("--cfg-options"), "linear,knn")
    assert main(args) == 0
    tables = [line for line in capsys.readouterr().out.splitlines() if line.startswith("**Top-1")]
    assert len(tables) == 2 and "linear evaluation" in tables[0] and "· kNN on features" in tables[1]


def test_cells_that_cfg_options_change_name_them_and_stay_apart_in_tables(tiny_grid, capsys):
    from occbench.catalogue import load_catalogue
    from occbench.plan import build_stages, resolve_grid
    from occbench.plugins import load_plugins
    from tests.tiny_grid import OVERRIDES

    tmp_path, _, args = tiny_grid
    assert main(args) == 0
    label = f"quick ({', '.join(OVERRIDES)})"
    records = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    assert {r["cell"]["profile"] for r in records} == {label}
    assert f"profile {label}" in capsys.readouterr().out
    # random weights into the same results folder: their own table, not the latest row of the trained one
    assert main([*args, "pretrain.epochs=0"]) == 0
    out = capsys.readouterr().out
    assert f"profile quick ({', '.join(OVERRIDES)}, pretrain.epochs=0)" in out and f"profile {label}**" not in out
    assert main(["table", "--results", str(tmp_path / "results")]) == 0
    assert capsys.readouterr().out.count("**Top-1") == 2

    # only the cells an override changes say so: PSTL has its own learning rate in the quick profile
    catalogue, host = load_catalogue(), load_plugins()
    grid = resolve_grid(catalogue, host, methods=["skeletonclr", "pstl"], imputers=["none"],
                        overrides=["pretrain.optimizer.lr=0.2"])
    profiles = {s.cell.method: s.cell.profile for s in build_stages(grid, catalogue, host, {}) if s.kind == "evaluate"}
    assert profiles == {"skeletonclr": "quick (pretrain.optimizer.lr=0.2)", "pstl": "quick"}
    grid.overrides = ["pretrain.optimizer.lr=0.1"]  # the quick profile's own value: nothing changes
    assert {s.cell.profile for s in build_stages(grid, catalogue, host, {}) if s.cell} == {"quick"}


def test_a_cached_stage_computed_under_overrides_takes_the_profile_name_that_now_means_the_same(tiny_grid):
    """A profile that adopts the overrides of an earlier run reuses its stages; their records carry the
    profile's own name, so that old and new cells are one row of one table."""
    import yaml

    tmp_path, _, args = tiny_grid
    assert main(args) == 0
    registry = Path(args[args.index("--registry") + 1])
    raw = yaml.safe_load(registry.read_text())
    quick = raw["profiles"]["quick"]
    quick["pretrain"]["epochs"] = 2
    quick["data"]["batch_size"] = 16
    quick["protocols"]["linear"]["torchlight"] |= {"epochs": 4, "batch_size": 16, "eval_every": 2}
    registry.write_text(yaml.safe_dump(raw))
    started = len(events(tmp_path, "started"))
    plain = args[:args.index("--cfg-options")]
    plain[plain.index("--results") + 1] = str(tmp_path / "adopted")
    assert main(plain) == 0 and len(events(tmp_path, "started")) == started  # the same stages, cached
    records = [json.loads(p.read_text()) for p in (tmp_path / "adopted").glob("*.json")]
    assert len(records) == 2 and {r["cell"]["profile"] for r in records} == {"quick"}
    assert {r["config"]["cell"]["profile"] for r in records} == {"quick"}
    assert all("-quick-seed" in p.name for p in (tmp_path / "adopted").glob("*.json"))


def test_a_moved_work_folder_is_still_a_cache(tiny_grid, capsys):
    """done.json keeps its stage's files relative to the stage folder: a moved cache is reused whole."""
    tmp_path, _, args = tiny_grid
    first, moved = tmp_path / "work", tmp_path / "elsewhere" / "work"
    assert main([*args, "--work", str(first)]) == 0
    assert str(first) not in (next(first.glob("pretrain/*/done.json"))).read_text()
    moved.parent.mkdir()
    shutil.move(first, moved)
    started = len(events(tmp_path, "started"))
    capsys.readouterr()
    assert main([*args, "--work", str(moved), "--results", str(tmp_path / "again")]) == 0
    assert len(events(tmp_path, "started")) == started  # nothing computed again
    assert "5 already done" in capsys.readouterr().out
    assert len(list((tmp_path / "again").glob("*.json"))) == 2


def test_records_are_named_after_their_cells_and_a_rerun_replaces_them(tiny_grid):
    import yaml

    tmp_path, _, args = tiny_grid
    assert main(args) == 0
    names = sorted(p.name for p in (tmp_path / "results").glob("*.json"))
    assert len(names) == 2 and all(name.startswith("tinyclr-J-none-synthetic-xsub-realistic-linear-quick__")
                                   for name in names)
    assert sorted(name.rsplit("-", 1)[1] for name in names) == ["seed0.json", "seed1.json"]
    # the same cells computed with another catalogue setting: their records replace the old ones
    registry = Path(args[args.index("--registry") + 1])
    raw = yaml.safe_load(registry.read_text())
    raw["profiles"]["quick"]["protocols"]["linear"]["torchlight"]["features"] = "raw"
    registry.write_text(yaml.safe_dump(raw))
    assert main(args) == 0
    assert sorted(p.name for p in (tmp_path / "results").glob("*.json")) == names
    for name in names:
        record = json.loads((tmp_path / "results" / name).read_text())
        assert record["config"]["evaluate"]["settings"]["features"] == "raw"


def test_a_nan_loss_fails_its_stage_records_nothing_and_the_rest_of_the_grid_finishes(tiny_grid, capsys,
                                                                                       monkeypatch):
    """The tiny method diverges, SkeletonCLR in the same grid does not: the failure names its stage, the
    other method's cell is recorded, the run exits non-zero; a re-run computes only what failed."""
    tmp_path, _, args = tiny_grid
    args[args.index("--seeds") + 1] = "0"
    args[args.index("--methods") + 1] = "tinyclr,skeletonclr"
    monkeypatch.setenv("TINY_NAN", "0.07")  # the default temperature diverges
    assert main([*args, "methods.skeletonclr.queue_size=64", "--slots", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("occbench: error: pretrain tinyclr none synthetic/xsub seed0: loss became nan at epoch 0")
    assert "(1 of 5 stages failed, 1 more did not run; finished stages are kept" in err and len(err.splitlines()) == 1
    files = {p.name: json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")}
    records = [record for record in files.values() if "status" not in record]
    assert [record["cell"]["method"] for record in records] == ["skeletonclr"]  # nothing of the failed cell
    # in its place a note, which `occbench table` shows as a failed cell, with why
    [note] = [record for record in files.values() if "status" in record]
    assert note["status"] == "failed" and note["cell"]["method"] == "tinyclr" and not note["metrics"]
    assert note["error"].startswith("pretrain tinyclr none synthetic/xsub seed0: loss became nan at epoch 0")
    assert main(["table", "--results", str(tmp_path / "results")]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("| tinyclr"))
    assert row.split("|")[-2].strip() == "failed"
    assert "failed: tinyclr J, none xsub, seed 0: pretrain tinyclr none synthetic/xsub seed0: loss became nan" in table
    monkeypatch.delenv("TINY_NAN")
    done = len(events(tmp_path, "finished"))
    assert main([*args, "methods.skeletonclr.queue_size=64", "--slots", "1"]) == 0
    assert [kind for kind, *_ in events(tmp_path, "finished")[done:]] == ["pretrain", "evaluate"]
    names = [p.name for p in (tmp_path / "results").glob("*.json")]
    assert len(names) == 2 and not [name for name in names if name.endswith(".status.json")]  # the note is gone


def test_nan_features_fail_the_evaluation_and_record_nothing(tiny_grid, capsys, monkeypatch):
    tmp_path, _, args = tiny_grid
    monkeypatch.setenv("TINY_NAN_FEATURES", "1")
    assert main([*args, "--slots", "1"]) == 2
    err = capsys.readouterr().err
    assert "2 of 5 stages failed" in err and "evaluate linear tinyclr none synthetic/xsub seed0: " in err
    assert "the encoder gives NaN or infinite features" in err and "Traceback" not in err
    notes = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    assert sorted(note["cell"]["seed"] for note in notes) == [0, 1]  # each cell's status note, no record
    assert all(note["status"] == "failed" and "NaN or infinite features" in note["error"] for note in notes)
    assert [kind for kind, *_ in events(tmp_path, "finished")] == ["data", "pretrain", "pretrain"]


def test_a_damaged_done_marker_is_computed_again_not_reported_done(tiny_grid, capsys):
    tmp_path, _, args = tiny_grid
    work = tmp_path / "work"
    assert main([*args, "--work", str(work)]) == 0
    markers = sorted(work.glob("evaluate/*/done.json"))
    markers[0].write_text('{"metrics": {"top1"')  # truncated
    markers[1].write_text("{}")  # whole JSON, but no record: a result lost
    for record in (tmp_path / "results").glob("*.json"):
        record.unlink()
    capsys.readouterr()
    done = len(events(tmp_path, "finished"))
    assert main([*args, "--work", str(work)]) == 0
    assert "done-marker" in capsys.readouterr().out
    assert [kind for kind, *_ in events(tmp_path, "finished")[done:]] == ["evaluate", "evaluate"]
    assert len(list((tmp_path / "results").glob("*.json"))) == 2


def test_a_results_or_work_path_that_is_a_file_is_a_one_line_error(tiny_grid, capsys):
    """Found before anything runs (the writes themselves fail in one line too: tests/test_store.py)."""
    tmp_path, _, args = tiny_grid
    (tmp_path / "a-file").write_text("x")
    assert main([*args, "--work", str(tmp_path / "a-file"), "--slots", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"occbench: error: --work {tmp_path / 'a-file'}: a file, not a folder; choose another --work"
    args[args.index("--results") + 1] = str(tmp_path / "a-file")
    assert main([*args, "--slots", "1"]) == 2
    assert "--results" in capsys.readouterr().err and not events(tmp_path, "started")


def test_a_read_only_results_or_work_folder_is_a_one_line_error_before_anything_runs(tiny_grid, read_only_folder,
                                                                                    capsys):
    tmp_path, _, args = tiny_grid
    assert main([*args, "--work", str(read_only_folder / "work"), "--slots", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"occbench: error: {read_only_folder / 'work'}: cannot write (a read-only file system); pass "
                   "--work with a writable folder")
    args[args.index("--results") + 1] = str(read_only_folder)
    assert main([*args, "--slots", "1"]) == 2
    assert "a read-only file system" in capsys.readouterr().err and not events(tmp_path, "started")


def test_a_truncated_record_is_restored_from_its_stage(tiny_grid):
    tmp_path, _, args = tiny_grid
    assert main(args) == 0
    record = next((tmp_path / "results").glob("*.json"))
    whole = record.read_text()
    record.write_text(whole[: len(whole) // 2])
    started = len(events(tmp_path, "started"))
    assert main(args) == 0 and len(events(tmp_path, "started")) == started  # nothing computed again
    assert record.read_text() == whole


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def records(results: Path) -> dict:
    return {p.name: json.loads(p.read_text())["metrics"] for p in results.glob("*.json")}


def test_a_damaged_encoder_is_made_again_not_evaluated(tiny_grid, capsys):
    tmp_path, _, args = tiny_grid
    work = tmp_path / "work"
    assert main([*args, "--work", str(work), "--slots", "1"]) == 0
    encoder = sorted(work.glob("pretrain/*/encoder.pth"))[0]
    whole = encoder.read_bytes()
    flip_a_byte(encoder)
    capsys.readouterr()
    started = len(events(tmp_path, "started"))
    # a changed probe setting evaluates the cached encoders again
    assert main([*args, "protocols.linear.torchlight.epochs=6", "--work", str(work), "--slots", "1"]) == 0
    assert f"{encoder}: not what pretrain tinyclr" in capsys.readouterr().out
    again = [kind for kind, *_ in events(tmp_path, "started")[started:]]
    assert sorted(again) == ["evaluate", "evaluate", "pretrain"]  # resumed from its last checkpoint
    assert encoder.read_bytes() == whole


def test_a_damaged_dataset_is_made_again_not_trained_on(tiny_grid, capsys):
    tmp_path, _, args = tiny_grid
    work = tmp_path / "work"
    assert main([*args, "--work", str(work), "--slots", "1"]) == 0
    first = records(tmp_path / "results")
    done = json.loads(next(work.glob("data/*/done.json")).read_text())
    frames = Path(done["frames"])
    assert frames.is_relative_to(tmp_path / "home" / "embedded") and done["frames_digest"]
    flip_a_byte(frames / "data.npy")
    shutil.rmtree(work / "pretrain")  # its users are computed again
    capsys.readouterr()
    assert main([*args, "--work", str(work), "--slots", "1"]) == 0
    assert f"{frames}: not what data synthetic" in capsys.readouterr().out
    assert records(tmp_path / "results") == first  # trained on the data as it was made


def test_a_users_dataset_that_changed_is_an_error_never_deleted(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from occbench.runner import _discard

    monkeypatch.setenv("OCCBENCH_HOME", str(tmp_path / "home"))
    stage = SimpleNamespace(label="data ntu60 realistic", folder=lambda work: work / "data" / "key")
    context = SimpleNamespace(work=tmp_path / "work")
    mine = tmp_path / "work" / "data" / "key" / "frames"
    for path in (mine, tmp_path / "home" / "embedded" / "abc" / "raw", tmp_path / "prepared"):
        path.mkdir(parents=True)
        (path / "data.npy").write_bytes(b"x")
    _discard(stage, context, mine)
    _discard(stage, context, tmp_path / "home" / "embedded" / "abc" / "raw")
    with pytest.raises(OccbenchError, match=f"^{tmp_path / 'prepared'}: changed since data ntu60 realistic read it"):
        _discard(stage, context, tmp_path / "prepared")
    assert [p.name for p in tmp_path.glob("*/**/data.npy")] == ["data.npy"]
    assert (tmp_path / "prepared" / "data.npy").is_file()


def change_a_digit(path: Path) -> None:
    """One digit changed, the file still valid JSON (or whatever it was): damage no parser notices."""
    text = path.read_text()
    at = next(i for i in range(len(text) // 2, len(text)) if text[i].isdigit())
    path.write_text(text[:at] + str((int(text[at]) + 1) % 10) + text[at + 1:])


DAMAGES = {  # (folder, glob) -> damage: every kind of file a finished stage leaves
    ("work", "data/*/done.json"): change_a_digit,
    ("work", "pretrain/*/done.json"): lambda path: path.write_text(path.read_text()[:40]),
    ("work", "evaluate/*/done.json"): change_a_digit,
    ("work", "pretrain/*/encoder.pth"): flip_a_byte,
    ("work", "pretrain/*/last.pth"): flip_a_byte,
    ("work", "pretrain/*/last.pth.digest"): lambda path: path.write_text("0" * 32),
    ("work", "evaluate/*/stage.json"): lambda path: path.write_text("garbage"),
    ("results", "*.json"): change_a_digit,
}


def test_any_one_damaged_file_of_a_finished_grid_is_computed_again_never_reported(tiny_grid, capsys):
    """Each damage in turn, then a re-run: it succeeds with the results of the undamaged grid (the stage
    that owns the file computed again where it matters), or stops with one line; never another number."""
    tmp_path, _, args = tiny_grid
    args = [*args, "--work", str(tmp_path / "work"), "--slots", "1"]
    assert main(args) == 0
    first = records(tmp_path / "results")
    for (folder, pattern), damage in DAMAGES.items():
        path = sorted((tmp_path / folder).glob(pattern))[0]
        damage(path)
        capsys.readouterr()
        code = main(args)
        err = capsys.readouterr().err.strip()
        assert (code == 0 and not err) or (code == 2 and err.startswith("occbench: error: ") and "\n" not in err), \
            (pattern, err)
        assert records(tmp_path / "results") == first, pattern


def test_several_occlusion_levels_and_a_pretraining_occlusion_apart(tiny_grid, capsys):
    """Two random@ levels: a data stage and cells each, with the measured hidden fraction in every record;
    then pretraining on clean data and evaluating on those levels re-runs no pretraining of a level
    that only its evaluation occlusion changed."""
    tmp_path, _, args = tiny_grid
    args[args.index("--imputers") + 1] = "none,random"
    args[args.index("--seeds") + 1] = "0"
    levels = ["--occlusion", "random@0.2,random@0.6"]
    assert main([*args, *levels]) == 0
    out = capsys.readouterr().out
    assert "occlusion: random@0.2, random@0.6" in out
    # each level its own chain of the embedded dataset, in folders named safely on any file system
    assert len(list((tmp_path / "home" / "embedded").glob("*/raw-random_0.6-seed0/meta.json"))) == 1
    titles = [line for line in out.splitlines() if line.startswith("**Top-1")]  # a table per level
    assert len(titles) == 2 and "random@0.2" in titles[0] and "random@0.6" in titles[1]
    started = events(tmp_path, "started")
    kinds = [kind for kind, *_ in started]
    assert kinds.count("data") == 2 and kinds.count("impute") == 2 and kinds.count("evaluate") == 4
    records = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    evaluated = [r for r in records if r["cell"]["protocol"] == "linear"]
    assert sorted((r["cell"]["occlusion"], r["cell"]["imputer"]) for r in evaluated) == [
        ("random@0.2", "none"), ("random@0.2", "random"), ("random@0.6", "none"), ("random@0.6", "random")]
    for record in records:  # evaluation and imputation-quality records alike
        assert record["cell"]["pretrain_occlusion"] == record["cell"]["occlusion"]
        target = float(record["cell"]["occlusion"].partition("@")[2])
        assert abs(record["metrics"]["occluded"] - target) < 0.02  # random@s hides the fraction s
    quality = {(r["cell"]["occlusion"], r["cell"]["imputer"]) for r in records if r["cell"]["protocol"] == "imputation"}
    assert quality == {("random@0.2", "none"), ("random@0.2", "random"), ("random@0.6", "none"),
                       ("random@0.6", "random")}

    # pretrained on clean data, evaluated on each level: clean data needs no imputation, so one
    # pretraining serves both imputers; the levels' data and imputations are reused
    assert main([*args, *levels, "--pretrain-occlusion", "none"]) == 0
    again = events(tmp_path, "started")[len(started):]
    assert sorted(kind for kind, *_ in again) == ["data", "evaluate", "evaluate", "evaluate", "evaluate", "pretrain"]
    apart = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*pretrained_none*.json")]
    assert len(apart) == 4 and {r["cell"]["pretrain_occlusion"] for r in apart} == {"none"}
    by_level = {(r["cell"]["occlusion"], r["cell"]["imputer"]): r for r in apart}
    for (level, imputer), record in by_level.items():
        same = next(r for r in evaluated if (r["cell"]["occlusion"], r["cell"]["imputer"]) == (level, imputer))
        assert record["metrics"]["occluded"] == same["metrics"]["occluded"]  # measured on the evaluated data
        assert record["config"]["stages"]["data"] == same["config"]["stages"]["data"]
        assert record["config"]["stages"]["pretrain"] != same["config"]["stages"]["pretrain"]
    assert len({r["config"]["stages"]["pretrain"] for r in apart}) == 1
    # a new evaluation level only: its data, its imputation and the evaluations, never a pretraining
    started = events(tmp_path, "started")
    assert main([*args, "--occlusion", "random@0.4", "--pretrain-occlusion", "none"]) == 0
    again = events(tmp_path, "started")[len(started):]
    assert sorted(kind for kind, *_ in again) == ["data", "evaluate", "evaluate", "impute"]
