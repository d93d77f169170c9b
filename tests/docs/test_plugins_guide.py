"""docs/plugins.md is run, not just read: its Python blocks are a plugin package's module, its TOML
block that package's entry point, and its shell block runs the plugin through a (tiny) grid."""

import json
import math
import re
import shlex
from pathlib import Path

import tomllib

from occbench.cli import main
from occbench.plugins import load_plugins
from tests.tiny_grid import OVERRIDES

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
# What makes the guide's grid tiny (the tiny_grid fixture's catalogue and overrides), and keeps it in
# this process (--slots 1), where the plugin is importable.
TINY = [*OVERRIDES, "encoder.hidden_channels=4", "encoder.hidden_dim=16", "methods.myclr.queue_size=64",
        "methods.skeletonclr.queue_size=64"]


def fenced() -> list[tuple[str, str]]:
    """(language, text) of every fenced block, in order."""
    return re.findall(r"^```(\S*)\n(.*?)^```", GUIDE.read_text(), flags=re.S | re.M)


def blocks(language: str) -> list[str]:
    return [text for kind, text in fenced() if kind == language]


def test_the_guide_has_only_blocks_this_test_runs():
    assert [kind for kind, _ in fenced()] == ["toml", *["python"] * 7, "bash"]


def test_every_block_of_the_plugin_guide_runs(tiny_grid, third_party, capsys, monkeypatch):
    tmp_path, _, tiny_args = tiny_grid
    project = tomllib.loads(blocks("toml")[0])["project"]
    ((entry, module),) = project["entry-points"]["occbench"].items()
    third_party(project["name"], module, "\n\n".join(blocks("python")), entry=entry)
    log = tmp_path / "events.jsonl"
    monkeypatch.setenv("MYCLR_LOG", str(log))

    host = load_plugins()
    owner = host.methods.owner("myclr")
    assert owner.distribution == "occbench-myclr"
    assert owner.registered == {"methods": ["myclr"], "imputers": ["hold"], "protocols": ["centroid"],
                                "datasets": ["lab-ntu60"], "removed datasets": ["ntu120"]}
    assert "ntu120" not in host.datasets.names() and host.datasets["lab-ntu60"].splits == ["xsub", "xview"]

    registry = tiny_args[tiny_args.index("--registry") + 1]
    results = tmp_path / "results"
    run, table = [shlex.split(line) for line in blocks("bash")[0].splitlines() if line.strip()]
    assert run[:2] == ["occbench", "run"] and table[:2] == ["occbench", "table"]
    assert main([*run[1:], "--registry", registry, "--seeds", "0", "--slots", "1", "--results", str(results),
                 "--cfg-options", *TINY]) == 0
    capsys.readouterr()
    assert main([*table[1:], "--results", str(results)]) == 0
    shown = capsys.readouterr().out
    assert "myclr" in shown and "hold" in shown

    records = [json.loads(path.read_text()) for path in results.glob("*.json")]
    cells = {(r["cell"]["method"], r["cell"]["imputer"], r["cell"]["protocol"]): r["metrics"] for r in records}
    for method in ("myclr", "skeletonclr"):
        for imputer in ("none", "hold"):
            for protocol in ("linear", "centroid"):
                top1 = cells[(method, imputer, protocol)]["top1"]
                assert math.isfinite(top1) and 0 <= top1 <= 100
    # The imputer fills occluded joints closer to the truth than leaving them at 0 does (joints behind
    # furniture for the whole clip have nothing to hold, and stay 0).
    assert cells[(None, "hold", "imputation")]["mpjpe"] < cells[(None, "none", "imputation")]["mpjpe"]
    # The event hook saw every stage: data, one imputation, four pretrainings, eight evaluations.
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert len({event["key"] for event in events}) == len(events) == 14
    kinds = [event["kind"] for event in events]
    assert {event["top1"] is not None for event in events if event["kind"] == "evaluate"} == {True}
    assert {kind: kinds.count(kind) for kind in kinds} == {"data": 1, "impute": 1, "pretrain": 4, "evaluate": 8}
    assert all(0 <= event["top1"] <= 100 for event in events if event["kind"] == "evaluate")


def test_the_guides_encoder_follows_the_contract(third_party, tmp_path):
    """The method with its own encoder trains, sees the mask, and its encoder is rebuilt from its file."""
    import importlib

    import torch

    from occbench import encoders
    from tests.plugins.stand_ins import make_batch

    project = tomllib.loads(blocks("toml")[0])["project"]
    ((entry, module),) = project["entry-points"]["occbench"].items()
    third_party(project["name"], module, "\n\n".join(blocks("python")), entry=entry)
    method = importlib.import_module(module).MeanCLR({"queue_size": 16, "encoder": {"feature_dim": 8}})
    batch = make_batch(8)
    loss = method.training_step(batch, 0, torch.Generator().manual_seed(0))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and method.encoders["joint"].fc.weight.grad.abs().sum() > 0
    encoder = method.feature_encoder().eval()
    encoders.save(encoder, tmp_path / "encoder.pth")
    again = encoders.load(tmp_path / "encoder.pth").eval()
    assert type(again.encoders["joint"]).__name__ == "MeanEncoder" and again.feature_dim == 8
    assert torch.equal(again(batch.x, mask=batch.mask), encoder(batch.x, mask=batch.mask))
    # the occluded joint (7 in make_batch) is left out of the mean, not averaged in as zeros
    moved = batch.x.clone()
    moved[:, :, :, 7] = 5.0
    assert torch.equal(encoder(moved, mask=batch.mask), encoder(batch.x, mask=batch.mask))


def test_the_guides_tests_pass(third_party, tmp_path):
    """The "Testing it" block: the tests a plugin author writes with occbench.testing run and pass."""
    import importlib

    project = tomllib.loads(blocks("toml")[0])["project"]
    ((entry, module),) = project["entry-points"]["occbench"].items()
    third_party(project["name"], module, "\n\n".join(blocks("python")), entry=entry)
    plugin = importlib.import_module(module)
    plugin.test_myclr_trains()
    plugin.test_myclr_runs_through_a_tiny_grid(tmp_path / "grid")
