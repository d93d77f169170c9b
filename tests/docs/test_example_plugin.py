"""examples/occbench-plugin-example, installed as a third-party distribution: its method and imputer run
through a tiny grid, the table shows the method under its own title, and its log lists every stage."""

import json
from pathlib import Path

import tomllib

from occbench.cli import main
from occbench.plugins import load_plugins
from occbench.testing import tiny_grid

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "occbench-plugin-example"


def install(third_party):
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    ((entry, module),) = project["entry-points"]["occbench"].items()
    source = (EXAMPLE / "src" / module / "__init__.py").read_text()
    third_party(project["name"], module, source, entry=entry)
    return project["name"]


def test_the_example_plugin_runs_through_a_tiny_grid(third_party, tmp_path, monkeypatch, capsys):
    distribution = install(third_party)
    host = load_plugins()
    assert host.methods.owner("frameclr").distribution == host.imputers.owner("nearest").distribution == distribution
    log = tmp_path / "progress.log"
    monkeypatch.setenv("OCCBENCH_EXAMPLE_LOG", str(log))
    records = tiny_grid(tmp_path, methods=["frameclr"], imputers=["none", "nearest"])
    linear = {r["cell"]["imputer"]: r for r in records if r["cell"]["protocol"] == "linear"}
    assert set(linear) == {"none", "nearest"} and all(0 <= r["metrics"]["top1"] <= 100 for r in linear.values())
    quality = {r["cell"]["imputer"]: r["metrics"]["mpjpe"] for r in records if r["cell"]["protocol"] == "imputation"}
    assert quality["nearest"] < quality["none"]  # nearer the truth than the zeros
    assert linear["nearest"]["config"]["pretrain"]["method_settings"]["encoder"] == {"hidden": 64, "feature_dim": 32}
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(line["kind"] for line in lines) == ["data", "evaluate", "evaluate", "impute", "pretrain", "pretrain"]
    assert all(line["top1"] is not None for line in lines if line["kind"] == "evaluate")
    capsys.readouterr()
    for layout in ("imputers", "summary"):
        assert main(["table", "--results", str(tmp_path / "results"), "--layout", layout]) == 0
        assert "FrameCLR" in capsys.readouterr().out
