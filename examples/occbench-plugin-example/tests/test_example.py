"""The example plugin, tested as occbench's own plugins are (occbench.testing)."""

import json

from occbench_example import FrameCLR

from occbench.plugins import load_plugins
from occbench.testing import check_method, tiny_grid


def test_it_is_installed_and_registers_its_method_and_imputer():
    host = load_plugins()
    assert host.methods.owner("frameclr").distribution == "occbench-plugin-example"
    assert host.methods["frameclr"] is FrameCLR


def test_the_method_trains_a_few_steps_and_follows_the_encoder_contract():
    losses = check_method(FrameCLR, {"queue_size": 32, "encoder": {"hidden": 16, "feature_dim": 8}})
    assert len(losses) == 3


def test_a_tiny_grid_runs_the_method_and_the_imputer_and_logs_every_stage(tmp_path, monkeypatch):
    log = tmp_path / "progress.log"
    monkeypatch.setenv("OCCBENCH_EXAMPLE_LOG", str(log))
    records = tiny_grid(tmp_path, methods=["frameclr"], imputers=["none", "nearest"])
    accuracy = {r["cell"]["imputer"]: r for r in records if r["cell"]["protocol"] == "linear"}
    assert set(accuracy) == {"none", "nearest"}
    assert accuracy["nearest"]["labels"]["method"]["title"] == "FrameCLR"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    kinds = sorted(line["kind"] for line in lines)
    assert kinds == ["data", "evaluate", "evaluate", "impute", "pretrain", "pretrain"]
