import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import occbench
from occbench import store
from occbench.errors import OccbenchError
from occbench.store import RecordWarning, load_records, make_record, record_name, records_frame, write_record


def a_record(seed=0, top1=67.11, **cell):
    cell = dict(method="opstl", stream="J", imputer="knn", dataset="ntu60", split="xsub", occlusion="realistic",
                protocol="linear", seed=seed, profile="paper") | cell
    metrics = dict(top1=top1, top5=90.1, top1_last=66.8, top5_last=89.9, best_epoch=95, epochs=100)
    config = {"optimizer": {"lr": 0.1}, "epochs": 100}
    origin = {"source": "occbench", "citation": None, "occbench": "0.1.0", "torch": "2.13.0", "plugins": {},
              "git": None, "device": "cpu", "world_size": 1, "global_batch": 128, "wall_seconds": 12.3,
              "finished": "2026-11-21T22:00:00Z"}
    return make_record(cell, metrics, config, origin)


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".tmp"))


def test_round_trip(tmp_path):
    record = a_record()
    path = write_record(record, tmp_path)
    assert path.name == "opstl-J-knn-ntu60-xsub-realistic-linear-paper-seed0.json"
    (loaded,) = load_records(tmp_path)
    assert loaded.pop("path") == str(path)
    assert loaded == record
    assert json.loads(path.read_text())["schema"] == 1


def test_a_method_colour_in_a_record_must_be_rrggbb(tmp_path):
    record = a_record()
    record["labels"] = {"method": {"title": "OPSTL", "colour": "#CC79A7"}}
    store.check_record(record)
    record["labels"]["method"]["colour"] = "purple"  # matplotlib would take it; a record must say #rrggbb
    with pytest.raises(OccbenchError, match=r"method colour 'purple': expected #rrggbb"):
        store.check_record(record)
    (tmp_path / "edited.json").write_text(json.dumps(record))
    with pytest.warns(RecordWarning, match="edited.json.*method colour 'purple'"):
        assert load_records(tmp_path) == []


def test_names_are_stable_readable_and_can_be_chosen(tmp_path):
    record = a_record(stream="J+M", method="crossclr", seed=3)
    assert record_name(record) == record_name(a_record(stream="J+M", method="crossclr", seed=3))
    assert record_name(record) == "crossclr-J+M-knn-ntu60-xsub-realistic-linear-paper-seed3.json"
    assert record_name(a_record(split="x/y")).startswith("opstl-J-knn-ntu60-x_y-")  # never a path separator
    assert write_record(record, tmp_path, name="cell-42.json") == tmp_path / "cell-42.json"


def test_a_write_leaves_no_temporary_file(tmp_path):
    write_record(a_record(), tmp_path)
    write_record(a_record(), tmp_path)  # overwrite in place
    assert leftovers(tmp_path) == [] and len(list(tmp_path.iterdir())) == 1


def _half_then_fail(obj, handle, **kwargs):
    handle.write('{"schema": 1, "cell": {"meth')
    raise RuntimeError("disk full")


def test_a_failed_write_never_leaves_a_half_written_file(tmp_path, monkeypatch):
    monkeypatch.setattr(store.json, "dump", _half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        write_record(a_record(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_overwrite_keeps_the_previous_record(tmp_path, monkeypatch):
    path = write_record(a_record(top1=60.0), tmp_path)
    before = path.read_bytes()
    monkeypatch.setattr(store.json, "dump", _half_then_fail)
    with pytest.raises(RuntimeError):
        write_record(a_record(top1=70.0), tmp_path)
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_awkward_values_are_written_as_strict_json(tmp_path):
    record = a_record(top1=12.5)  # a non-finite metric is refused (test_a_non_finite_metric_is_never_a_record)
    record["config"] = {"root": Path("/data"), "lr": np.float32(0.5), "shape": (3, 50), "tags": {"b", "a"},
                        "mean": np.array([1.0, 2.0]), "loss": float("inf")}
    text = write_record(record, tmp_path).read_text()
    loaded = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the file"))
    assert loaded["metrics"]["top1"] == 12.5
    assert loaded["config"] == {"root": "/data", "lr": 0.5, "shape": [3, 50], "tags": ["a", "b"],
                                "mean": [1.0, 2.0], "loss": None}


def test_write_rejects_what_is_not_a_record(tmp_path):
    with pytest.raises(OccbenchError, match="cell lacks stream, imputer, dataset"):
        write_record({"schema": 1, "cell": {"method": "x"}, "metrics": {"top1": 1}, "provenance": {}}, tmp_path)
    with pytest.raises(OccbenchError, match="metrics lack 'top1'"):
        make_record(a_record()["cell"], {}, None, {})


def test_load_reads_subfolders_and_lists_and_ignores_foreign_json(tmp_path):
    write_record(a_record(seed=0), tmp_path / "runs")
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "table.json").write_text(json.dumps([a_record(seed=1), a_record(seed=2)]))
    (tmp_path / "package.json").write_text('{"name": "not ours"}')
    (tmp_path / "notes.txt").write_text("not json at all")
    records = load_records(tmp_path)
    assert sorted(record["cell"]["seed"] for record in records) == [0, 1, 2]
    assert {Path(record["path"]).name for record in records} == {"table.json", record_name(a_record())}
    assert len(load_records(tmp_path / "paper" / "table.json")) == 2  # one file is fine too


def test_a_damaged_file_is_named_and_skipped(tmp_path):
    write_record(a_record(), tmp_path)
    (tmp_path / "broken.json").write_text('{"schema": 1, "cell": ')
    (tmp_path / "future.json").write_text(json.dumps(a_record() | {"schema": 2}))
    with pytest.warns(RecordWarning) as caught:
        records = load_records(tmp_path)
    assert len(records) == 1
    messages = sorted(str(warning.message) for warning in caught)
    assert "broken.json: not readable JSON" in messages[0] and "\n" not in messages[0]
    assert "future.json: record schema 2" in messages[1]


def test_a_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(OccbenchError, match="no such results folder"):
        load_records(tmp_path / "nowhere")


def test_records_frame_is_one_call_with_flat_columns(tmp_path):
    for seed in range(3):
        write_record(a_record(seed=seed, top1=60.0 + seed), tmp_path)
    frame = records_frame(tmp_path)
    assert len(frame) == 3
    expected = ["method", "stream", "imputer", "dataset", "split", "occlusion", "protocol", "seed", "profile",
                "top1", "top5", "top1_last", "top5_last", "best_epoch", "epochs", "source", "path"]
    assert set(expected) <= set(frame.columns)
    assert frame["top1"].mean() == pytest.approx(61.0)
    assert sorted(frame["seed"]) == [0, 1, 2]
    assert frame["path"].str.endswith(".json").all() and (frame["source"] == "occbench").all()


def test_records_frame_from_loaded_records_and_from_nothing():
    frame = records_frame([a_record(), a_record(seed=1)])
    assert len(frame) == 2 and frame["path"].isna().all()
    empty = records_frame([])
    assert len(empty) == 0 and "top1" in empty.columns


def test_provenance_collects_versions_git_and_time_without_importing_torch():
    code = ("import sys, json; from occbench.store import provenance; "
            "p = provenance(plugins={'b': '2', 'a': '1'}, device='cpu', global_batch=128, wall_seconds=1.5); "
            "assert 'torch' not in sys.modules; print(json.dumps(p))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    origin = json.loads(done.stdout)
    assert origin["occbench"] == occbench.__version__ and origin["source"] == "occbench"
    assert list(origin["plugins"]) == ["a", "b"]
    assert origin["torch"] is None or re.match(r"\d+\.\d+", origin["torch"])
    assert origin["git"] is None or re.fullmatch(r"[0-9a-f]{40}", origin["git"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", origin["finished"])
    assert origin["device"] == "cpu" and origin["world_size"] == 1 and origin["global_batch"] == 128


def test_git_commit_is_none_outside_a_repository(tmp_path):
    assert store._git_commit(tmp_path) is None


def test_importing_store_imports_neither_torch_nor_pandas():
    code = "import occbench.store, sys; assert 'torch' not in sys.modules and 'pandas' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_metric_is_never_a_record(value):
    with pytest.raises(OccbenchError, match="is never recorded"):
        make_record(a_record()["cell"], {"top1": value}, {}, {})
    with pytest.raises(OccbenchError, match="top5"):
        make_record(a_record()["cell"], {"top1": 50.0, "top5": value}, {}, {})


def test_records_are_readable_by_the_group_like_any_output(tmp_path):
    path = write_record(a_record(), tmp_path)
    assert path.stat().st_mode & 0o777 == 0o666 & ~_current_umask()


def _current_umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("edit, words", [
    (lambda r: r["metrics"].update(top1="abc"), "record metric top1 is 'abc'"),
    (lambda r: r["metrics"].update(top5=True), "record metric top5 is True"),
    (lambda r: r["cell"].update(seed="0"), "record seed is '0'"),
])
def test_a_record_with_a_value_of_the_wrong_type_is_skipped_with_a_warning(tmp_path, edit, words):
    import json

    good, bad = a_record(seed=0), a_record(seed=1)
    write_record(good, tmp_path)
    edit(bad)
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.warns(RecordWarning, match=words):
        records = load_records(tmp_path)
    assert len(records) == 1 and records[0]["cell"]["seed"] == 0


def test_a_fifo_named_json_is_skipped_not_waited_on(tmp_path):
    import os

    write_record(a_record(), tmp_path)
    os.mkfifo(tmp_path / "pipe.json")
    with pytest.warns(RecordWarning, match="not a regular file"):
        assert len(load_records(tmp_path)) == 1


def test_a_results_path_that_is_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "results").write_text("not a folder")
    with pytest.raises(OccbenchError, match=r"results: cannot write \(a file where a folder is needed\); .*--results"):
        write_record(a_record(), tmp_path / "results")


def test_a_full_disk_leaves_the_previous_record_and_no_partial_file(tmp_path, monkeypatch):
    import errno
    import json

    path = write_record(a_record(top1=50.0), tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json, "dump", full)
    with pytest.raises(OccbenchError, match="cannot write \\(no space left on the device\\)"):
        write_record(a_record(top1=60.0), tmp_path)
    monkeypatch.undo()
    assert json.loads(path.read_text())["metrics"]["top1"] == 50.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_record_keeps_the_occlusion_it_was_pretrained_on_and_the_measured_hidden_fraction():
    record = a_record()  # pretrained on what it was evaluated on, unless the cell says otherwise
    assert record["cell"]["pretrain_occlusion"] == "realistic"
    apart = a_record(occlusion="random@0.3", pretrain_occlusion="none")
    assert (apart["cell"]["occlusion"], apart["cell"]["pretrain_occlusion"]) == ("random@0.3", "none")
    # its own file: the cell pretrained on its own occlusion keeps the name it always had
    assert record_name(apart) == "opstl-J-knn-ntu60-xsub-random_0.3-pretrained_none-linear-paper-seed0.json"
    assert record_name(a_record(occlusion="random@0.3")) == "opstl-J-knn-ntu60-xsub-random_0.3-linear-paper-seed0.json"
    with_fraction = make_record(record["cell"], {**record["metrics"], "occluded": 0.3}, None, record["provenance"])
    assert with_fraction["metrics"]["occluded"] == 0.3
    for bad in (1.5, -0.1, "30%"):
        with pytest.raises(OccbenchError, match="record metric occluded is"):
            make_record(record["cell"], {**record["metrics"], "occluded": bad}, None, record["provenance"])


def test_a_record_written_before_pretrain_occlusion_existed_is_still_a_record(tmp_path):
    old = a_record()
    del old["cell"]["pretrain_occlusion"]
    store.check_record(old)
    (tmp_path / "old.json").write_text(json.dumps(old))
    (loaded,) = load_records(tmp_path)
    assert loaded["cell"]["occlusion"] == "realistic"
    missing = a_record()
    del missing["cell"]["occlusion"]
    with pytest.raises(OccbenchError, match="record cell lacks occlusion"):
        store.check_record(missing)
