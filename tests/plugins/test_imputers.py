"""The built-in imputers (none, interp, mean, random, knn) on the imputer contract: registration, what each
declares, the cluster pipeline (test samples never donate, the nearest-cluster fallback, determinism, memory),
the random fill, interp and mean on worked examples, their settings, and `occbench impute`'s report."""

from __future__ import annotations

import numpy as np
import pytest

import occbench.impute as imp
import occbench_plugins.imputers as imputers_plugin
from occbench.data.dataset import DatasetWriter, SkeletonDataset
from occbench.data.ntu import NUM_JOINTS
from occbench.data.occlusion import occlude
from occbench.data.preprocess import preprocess
from occbench.errors import OccbenchError
from occbench.impute import (
    ImputeJob,
    Imputer,
    ground_truth,
    imputation_error,
    impute_and_preprocess,
    impute_command,
    knn_fill,
)
from occbench.plugins import load_plugins
from occbench_plugins.imputers import InterpImputer, KnnImputer, MeanPoseImputer, NoImputer, RandomImputer
from tests.test_impute import by_label, make_dataset, observed_and_target, occluded_synthetic, with_arrays

NONE, RANDOM, KNN, INTERP, MEAN = NoImputer(), RandomImputer(), KnnImputer(), InterpImputer(), MeanPoseImputer()


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


def test_registers_the_built_ins_on_the_base_class():
    registry = host().imputers
    assert registry.names() == ["none", "interp", "meanpose", "random", "knn-pstl", "knn"]
    assert registry["knn-pstl"].stage1_method({}) == "pstl"
    assert registry["knn-pstl"].defaults == registry["knn"].defaults | {"stage1_method": "pstl"}
    orders = [registry[name].order for name in registry.names()]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)  # tables: none, interp, mean, random, knn
    assert all(registry[name].title for name in registry.names())
    assert all(isinstance(registry[name], Imputer) and registry[name].name == name for name in registry.names())
    assert [name for name in registry.names() if registry[name].identity] == ["none"]
    assert registry["knn"].stage1_method({}) == "opstl"  # the paper's: one stage-1 OPSTL encoder, shared
    assert registry["knn"].stage1_method({"stage1_method": "pstl"}) == "pstl"
    assert all(registry[name].stage1_method({}) is None for name in ("none", "interp", "meanpose", "random"))
    assert registry["knn"].defaults == {"n_neighbors": 5, "clusters": "num_class", "max_iter": 100,
                                        "stage1_method": "opstl", "device": None}
    assert registry["random"].defaults == {"variant": "donor"}
    assert registry["none"].defaults == registry["interp"].defaults == registry["meanpose"].defaults == {}
    assert not hasattr(registry["knn"], "needs_encoder")


def test_none_returns_the_raw_input_without_copying(occluded, tmp_path):
    raw, frames = occluded
    assert host().imputers["none"](raw, frames, "xsub", tmp_path / "none") is raw
    assert host().imputers["none"](None, frames, "xsub", tmp_path / "none") is frames
    assert not (tmp_path / "none").exists()


def test_the_catalogues_imputer_settings_are_the_plugins_own():
    from occbench.catalogue import load_catalogue

    profile = load_catalogue().profile("paper")
    for name, settings in profile["imputers"].items():
        assert host().imputers[name].resolve(settings) == host().imputers[name].defaults


@pytest.mark.parametrize("name", ["random", "knn", "meanpose"])
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


def test_impute_command_reports_quality(occluded, tmp_path, monkeypatch):
    import occbench.plugins

    raw, _ = occluded
    monkeypatch.setattr(occbench.plugins, "load_plugins", lambda disabled=(): host())
    result = impute_command("knn", raw.path, tmp_path / "out", split="xsub", settings={"clusters": 3}, seed=0,
                            compare=("none", "random"))
    for name in ("quality.csv", "quality.md", "quality_xsub.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    quality = result["quality"]["xsub"]
    assert set(quality) == {"knn", "none", "random"}
    for part in ("train", "val"):
        assert quality["knn"]["mpjpe"][part] < quality["none"]["mpjpe"][part]
        assert quality["random"]["mpjpe"][part] < quality["none"]["mpjpe"][part]
    assert SkeletonDataset(result["outputs"]["xsub"]["frames"]).frames == 50
    assert "| all" in result["report"]


def test_impute_command_compares_with_leaving_the_zeros_by_default(occluded, tmp_path, monkeypatch):
    import occbench.plugins

    raw, _ = occluded
    monkeypatch.setattr(occbench.plugins, "load_plugins", lambda disabled=(): host())
    result = impute_command("random", raw.path, tmp_path / "out", split="xsub", seed=0)
    assert set(result["quality"]["xsub"]) == {"random", "none"}
    with pytest.raises(OccbenchError, match="imputers.random.variatn: unknown setting; did you mean"):
        impute_command("random", raw.path, tmp_path / "other", settings={"variatn": "donor"})
    assert not (tmp_path / "other").exists()


# --- knn and random on the datasets of the core's tests --------------------------------------------


@pytest.fixture
def small(tmp_path):
    return make_dataset(tmp_path / "occ")


def test_output_layout_and_mask_semantics(small, tmp_path):
    out = KNN(small, None, "xsub", tmp_path / "knn", {"clusters": 4}, seed=0, embed=by_label)
    observed, target = observed_and_target(small)
    rows = np.concatenate([small.splits["xsub"]["train"], small.splits["xsub"]["val"]])
    assert out.names == [small.names[i] for i in rows]
    assert out.splits == {"xsub": {"train": pytest.approx(np.arange(40)), "val": pytest.approx(np.arange(40, 60))}}
    imputed = np.asarray(out.extra["imputed"])
    assert np.array_equal(imputed, target[rows])  # every occluded joint is filled, nothing else
    assert np.array_equal(np.asarray(out.mask), np.asarray(small.mask)[rows] | imputed)
    seen = observed[rows][:, None].repeat(3, 1)
    assert np.array_equal(np.asarray(out.data)[seen], np.asarray(small.data)[rows][seen])  # observed kept
    absent = ~np.asarray(small.present)[rows][:, None, :, None, :].repeat(3, 1).repeat(NUM_JOINTS, 3)
    assert (np.asarray(out.data)[absent] == 0).all()  # absent bodies stay 0
    n, t, v, m = imputed.nonzero()
    assert np.abs(np.asarray(out.data)[n, :, t, v, m]).min() > 0
    for name in ("present", "length", "label"):
        assert np.array_equal(getattr(out, name), getattr(small, name)[rows])
    stage = out.meta["stages"][-1]
    assert stage["stage"] == "impute" and stage["imputer"] == "knn" and stage["split"] == "xsub"
    assert stage["source"] == str(small.path.resolve()) and stage["clusters"] == 4 and stage["unfilled"] == 0


def test_knn_pipeline_equals_knn_fill_per_cluster(small, tmp_path):
    """Inside a cluster the pipeline is knn_fill(val and train rows, donors = the cluster's train rows)."""
    out = KNN(small, None, "xsub", tmp_path / "knn", {"clusters": 4}, seed=0, embed=by_label)
    train, val = small.splits["xsub"]["train"], small.splits["xsub"]["val"]
    observed, _ = observed_and_target(small)
    data = np.asarray(small.data, np.float64)
    flat = np.where(observed[:, None], data, np.nan).reshape(len(small), -1)
    label = np.asarray(small.label)
    for c in range(4):
        tr, va = train[label[train] == c], val[label[val] == c]
        rows = np.concatenate([tr, va])
        expected = knn_fill(flat[rows], 5, donors=flat[tr])
        got = np.asarray(out.data, np.float64).reshape(len(out), -1)[np.concatenate(
            [np.flatnonzero(label[train] == c), 40 + np.flatnonzero(label[val] == c)])]
        # compare observed cells and the filled ones that the cluster's own donors have
        target = observed_and_target(small)[1][rows]
        target = target[:, None].repeat(3, 1).reshape(len(rows), -1) & ~np.isnan(flat[tr]).all(0)
        check = ~np.isnan(flat[rows]) | target
        assert target.sum() > 100
        assert np.abs(got[check] - expected[check]).max() < 1e-5


def test_test_samples_never_donate(small, tmp_path):
    """Changing validation samples changes neither the training results nor other validation samples."""
    first = KNN(small, None, "xsub", tmp_path / "a", {"clusters": 4}, embed=by_label)
    # a copy whose validation samples (except the first) are replaced by a copy of training sample 0's
    # neighbourhood: perfect donors, if validation samples could donate
    data, mask = np.asarray(small.data).copy(), np.asarray(small.mask).copy()
    val = small.splits["xsub"]["val"]
    for i in val[1:]:
        data[i] = data[val[0]] * 0 + 7.0 * small.present[i][None, :, None, :]
        mask[i] = small.present[i][:, None, :]
    other = with_arrays(small, tmp_path / "changed", data, mask)
    second = KNN(other, None, "xsub", tmp_path / "b", {"clusters": 4}, embed=by_label)
    assert np.array_equal(np.asarray(first.data)[:41], np.asarray(second.data)[:41])  # train + first val
    assert (np.asarray(second.data)[:41] != 7.0).all()


def test_position_missing_in_a_whole_cluster_comes_from_the_nearest_cluster(tmp_path):
    source = make_dataset(tmp_path / "src", hide=0.1)
    mask = np.asarray(source.mask).copy()
    data = np.asarray(source.data).copy()
    label = np.asarray(source.label)
    mask[label == 0, 3, 7, 0] = False  # class 0 (its own cluster) never sees joint 7 of body 0 at frame 3
    data[:, :, 3, 7, 0] *= mask[:, None, 3, 7, 0]
    holes = with_arrays(source, tmp_path / "holes", data, mask)
    out = KNN(holes, None, "xsub", tmp_path / "knn", {"clusters": 4}, embed=by_label)
    stage = out.meta["stages"][-1]
    assert stage["by_other_clusters"] >= (label == 0).sum() and stage["unfilled"] == 0
    rows = np.flatnonzero(np.asarray(out.label) == 0)
    assert np.asarray(out.extra["imputed"])[rows, 3, 7, 0].all()
    values = np.asarray(out.data)[rows, :, 3, 7, 0]
    others = np.asarray(holes.data)[np.asarray(holes.label) != 0][:, :, 3, 7, 0]
    assert (values != 0).all() and values.min() >= others.min() - 1e-6 and values.max() <= others.max() + 1e-6


def test_deterministic_with_a_seed(small, tmp_path):
    a = KNN(small, None, "xsub", tmp_path / "a", {"clusters": 3}, seed=3)
    b = KNN(small, None, "xsub", tmp_path / "b", {"clusters": 3}, seed=3)
    assert np.array_equal(np.asarray(a.data), np.asarray(b.data))
    r1 = RANDOM(small, None, "xsub", tmp_path / "r1", seed=1)
    r2 = RANDOM(small, None, "xsub", tmp_path / "r2", seed=1)
    r3 = RANDOM(small, None, "xsub", tmp_path / "r3", seed=2)
    assert np.array_equal(np.asarray(r1.data), np.asarray(r2.data))
    assert not np.array_equal(np.asarray(r1.data), np.asarray(r3.data))


def test_random_fill_takes_only_observed_training_values(small, tmp_path):
    out = RANDOM(small, None, "xsub", tmp_path / "random", seed=0)
    train = small.splits["xsub"]["train"]
    observed, _ = observed_and_target(small)
    imputed = np.asarray(out.extra["imputed"])
    assert out.meta["stages"][-1]["unfilled"] == 0 and imputed.sum() > 100
    for n, t, v, m in zip(*np.nonzero(imputed), strict=True):
        donors = train[observed[train, t, v, m]]
        candidates = np.asarray(small.data)[donors, :, t, v, m]
        assert (np.abs(candidates - np.asarray(out.data)[n, :, t, v, m]).max(1) == 0).any()


def test_random_uniform_variant_stays_in_the_training_range(small, tmp_path):
    out = RANDOM(small, None, "xsub", tmp_path / "u", {"variant": "uniform"}, seed=0)
    train = small.splits["xsub"]["train"]
    observed, _ = observed_and_target(small)
    data = np.asarray(small.data)[train]
    seen = observed[train][:, None]
    lo = np.where(seen, data, np.inf).min(axis=(0, 2, 4))
    hi = np.where(seen, data, -np.inf).max(axis=(0, 2, 4))
    imputed = np.asarray(out.extra["imputed"])
    n, t, v, m = np.nonzero(imputed)
    values = np.asarray(out.data)[n, :, t, v, m]  # (cells, 3)
    assert (values >= lo[:, v].T - 1e-6).all() and (values <= hi[:, v].T + 1e-6).all()


# --- interp and mean on worked examples ------------------------------------------------------------


def tiny(path, data, mask, present, length, train=(0,), val=(1,)) -> SkeletonDataset:
    """A dataset written as given: data (n, 3, T, 25, 2), mask (n, T, 25, 2), present (n, T, 2), length (n,)."""
    n, _, frames = data.shape[:3]
    with DatasetWriter(path, n, frames) as writer:
        writer["data"][:], writer["mask"][:], writer["present"][:] = data, mask, present
        writer["length"][:], writer["label"][:] = length, 0
        writer.names = [f"S001C001P{i:03d}R001A001" for i in range(n)]
        return writer.finish({"xsub": {"train": list(train), "val": list(val)}},
                             {"benchmark": "synthetic", "num_class": 1, "frames": frames, "stages": []})


def test_interp_on_a_worked_example(tmp_path):
    """Sample 0 (7 frames, 6 of them its true length): joint 3 of body 0 seen at frames 1 and 4, body 1 absent
    at frames 2-3 and its joint 3 seen at frames 0 and 5; joint 5 never seen; the padding frame 6 claims a
    visible joint 3 that must not be read. Sample 1: joint 3 seen at frame 2 only."""
    n, frames = 2, 7
    data = np.zeros((n, 3, frames, NUM_JOINTS, 2), np.float32)
    mask = np.zeros((n, frames, NUM_JOINTS, 2), bool)
    present = np.zeros((n, frames, 2), bool)
    present[0, :6, 0] = present[1, :, 0] = True
    present[0, [0, 1, 4, 5], 1] = True
    length = np.array([6, 7])
    others = [v for v in range(NUM_JOINTS) if v not in (3, 5)]
    mask[:, :, others] = present[:, :, None, :]
    data[:, :, :, others] = 9.0 * present[:, None, :, None, :]
    for (i, t, m), xyz in {(0, 1, 0): (1, 2, 3), (0, 4, 0): (4, 8, 0), (0, 0, 1): (0, 0, 1), (0, 5, 1): (5, 0, 1),
                           (0, 6, 0): (100, 100, 100), (1, 2, 0): (-1, 0.5, 2)}.items():
        data[i, :, t, 3, m], mask[i, t, 3, m] = xyz, True
    source = tiny(tmp_path / "src", data, mask, present, length)
    out = INTERP(source, None, "xsub", tmp_path / "interp")
    got, imputed = np.asarray(out.data), np.asarray(out.extra["imputed"])
    expected = {0: (1, 2, 3), 2: (2, 4, 2), 3: (3, 6, 1), 5: (4, 8, 0)}  # held, 1/3 and 2/3 of the way, held
    for t, xyz in expected.items():
        assert got[0, :, t, 3, 0] == pytest.approx(xyz, abs=1e-6), t
    assert imputed[0, :, 3, 0].tolist() == [True, False, True, True, False, True, False]
    assert got[0, :, 6, 3, 0].tolist() == [100, 100, 100]  # the padding frame as it was, not filled
    assert got[0, :, 1, 3, 1] == pytest.approx((1, 0, 1)) and got[0, :, 4, 3, 1] == pytest.approx((4, 0, 1))
    assert imputed[0, :, 3, 1].tolist() == [False, True, False, False, True, False, False]  # absent at 2-3
    assert (got[0, :, 2:4, :, 1] == 0).all()
    assert (got[1, :, :, 3, 0] == np.array([-1, 0.5, 2], np.float32)[:, None]).all()  # held both ways
    assert not imputed[:, :, 5].any() and not np.asarray(out.mask)[:, :, 5].any()  # never seen: stays occluded
    assert (got[:, :, :, 5] == 0).all()
    assert np.array_equal(got[:, :, :, others], data[:, :, :, others])
    stage = out.meta["stages"][-1]
    assert (stage["interpolated"], stage["held"], stage["unfilled"]) == (4, 8, 6 + 4 + 7)  # joint 5 per body-frame


def test_mean_pose_on_a_worked_example(tmp_path):
    """Training body-frames (x only; y = 1, z = 2 throughout) see joints {0, 1} at 0, 1; {1, 2} at 5, 7;
    {0, 2} at 0, 6; and {0} alone at 100. The least-squares pose has offsets 0, 2, 5 (up to a common shift;
    the mean of the visible joints as centre would give 0, 1.5, 3.75); the lone joint says nothing."""
    n, frames = 2, 5
    data = np.zeros((n, 3, frames, NUM_JOINTS, 2), np.float32)
    mask = np.zeros((n, frames, NUM_JOINTS, 2), bool)
    present = np.zeros((n, frames, 2), bool)
    present[0, :4, 0] = present[1, :3, 0] = True
    length = np.array([4, 3])
    seen = {(0, 0): {0: 0, 1: 1}, (0, 1): {1: 5, 2: 7}, (0, 2): {0: 0, 2: 6}, (0, 3): {0: 100},
            (1, 0): {0: 10, 1: 11}, (1, 1): {1: 4}}  # sample 1, frame 2: nothing visible
    for (i, t), joints in seen.items():
        for v, x in joints.items():
            data[i, :, t, v, 0], mask[i, t, v, 0] = (x, 1, 2), True
    source = tiny(tmp_path / "src", data, mask, present, length)
    out = MEAN(source, None, "xsub", tmp_path / "mean", seed=5)
    got, imputed = np.asarray(out.data), np.asarray(out.extra["imputed"])
    expected = {(0, 0, 2): 4.5, (0, 1, 0): 2.5, (0, 2, 1): 2.5, (0, 3, 1): 102, (0, 3, 2): 105,
                (1, 0, 2): 14.5, (1, 1, 0): 2, (1, 1, 2): 7}  # centre fitted on the visible joints + offset
    for (i, t, v), x in expected.items():
        assert got[i, :, t, v, 0] == pytest.approx((x, 1, 2), abs=1e-5), (i, t, v)
    filled = np.zeros_like(imputed)
    for i, t, v in expected:
        filled[i, t, v, 0] = True
    assert np.array_equal(imputed, filled)  # joints 3-24 never seen: no offset; sample 1 frame 2: no centre
    assert (got[1, :, 2] == 0).all() and (got[0, :, 4] == 0).all()
    stage = out.meta["stages"][-1]
    assert stage["pose_joints"] == 3 and stage["filled"] == len(expected)
    assert stage["unfilled"] == 4 * NUM_JOINTS + 3 * NUM_JOINTS - len(expected) - sum(map(len, seen.values()))
    again = MEAN(source, None, "xsub", tmp_path / "again", seed=6)  # deterministic: the seed plays no part
    assert np.array_equal(np.asarray(again.data), got)


def test_mean_pose_is_exact_for_translated_copies_of_one_pose(small, tmp_path):
    """Training bodies that are one pose moved about, each frame missing other joints: every occluded joint
    comes back exactly, which a centre at the mean of the visible joints would not give."""
    rng = np.random.default_rng(1)
    observed, _ = observed_and_target(small)
    pose = rng.normal(0, 0.3, (3, NUM_JOINTS))
    shift = rng.normal(0, 1, (len(small), 3, small.frames, 1, 2))
    present = np.asarray(small.present)[:, None, :, None, :]
    truth = ((pose[None, :, None, :, None] + shift) * present).astype(np.float32)
    source = with_arrays(small, tmp_path / "rigid", np.where(observed[:, None], truth, 0), np.asarray(small.mask))
    out = MEAN(source, None, "xsub", tmp_path / "mean")
    imputed = np.asarray(out.extra["imputed"])
    rows = np.concatenate([small.splits["xsub"]["train"], small.splits["xsub"]["val"]])
    assert imputed.sum() > 100
    assert np.abs(np.asarray(out.data) - truth[rows]).max() < 1e-4


@pytest.mark.parametrize("imputer", [MEAN, INTERP], ids=["meanpose", "interp"])
def test_test_samples_never_contribute(small, tmp_path, imputer):
    """Changing every validation sample but the first changes neither the training results nor the first
    validation sample's."""
    first = imputer(small, None, "xsub", tmp_path / "a")
    data, mask = np.asarray(small.data).copy(), np.asarray(small.mask).copy()
    val = small.splits["xsub"]["val"]
    data[val[1:]] = 50.0 * np.asarray(small.present)[val[1:]][:, None, :, None, :]
    mask[val[1:], :, 3:] = False  # other joints seen and hidden
    other = with_arrays(small, tmp_path / "changed", data, mask)
    second = imputer(other, None, "xsub", tmp_path / "b")
    assert np.array_equal(np.asarray(first.data)[:41], np.asarray(second.data)[:41])
    assert not np.array_equal(np.asarray(first.data)[41:], np.asarray(second.data)[41:])  # the change was seen


def test_padding_frames_are_neither_filled_nor_donated(tmp_path):
    lengths = np.array([8 if i % 2 else 5 for i in range(60)], np.int32)
    source = make_dataset(tmp_path / "src", long=lengths)
    for imputer in (KNN, RANDOM, INTERP, MEAN):
        out = imputer(source, None, "xsub", tmp_path / imputer.name)
        imputed = np.asarray(out.extra["imputed"])
        short = np.asarray(out.length) == 5
        assert not imputed[short][:, 5:].any() and imputed[short][:, :5].any()
        assert (np.asarray(out.data)[short][:, :, 5:] == 0).all()


def test_reads_cluster_by_cluster(tmp_path, monkeypatch):
    import tracemalloc

    source = make_dataset(tmp_path / "src", n_train=300, n_val=100, frames=16, classes=10)
    monkeypatch.setattr(imp, "_CHUNK_BYTES", 1 << 16)  # the copy passes read 64 kB at a time
    reads = []
    real = ImputeJob.read

    def spy(job, rows, window=None, data=True):
        if data:
            reads.append(len(rows))
        return real(job, rows, window, data)

    monkeypatch.setattr(ImputeJob, "read", spy)
    tracemalloc.start()
    KNN(source, None, "xsub", tmp_path / "knn", {"clusters": 10}, embed=by_label)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert max(reads) == 40  # one cluster: 30 training and 10 validation samples
    split_bytes = source.data.nbytes
    assert peak < 0.4 * split_bytes


def test_imputing_the_50_frame_data_and_preprocessing_after(small, tmp_path):
    frames = preprocess(small, tmp_path / "frames", frames=6)
    result = impute_and_preprocess(KNN, small, frames, "xsub", tmp_path / "out", {"clusters": 4}, embed=by_label)
    assert result.data.frames == small.frames and result.frames.frames == 6
    assert np.asarray(result.frames.mask)[np.asarray(result.frames.present)[:, :, None, :].repeat(25, 2)].all()
    direct = impute_and_preprocess(RANDOM, None, frames, "xsub", tmp_path / "direct")
    assert direct.data.path == direct.frames.path and direct.data.frames == 6
    assert direct.data.meta["stages"][-1]["source"] == str(frames.path.resolve())
    none = impute_and_preprocess(NONE, small, frames, "xsub", tmp_path / "none")
    assert none.data is small and none.frames is frames and not (tmp_path / "none").exists()


@pytest.mark.parametrize("imputer, settings, message", [
    (KNN, {"k": 3}, "imputers.knn.k: unknown setting (imputers.knn has clusters, device, max_iter, n_neighbors, "
                    "stage1_method)"),
    (KNN, {"n_neigbors": 3}, "imputers.knn.n_neigbors: unknown setting; did you mean imputers.knn.n_neighbors?"),
    (KNN, {"n_neighbors": 0}, "imputers.knn.n_neighbors=0: out of range; expected an integer >= 1"),
    (KNN, {"n_neighbors": 2.5}, "imputers.knn.n_neighbors=2.5: expected an integer >= 1"),
    (KNN, {"clusters": 0}, 'imputers.knn.clusters=0: expected an integer >= 1 or "num_class"'),
    (KNN, {"clusters": "many"}, "imputers.knn.clusters='many': expected an integer >= 1 or \"num_class\""),
    (KNN, {"clusters": True}, "imputers.knn.clusters=True: expected an integer"),
    (KNN, {"max_iter": 0}, "imputers.knn.max_iter=0: out of range"),
    (KNN, {"stage1_method": 3}, "imputers.knn.stage1_method=3: expected a string"),
    (RANDOM, {"variant": "gaussian"}, "imputers.random.variant='gaussian': use donor or uniform"),
    (NONE, {"variant": "donor"}, "imputers.none.variant: unknown setting (imputers.none has nothing)"),
    (INTERP, {"max_gap": 3}, "imputers.interp.max_gap: unknown setting (imputers.interp has nothing)"),
    (MEAN, {"centre": "hip"}, "imputers.meanpose.centre: unknown setting (imputers.meanpose has nothing)"),
])
def test_bad_settings_are_one_line_errors(small, tmp_path, imputer, settings, message):
    with pytest.raises(OccbenchError) as caught:
        imputer(small, None, "xsub", tmp_path / "x", settings)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "x").exists()


# --- all of them on realistic occlusion -----------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    clean, occluded = occluded_synthetic(root)
    made = {"none": occluded}
    for imputer in (RANDOM, KNN, INTERP, MEAN):
        made[imputer.name] = imputer(occluded, None, "xsub", root / imputer.name, seed=0)
    return clean, occluded, made


def test_mean_beats_knn_beats_random_beats_interp_beats_zeros_on_realistic_occlusion(synthetic):
    """The order measured (here and on the embedded dataset): realistic occluders stay put, so most occluded
    joints are never seen in their clip and interp leaves them at 0; the mean pose fits every one."""
    clean, occluded, made = synthetic
    assert [ds.path for ds in ground_truth(made["knn"])] == [occluded.path, clean.path]
    errors = {name: imputation_error(ds, "xsub") for name, ds in made.items()}
    for part in ("train", "val", "all"):
        overall = {name: df[(df.part == part) & (df.joint == "all")].mpjpe.iloc[0] for name, df in errors.items()}
        order = [overall[name] for name in ("meanpose", "knn", "random", "interp", "none")]
        assert order == sorted(order) and len(set(order)) == len(order), (part, overall)
    counts = {name: int(df[(df.part == "all") & (df.joint == "all")]["count"].iloc[0]) for name, df in errors.items()}
    assert len(set(counts.values())) == 1 and counts["knn"] > 100  # the same occluded joints for all
