import shutil
import subprocess
import sys

import pytest

from occbench.cli import main
from occbench.store import make_record, write_record
from tests.conftest import write_sample


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_prepare_from_the_command_line(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_sample(raw, "S001C001P001R001A001")
    write_sample(raw, "S001C002P003R001A002")
    code, out, _ = run(capsys, "data", "prepare", "--raw", str(raw), "--out", str(tmp_path / "out"),
                       "--benchmark", "ntu60")
    assert code == 0 and "2 samples" in out and "xsub 1/1" in out and "xview 1/1" in out
    code, out, _ = run(capsys, "data", "info", str(tmp_path / "out"))
    assert code == 0 and "stages: prepare" in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["data", "prepare", "--raw", "{tmp}/nowhere", "--out", "{tmp}/o", "--benchmark", "ntu60"],
         "no such directory"),
        (["data", "info", "{tmp}"], "not a prepared occbench dataset"),
        (["data", "prepare", "--raw", "{tmp}/bad", "--out", "{tmp}/o", "--benchmark", "ntu60"],
         "S001C001P001R001A002.skeleton, line 2"),
        (["data", "prepare", "--raw", "{tmp}/misnamed", "--out", "{tmp}/o", "--benchmark", "ntu60"],
         "not an NTU sample name"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, capsys, argv, words):
    (tmp_path / "bad").mkdir()
    write_sample(tmp_path / "bad", "S001C001P001R001A001")
    (tmp_path / "bad" / "S001C001P001R001A002.skeleton").write_text("2\nabc\n")
    (tmp_path / "misnamed").mkdir()
    shutil.copy(tmp_path / "bad" / "S001C001P001R001A001.skeleton", tmp_path / "misnamed" / "walk.skeleton")
    code, out, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and words in err
    assert err.startswith("occbench: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_skip_invalid_lists_the_file(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_sample(raw, "S001C001P001R001A001")
    (raw / "S001C001P001R001A002.skeleton").write_text("")
    code, out, _ = run(capsys, "data", "prepare", "--raw", str(raw), "--out", str(tmp_path / "o"),
                       "--benchmark", "ntu60", "--skip-invalid")
    assert code == 0 and "skipped 1 invalid file" in out
    assert "S001C001P001R001A002.skeleton" in (tmp_path / "o" / "prepare_report.txt").read_text()


def test_console_script_is_installed():
    done = subprocess.run([sys.executable, "-m", "occbench.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("occbench ")
    exe = shutil.which("occbench")
    assert exe, "the occbench console script is not on PATH; install the package"
    done = subprocess.run([exe, "data", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "prepare" in done.stdout


def test_plugins_lists_the_builtin_protocols(capsys):
    code, out, _ = run(capsys, "plugins")
    assert code == 0 and "protocols" in out and "linear, semi1, semi10, finetune, knn" in out
    code, out, _ = run(capsys, "plugins", "--disable-plugin", "protocols")
    assert code == 0 and "linear" not in out


@pytest.mark.parametrize("ours", [False, True])
def test_table_of_the_published_numbers(capsys, tmp_path, monkeypatch, ours):
    """The published numbers ship with occbench: `occbench table --compare paper` shows them from any
    folder, before any run; after a run on another dataset, `--dataset ntu60` shows them too."""
    monkeypatch.chdir(tmp_path)  # the default results folder is ./results, absent here unless `ours`
    if ours:
        cell = dict(method="pstl", stream="J", imputer="none", dataset="synthetic", split="xsub",
                    occlusion="realistic", protocol="linear", seed=0, profile="quick")
        write_record(make_record(cell, {"top1": 46.53}, {}, {}), tmp_path / "results")
    options = [] if ours else ["--compare", "paper"]
    code, out, _ = run(capsys, "table", "--layout", "summary", "--dataset", "ntu60", "--occlusion", "realistic",
                       *options)
    assert code == 0 and "IosPSTL" in out and "67.11" in out and "71.39" in out
    code, _, err = run(capsys, "table", "--dataset", "ntu99", *options)
    assert code == 2 and "ntu99" in err


def test_table_without_results_says_what_to_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "table")
    assert code == 2 and not out
    assert "no occbench result records in results" in err and "occbench run" in err and "--compare paper" in err


@pytest.mark.parametrize("argv", [["--help"], ["table", "--compare", "paper", "--format", "latex"]])
def test_help_and_table_start_without_the_numeric_stack(tmp_path, argv):
    """`occbench --help` and `occbench table` are typed often: they must not pay for numpy, torch or
    pandas (docs/benchmarks.md times them)."""
    code = ("import sys; from occbench.cli import main\n"
            "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as end:\n    code = end.code\n"
            "heavy = sorted(m for m in ('numpy', 'torch', 'pandas', 'matplotlib', 'mmengine', 'sklearn') "
            "if m in sys.modules)\nassert code == 0 and not heavy, (code, heavy)")
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-1000:]
    assert "toprule" in done.stdout or "usage: occbench" in done.stdout


@pytest.mark.parametrize("argv, words", [
    (["--device", "tpu"], "--device tpu: use cpu, cuda or cuda:N"),
    (["--device", "cuda:x"], "use cpu, cuda or cuda:N"),
    (["--results", "a-file"], "--results a-file: a file, not a folder"),
    (["--work", "a-file"], "--work a-file: a file, not a folder"),
])
def test_run_options_that_cannot_work_fail_before_anything_runs(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OCCBENCH_HOME", str(tmp_path / "home"))
    (tmp_path / "a-file").write_text("x")
    code, out, err = run(capsys, "run", "--dry-run", *argv)
    assert code == 2 and words in err and "Traceback" not in err and "plan:" not in out


def test_cuda_without_a_gpu_is_a_one_line_error(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("OCCBENCH_HOME", str(tmp_path / "home"))
    code, _, err = run(capsys, "run", "--dry-run", "--device", "cuda")
    assert code == 2 and "--device cuda: no CUDA device on this machine; use --device cpu" in err


def test_a_reader_that_leaves_early_is_no_traceback():
    """`occbench plugins | grep -q x` closes the pipe as soon as it has its line: occbench ends quietly."""
    import os

    read, write = os.pipe()
    os.close(read)  # the reader is gone before occbench writes a byte
    done = subprocess.run([sys.executable, "-m", "occbench", "plugins"], stdout=write, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    os.close(write)
    assert done.returncode == 141 and done.stderr == ""


def test_a_dry_run_shows_the_occlusion_levels_and_what_was_pretrained_on_what(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("OCCBENCH_HOME", str(tmp_path / "home"))
    code, out, err = run(capsys, "run", "--dry-run", "--suite", "robustness", "--methods", "skeletonclr")
    assert code == 0, err
    assert "occlusion: random@0.1, random@0.3, random@0.5, none -> realistic" in out
    assert "data     " in out and "data synthetic random@0.5" in out
    assert "evaluate linear skeletonclr knn synthetic/xsub random@0.3 seed0" in out
    assert "evaluate linear skeletonclr interp synthetic/xsub realistic (pretrained on none) seed0" in out
    code, out, _ = run(capsys, "run", "--dry-run", "--methods", "skeletonclr", "--occlusion", "random@0.2,realistic",
                       "--pretrain-occlusion", "none")
    assert code == 0 and "occlusion: none -> random@0.2, none -> realistic" in out
