"""The none/random/knn imputer plugins: registration, the common call, and `occbench impute`'s report."""

from __future__ import annotations

import numpy as np
import pytest

import occbench_plugins.imputers as imputers_plugin
from occbench.data.dataset import DatasetWriter, SkeletonDataset
from occbench.data.ntu import NUM_JOINTS
from occbench.data.occlusion import occlude
from occbench.data.preprocess import preprocess
from occbench.errors import OccbenchError
from occbench.impute import impute_command
from occbench.plugins import load_plugins


def host():
    # the same module whether or not the installed entry point "imputers" already provides it
    return load_plugins(disabled=("imputers",), extra={"builtin-imputers": imputers_plugin})


def clean_dataset(path, n=36, frames=10, classes=3) -> SkeletonDataset:
    """People standing 2.5-4 m in front of the camera, moving their joints along class paths."""
    rng = np.random.default_rng(0)
    label = np.arange(n) % classes
    pose = rng.normal(0, 0.3, (classes, 3, 1, NUM_JOINTS))
    t = np.arange(frames)[None, :, None]
    data = np.zeros((n, 3, frames, NUM_JOINTS, 2), np.float32)
    for i in range(n):
        offset = np.array([rng.uniform(-0.5, 0.5), 0.0, rng.uniform(2.5, 4.0)])[:, None, None]
        data[i, ..., 0] = pose[label[i]] + offset + 0.2 * np.sin(t / 2 + label[i]) + rng.normal(0, 0.02, (3, frames,
                                                                                                           NUM_JOINTS))
    present = np.zeros((n, frames, 2), bool)
    present[:, :, 0] = True
    with DatasetWriter(path, n, frames) as writer:
        writer["data"][:], writer["present"][:] = data, present
        writer["mask"][:] = present[:, :, None, :].repeat(NUM_JOINTS, 2)
        writer["length"][:], writer["label"][:] = frames, label
        writer.names = [f"S001C001P{i:03d}R001A{label[i] + 1:03d}" for i in range(n)]
        splits = {"xsub": {"train": list(range(0, n, 3)) + list(range(1, n, 3)), "val": list(range(2, n, 3))}}
        return writer.finish(splits, {"benchmark": "synthetic", "num_class": classes, "frames": frames,
                                      "stages": []})


@pytest.fixture(scope="module")
def occluded(tmp_path_factory):
    root = tmp_path_factory.mktemp("imputers")
    clean = clean_dataset(root / "clean")
    occ = occlude(clean, root / "occluded", "random", seed=0, fraction=0.3)
    return occ, preprocess(occ, root / "frames", frames=6)


def test_registers_none_random_knn():
    registry = host().imputers
    assert {"none", "random", "knn"} <= set(registry.names())
    assert registry["knn"].needs_encoder and not registry["random"].needs_encoder
    assert not registry["none"].needs_encoder
    assert registry["knn"].defaults["n_neighbors"] == 5 and registry["knn"].defaults["stage1_method"] == "opstl"
    assert registry["knn"].defaults["clusters"] == "num_class"
    assert registry["random"].defaults == {"variant": "donor"}


def test_none_returns_the_raw_input_without_copying(occluded, tmp_path):
    raw, frames = occluded
    assert host().imputers["none"](raw, frames, "xsub", tmp_path / "none") is raw
    assert host().imputers["none"](None, frames, "xsub", tmp_path / "none") is frames
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("name", ["random", "knn"])
def test_imputers_fill_one_split(occluded, tmp_path, name):
    """The runner's call: imputer(raw, frames, split, out, settings, seed, embed=..., progress=...)."""
    raw, frames = occluded
    calls = []

    def embed(part):  # stands in for the stage-1 encoder: a forward pass over part.data
        calls.append(len(part))
        return np.asarray(part.data, np.float32).reshape(len(part), -1)[:, :64]

    settings = {"n_neighbors": 5, "clusters": "num_class", "stage1_method": "opstl"} if name == "knn" else {}
    imputed = host().imputers[name](raw, frames, "xsub", tmp_path / name, settings, 0, embed=embed, progress=False)
    assert imputed.path == tmp_path / name and imputed.frames == raw.frames
    assert (sum(calls) == len(raw)) if name == "knn" else not calls  # every sample of the split, once
    filled = np.asarray(imputed.extra["imputed"])
    body = np.asarray(imputed.present)[:, :, None, :].repeat(NUM_JOINTS, 2)
    assert filled.any() and np.array_equal(np.asarray(imputed.mask), body)  # every occluded joint filled
    assert [s["stage"] for s in imputed.meta["stages"]][-2:] == ["occlude", "impute"]
    ready = preprocess(imputed, tmp_path / "frames", frames=frames.frames)
    assert ready.frames == frames.frames


def test_bad_settings_are_refused(occluded, tmp_path):
    raw, frames = occluded
    with pytest.raises(OccbenchError, match="unknown setting"):
        host().imputers["knn"](raw, frames, "xsub", tmp_path / "x", {"k": 2})
    with pytest.raises(OccbenchError, match="clusters"):
        host().imputers["knn"](raw, frames, "xsub", tmp_path / "x", {"clusters": "many"})


def test_impute_command_reports_quality(occluded, tmp_path, monkeypatch):
    import occbench.plugins

    raw, _ = occluded
    monkeypatch.setattr(occbench.plugins, "load_plugins", lambda disabled=(): host())
    result = impute_command("knn", raw.path, tmp_path / "out", split="xsub", settings={"clusters": 3}, seed=0)
    for name in ("quality.csv", "quality.md", "quality_xsub.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    quality = result["quality"]["xsub"]
    assert set(quality) == {"knn", "none", "random"}
    for part in ("train", "val"):
        assert quality["knn"]["mpjpe"][part] < quality["none"]["mpjpe"][part]
        assert quality["random"]["mpjpe"][part] < quality["none"]["mpjpe"][part]
    assert SkeletonDataset(result["outputs"]["xsub"]["frames"]).frames == 50
    assert "| all" in result["report"]
