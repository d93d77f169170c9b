"""A tiny third-party method plugin and a tiny embedded grid, for the runner and launcher tests."""

import os

import pytest
import yaml

from occbench.paths import CATALOGUE
from occbench.testing import TINY_SYNTH

TINY = """
    import os

    if os.environ.get("TINY_PARENT") and os.environ["TINY_PARENT"] != str(os.getpid()):
        raise ImportError("no module named tiny_dependency")  # as a plugin that fails in a worker only

    from torch import nn

    from occbench.augment import normal_view
    from occbench.hookspecs import hookimpl
    from occbench.methods import MoCoMethod, info_nce


    class TinyEncoder(nn.Module):
        # the plugin's own encoder (occbench's encoder contract): no settings, no extra capabilities

        feature_dim = 16

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(75, 16)

        def forward(self, x, mask=None):
            if os.environ.get("TINY_NEED_MASK") and mask is None:
                raise RuntimeError("called without the visibility mask")
            features = self.fc(x.mean(dim=(2, 4)).flatten(1))
            if os.environ.get("TINY_NAN_FEATURES") and not self.training:  # as a broken evaluation encoder
                features = features * float("nan")
            return features


    class TinyCLR(MoCoMethod):
        defaults = {**MoCoMethod.defaults, "queue_size": 64, "feature_dim": 8}
        profiles = {"paper": {"queue_size": 4096, "feature_dim": 8}, "quick": {"queue_size": 48}}  # its own
        encoder_class = TinyEncoder

        def training_step(self, batch, epoch, generator):
            if os.environ.get("TINY_RENDEZVOUS"):  # wait until two pretrainings run at the same time
                import pathlib, time
                folder = pathlib.Path(os.environ["TINY_RENDEZVOUS"])
                folder.mkdir(exist_ok=True)
                (folder / str(os.getpid())).touch()
                deadline = time.time() + 120
                while len(list(folder.iterdir())) < 2:
                    if time.time() > deadline:
                        raise RuntimeError("no second pretraining ran at the same time")
                    time.sleep(0.05)
            if os.environ.get("TINY_DIE"):  # as a worker killed for memory
                import signal
                os.kill(os.getpid(), signal.SIGKILL)
            if os.environ.get("TINY_SLOW"):
                import time
                time.sleep(float(os.environ["TINY_SLOW"]))
            q = self.query(normal_view(batch.x, generator=generator), "joint")
            k = self.key(normal_view(batch.x, generator=generator), "joint")
            loss = info_nce(self.logits(q, k, "joint"))
            if os.environ.get("TINY_NAN") and self.settings["temperature"] == float(os.environ["TINY_NAN"]):
                loss = loss * float("nan")  # as a diverged run
            self.enqueue(k, "joint")
            return {"loss": loss}


    @hookimpl
    def occbench_register_methods(registry):
        registry.add("tinyclr", TinyCLR)


    def _log(what, event):
        if os.environ.get("TINY_LOG"):
            with open(os.environ["TINY_LOG"], "a") as log:
                log.write(f"{what} {event.kind} {event.key} {os.getpid()}\\n")


    @hookimpl
    def occbench_stage_started(event):
        _log("started", event)


    @hookimpl
    def occbench_stage_finished(event):
        _log("reused" if event.cached else "finished", event)
        if os.environ.get("TINY_EVENTS"):  # the whole event, as a plugin sees it
            import json

            with open(os.environ["TINY_EVENTS"], "a") as log:
                log.write(json.dumps({"kind": event.kind, "key": event.key, "label": event.label,
                                      "settings": event.settings, "cell": event.cell, "records": event.records,
                                      "record": event.record, "seconds": event.seconds, "cached": event.cached,
                                      "output": sorted(event.output)}, default=str) + "\\n")
"""

OVERRIDES = ["pretrain.epochs=2", "data.batch_size=16", "protocols.linear.torchlight.epochs=4",
             "protocols.linear.torchlight.batch_size=16", "protocols.linear.torchlight.eval_every=2"]


@pytest.fixture
def tiny_grid(tmp_path, monkeypatch, third_party):
    """(tmp_path, site of the plugin, `occbench run` arguments) for tinyclr, seeds 0 and 1, on a tiny dataset."""
    site = third_party("occbench-tiny", "occbench_tiny", TINY)
    raw = yaml.safe_load(CATALOGUE.read_text())
    raw["datasets"]["synthetic"]["synth"] = dict(TINY_SYNTH)
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("OCCBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TINY_LOG", str(tmp_path / "log.txt"))
    args = ["run", "--registry", str(registry), "--methods", "tinyclr", "--imputers", "none",
            "--seeds", "0,1", "--results", str(tmp_path / "results"), "--cfg-options", *OVERRIDES]
    return tmp_path, site, args


def events(tmp_path, event):
    """[kind, key, pid] of each logged event."""
    log = tmp_path / "log.txt"
    return [line.split()[1:] for line in log.read_text().splitlines() if line.startswith(event)] if log.exists() else []


def cli_env(site) -> dict:
    """The environment of an `occbench` subprocess that finds the tiny plugin, its stages slowed down
    so that a test can act mid-grid, one thread each."""
    return {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "TINY_SLOW": "0.05", "OMP_NUM_THREADS": "1"}
