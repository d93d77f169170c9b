"""Imputation: the exact fast KNN core against scikit-learn, the cluster pipeline (test samples never
donate, the nearest-cluster fallback, determinism, memory), the random fill, and the quality report."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import occbench.impute as imp
from occbench.data.dataset import DatasetWriter
from occbench.data.ntu import NUM_JOINTS
from occbench.data.occlusion import occlude
from occbench.data.prepare import prepare
from occbench.data.synth import SynthConfig, synthesize
from occbench.errors import OccbenchError
from occbench.impute import (
    error_plot,
    error_table,
    ground_truth,
    imputation_error,
    impute_and_preprocess,
    impute_split,
    knn_core,
    knn_fill,
    quality_record,
)


def sklearn_knn(x, k=5, donors=None):
    from sklearn.impute import KNNImputer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imputer = KNNImputer(n_neighbors=k, weights="distance", keep_empty_features=True)
        if donors is None:
            return imputer.fit_transform(x)
        return imputer.fit(donors).transform(x)


def with_nans(rng, shape, rate):
    x = rng.normal(size=shape)
    x[rng.random(shape) < rate] = np.nan
    return x


# --- knn_fill: the core against scikit-learn ------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "d", "rate", "k", "seed"),
    [(40, 12, 0.1, 5, 0), (60, 30, 0.3, 5, 1), (25, 8, 0.6, 5, 2), (30, 6, 0.85, 3, 3), (4, 5, 0.3, 5, 4),
     (50, 20, 0.3, 1, 5), (80, 40, 0.5, 9, 6)],
)
def test_knn_fill_equals_sklearn(n, d, rate, k, seed):
    rng = np.random.default_rng(seed)
    x = with_nans(rng, (n, d), rate)
    assert np.abs(knn_fill(x, k) - sklearn_knn(x, k)).max() < 1e-8


def test_knn_fill_edge_cases_equal_sklearn():
    rng = np.random.default_rng(7)
    x = with_nans(rng, (30, 10), 0.3)
    x[:, 4] = np.nan  # a column nobody has: 0
    x[0] = np.nan
    x[0, 0] = 1.0  # shares at most column 0 with the others
    x[1:, 0] = np.nan  # ... and nobody else has column 0: no distance to anyone -> column means
    x[5] = x[6]  # duplicate rows: distance 0 between them
    x[7, :] = x[8, :] + 0.0
    x[7, 2] = np.nan  # 7 needs column 2 and 8 (at distance 0) has it
    x[8, 2] = 3.0
    got = knn_fill(x)
    assert np.abs(got - sklearn_knn(x)).max() < 1e-8
    assert (got[:, 4] == 0).all()
    assert got[7, 2] == pytest.approx(3.0)  # zero-distance donors take all the weight
    assert got[0, 1] == pytest.approx(np.nanmean(x[:, 1]))


def test_knn_fill_with_donors_equals_sklearn_transform():
    rng = np.random.default_rng(8)
    donors, x = with_nans(rng, (40, 15), 0.3), with_nans(rng, (20, 15), 0.4)
    got = knn_fill(x, 5, donors=donors)
    assert np.abs(got - sklearn_knn(x, 5, donors)).max() < 1e-8
    assert np.array_equal(got[~np.isnan(x)], x[~np.isnan(x)])


def test_fewer_donors_than_neighbours():
    x = np.array([[1.0, np.nan], [2.0, 10.0], [4.0, 20.0]])
    got = knn_fill(x, 5)
    assert got[0, 1] == pytest.approx((10 / 1 + 20 / 3) / (1 / 1 + 1 / 3))
    assert np.abs(got - sklearn_knn(x, 5)).max() < 1e-12


def test_knn_fill_keeps_dtype_and_takes_tensors():
    rng = np.random.default_rng(9)
    x = with_nans(rng, (20, 6), 0.3).astype(np.float32)
    out = knn_fill(x)
    assert out.dtype == np.float32 and not np.isnan(out).any()
    tensor = knn_fill(torch.from_numpy(x))
    assert isinstance(tensor, torch.Tensor) and torch.allclose(tensor, torch.from_numpy(out))
    with pytest.raises(OccbenchError, match="n_neighbors"):
        knn_fill(x, 0)
    with pytest.raises(OccbenchError, match="2-d"):
        knn_fill(x[0])


def test_grouped_positions_equal_flat_columns():
    """x, y, z sharing one mask (the pipeline's layout) gives what knn_fill gives on plain columns."""
    rng = np.random.default_rng(10)
    n, g, p = 30, 3, 9
    values = rng.normal(size=(n, g, p))
    observed = rng.random((n, p)) > 0.35
    flat = np.where(observed[:, None], values, np.nan).reshape(n, g * p)
    expected = knn_fill(flat).reshape(n, g, p)
    rv = torch.from_numpy(np.where(observed[:, None], values, 0.0))
    ro = torch.from_numpy(observed)
    ri, pos, vals, how = knn_core(rv, ro, ~ro, rv, ro, 5)
    assert (how == 2).all()
    assert np.abs(vals.numpy() - expected[ri.numpy(), :, pos.numpy()]).max() < 1e-10


def test_donors_with_no_position_leave_cells_unfilled_in_the_core():
    rv = torch.tensor([[[1.0, 0.0]], [[2.0, 0.0]]])
    ro = torch.tensor([[True, False], [True, False]])
    _, _, _, how = knn_core(rv, ro, ~ro, rv, ro, 5)
    assert how.tolist() == [0, 0]


# --- datasets for the pipeline --------------------------------------------------------------------


def make_dataset(path, n_train=40, n_val=20, frames=8, classes=4, seed=0, hide=0.2, long=None):
    """Joints move on class-specific smooth paths; `hide` of the joint-frames of present bodies are
    occluded (0, not visible); every 5th sample has a second body; lengths vary."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    label = np.arange(n) % classes
    t = np.arange(frames)[None, :, None]
    base = rng.normal(size=(classes, 3, 1, NUM_JOINTS)) + np.array([0, 0, 3.0])[:, None, None]
    data = np.zeros((n, 3, frames, NUM_JOINTS, 2), np.float32)
    present = np.zeros((n, frames, 2), bool)
    length = np.full(n, frames, np.int32) if long is None else long
    for i in range(n):
        c = label[i]
        motion = base[c] + 0.3 * np.sin(t / 3 + c) + 0.05 * rng.normal(size=(3, frames, NUM_JOINTS))
        data[i, :, :, :, 0] = motion
        present[i, : length[i], 0] = True
        if i % 5 == 0:
            data[i, :, :, :, 1] = motion + 0.7
            present[i, : length[i], 1] = True
    data *= present[:, None, :, None, :]
    mask = present[:, :, None, :] & (rng.random((n, frames, NUM_JOINTS, 2)) >= hide)
    data = np.where(mask[:, None], data, 0).astype(np.float32)
    with DatasetWriter(path, n, frames) as writer:
        writer["data"][:], writer["mask"][:], writer["present"][:] = data, mask, present
        writer["length"][:], writer["label"][:] = length, label
        writer.names = [f"S001C001P{i:03d}R001A{label[i] + 1:03d}" for i in range(n)]
        splits = {"xsub": {"train": list(range(n_train)), "val": list(range(n_train, n))}}
        meta = {"benchmark": "synthetic", "num_class": classes, "frames": frames, "stages": []}
        return writer.finish(splits, meta)


def by_label(part):
    """An embedding (of a Part, like the runner's encoder) that puts each class in its own cluster."""
    onehot = np.eye(10, dtype=np.float32)[np.asarray(part.label)]
    return onehot * 10 + np.asarray(part.index, np.float32)[:, None] * 1e-4


@pytest.fixture
def small(tmp_path):
    return make_dataset(tmp_path / "occ")


def observed_and_target(ds):
    return imp._visibility(np.asarray(ds.mask), np.asarray(ds.present), np.asarray(ds.length))


# --- the cluster pipeline -------------------------------------------------------------------------


def test_output_layout_and_mask_semantics(small, tmp_path):
    out = impute_split(small, None, "xsub", tmp_path / "knn", "knn", {"clusters": 4}, seed=0, embed=by_label)
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
    out = impute_split(small, None, "xsub", tmp_path / "knn", "knn", {"clusters": 4}, seed=0, embed=by_label)
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
        target = imp._visibility(small.mask[rows], small.present[rows], small.length[rows])[1]
        target = target[:, None].repeat(3, 1).reshape(len(rows), -1) & ~np.isnan(flat[tr]).all(0)
        check = ~np.isnan(flat[rows]) | target
        assert target.sum() > 100
        assert np.abs(got[check] - expected[check]).max() < 1e-5


def test_test_samples_never_donate(small, tmp_path):
    """Changing validation samples changes neither the training results nor other validation samples."""
    first = impute_split(small, None, "xsub", tmp_path / "a", "knn", {"clusters": 4}, embed=by_label)
    # a copy whose validation samples (except the first) are replaced by a copy of training sample 0's
    # neighbourhood: perfect donors, if validation samples could donate
    data, mask = np.asarray(small.data).copy(), np.asarray(small.mask).copy()
    val = small.splits["xsub"]["val"]
    for i in val[1:]:
        data[i] = data[val[0]] * 0 + 7.0 * small.present[i][None, :, None, :]
        mask[i] = small.present[i][:, None, :]
    changed = tmp_path / "changed"
    with DatasetWriter(changed, len(small), small.frames) as writer:
        for name in ("present", "inferred", "length", "label"):
            writer[name][:] = getattr(small, name)
        writer["data"][:], writer["mask"][:] = data, mask
        writer.names = small.names
        other = writer.finish({"xsub": {p: i.tolist() for p, i in small.splits["xsub"].items()}}, small.meta)
    second = impute_split(other, None, "xsub", tmp_path / "b", "knn", {"clusters": 4}, embed=by_label)
    assert np.array_equal(np.asarray(first.data)[:41], np.asarray(second.data)[:41])  # train + first val
    assert (np.asarray(second.data)[:41] != 7.0).all()


def test_position_missing_in_a_whole_cluster_comes_from_the_nearest_cluster(tmp_path):
    source = make_dataset(tmp_path / "src", hide=0.1)
    mask = np.asarray(source.mask).copy()
    data = np.asarray(source.data).copy()
    label = np.asarray(source.label)
    mask[label == 0, 3, 7, 0] = False  # class 0 (its own cluster) never sees joint 7 of body 0 at frame 3
    data[:, :, 3, 7, 0] *= mask[:, None, 3, 7, 0]
    path = tmp_path / "holes"
    with DatasetWriter(path, len(source), source.frames) as writer:
        for name in ("present", "inferred", "length", "label"):
            writer[name][:] = getattr(source, name)
        writer["data"][:], writer["mask"][:] = data, mask
        writer.names = source.names
        holes = writer.finish({"xsub": {p: i.tolist() for p, i in source.splits["xsub"].items()}}, source.meta)
    out = impute_split(holes, None, "xsub", tmp_path / "knn", "knn", {"clusters": 4}, embed=by_label)
    stage = out.meta["stages"][-1]
    assert stage["by_other_clusters"] >= (label == 0).sum() and stage["unfilled"] == 0
    rows = np.flatnonzero(np.asarray(out.label) == 0)
    assert np.asarray(out.extra["imputed"])[rows, 3, 7, 0].all()
    values = np.asarray(out.data)[rows, :, 3, 7, 0]
    others = np.asarray(holes.data)[np.asarray(holes.label) != 0][:, :, 3, 7, 0]
    assert (values != 0).all() and values.min() >= others.min() - 1e-6 and values.max() <= others.max() + 1e-6


def test_deterministic_with_a_seed(small, tmp_path):
    a = impute_split(small, None, "xsub", tmp_path / "a", "knn", {"clusters": 3}, seed=3)
    b = impute_split(small, None, "xsub", tmp_path / "b", "knn", {"clusters": 3}, seed=3)
    assert np.array_equal(np.asarray(a.data), np.asarray(b.data))
    r1 = impute_split(small, None, "xsub", tmp_path / "r1", "random", seed=1)
    r2 = impute_split(small, None, "xsub", tmp_path / "r2", "random", seed=1)
    r3 = impute_split(small, None, "xsub", tmp_path / "r3", "random", seed=2)
    assert np.array_equal(np.asarray(r1.data), np.asarray(r2.data))
    assert not np.array_equal(np.asarray(r1.data), np.asarray(r3.data))


def test_random_fill_takes_only_observed_training_values(small, tmp_path):
    out = impute_split(small, None, "xsub", tmp_path / "random", "random", seed=0)
    train = small.splits["xsub"]["train"]
    observed, _ = observed_and_target(small)
    imputed = np.asarray(out.extra["imputed"])
    assert out.meta["stages"][-1]["unfilled"] == 0 and imputed.sum() > 100
    for n, t, v, m in zip(*np.nonzero(imputed), strict=True):
        donors = train[observed[train, t, v, m]]
        candidates = np.asarray(small.data)[donors, :, t, v, m]
        assert (np.abs(candidates - np.asarray(out.data)[n, :, t, v, m]).max(1) == 0).any()


def test_random_uniform_variant_stays_in_the_training_range(small, tmp_path):
    out = impute_split(small, None, "xsub", tmp_path / "u", "random", {"variant": "uniform"}, seed=0)
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


def test_padding_frames_are_neither_filled_nor_donated(tmp_path):
    lengths = np.array([8 if i % 2 else 5 for i in range(60)], np.int32)
    source = make_dataset(tmp_path / "src", long=lengths)
    for imputer in ("knn", "random"):
        out = impute_split(source, None, "xsub", tmp_path / imputer, imputer, {}, embed=None)
        imputed = np.asarray(out.extra["imputed"])
        short = np.asarray(out.length) == 5
        assert not imputed[short][:, 5:].any() and imputed[short][:, :5].any()
        assert (np.asarray(out.data)[short][:, :, 5:] == 0).all()


def test_reads_cluster_by_cluster(tmp_path, monkeypatch):
    import tracemalloc

    source = make_dataset(tmp_path / "src", n_train=300, n_val=100, frames=16, classes=10)
    monkeypatch.setattr(imp, "_CHUNK_BYTES", 1 << 16)  # the copy passes read 64 kB at a time
    reads = []
    real = imp._read

    def spy(dataset, rows):
        reads.append(len(rows))
        return real(dataset, rows)

    monkeypatch.setattr(imp, "_read", spy)
    tracemalloc.start()
    impute_split(source, None, "xsub", tmp_path / "knn", "knn", {"clusters": 10}, embed=by_label)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert max(reads) == 40  # one cluster: 30 training and 10 validation samples
    split_bytes = source.data.nbytes
    assert peak < 0.4 * split_bytes


def test_imputing_the_50_frame_data_and_preprocessing_after(small, tmp_path):
    from occbench.data.preprocess import preprocess

    frames = preprocess(small, tmp_path / "frames", frames=6)
    result = impute_and_preprocess("knn", small, frames, "xsub", tmp_path / "out", {"clusters": 4}, embed=by_label)
    assert result.data.frames == small.frames and result.frames.frames == 6
    assert result.frames.meta["stages"][-1]["stage"] == "preprocess"
    assert result.frames.meta["stages"][-2]["stage"] == "impute"
    assert np.asarray(result.frames.mask)[np.asarray(result.frames.present)[:, :, None, :].repeat(25, 2)].all()
    again = impute_and_preprocess("knn", small, frames, "xsub", tmp_path / "out", {"clusters": 4}, embed=by_label)
    assert again.frames.meta == result.frames.meta  # reused, not recomputed
    direct = impute_and_preprocess("random", None, frames, "xsub", tmp_path / "direct")
    assert direct.data.path == direct.frames.path and direct.data.frames == 6
    none = impute_and_preprocess("none", small, frames, "xsub", tmp_path / "none")
    assert none.data is small and none.frames is frames and not (tmp_path / "none").exists()


def test_settings_are_checked(small, tmp_path):
    with pytest.raises(OccbenchError, match="unknown setting 'k'"):
        impute_split(small, None, "xsub", tmp_path / "x", "knn", {"k": 3})
    with pytest.raises(OccbenchError, match="variant"):
        impute_split(small, None, "xsub", tmp_path / "x", "random", {"variant": "gaussian"})
    with pytest.raises(OccbenchError, match="no split"):
        impute_split(small, None, "xview", tmp_path / "x", "random")
    with pytest.raises(OccbenchError, match="clusters"):
        impute_split(small, None, "xsub", tmp_path / "x", "knn", {"clusters": 0})


# --- quality on the synthetic dataset with realistic occlusion -------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    synthesize(root / "raw", SynthConfig(classes=4, subjects=3, setups=2, replications=1, min_frames=24,
                                         max_frames=36))
    clean = prepare(root / "raw", root / "clean", workers=1)
    occluded = occlude(clean, root / "occluded", "realistic", seed=0)
    made = {"none": occluded}
    for name in ("random", "knn"):
        made[name] = impute_split(occluded, None, "xsub", root / name, name, seed=0)
    return clean, occluded, made


def test_knn_beats_random_beats_zeros_on_realistic_occlusion(synthetic):
    clean, occluded, made = synthetic
    assert ground_truth(made["knn"])[0].path == occluded.path
    assert ground_truth(made["knn"])[1].path == clean.path
    errors = {name: imputation_error(ds, "xsub") for name, ds in made.items()}
    for part in ("train", "val", "all"):
        overall = {name: df[(df.part == part) & (df.joint == "all")].mpjpe.iloc[0] for name, df in errors.items()}
        assert overall["knn"] < overall["random"] < overall["none"], (part, overall)
    counts = {name: int(df[(df.part == "all") & (df.joint == "all")]["count"].iloc[0]) for name, df in errors.items()}
    assert len(set(counts.values())) == 1 and counts["knn"] > 100  # the same occluded joints for all


def test_zero_error_is_the_distance_of_the_true_joint_from_the_origin(synthetic):
    clean, occluded, _ = synthetic
    errors = imputation_error(occluded, "xsub")
    hidden = imp._visibility(occluded.mask, occluded.present, occluded.length)[1]
    rows = np.concatenate(list(occluded.splits["xsub"].values()))
    norms = np.linalg.norm(np.asarray(clean.data, np.float64), axis=1)[rows][hidden[rows]]
    assert errors[(errors.part == "all") & (errors.joint == "all")].mpjpe.iloc[0] == pytest.approx(norms.mean())


def test_table_record_and_plot(synthetic, tmp_path):
    _, _, made = synthetic
    errors = {name: imputation_error(ds, "xsub") for name, ds in made.items()}
    table = error_table(errors, "val")
    assert list(table.columns) == ["none", "random", "knn", "occluded joints"] and table.index[-1] == "all"
    record = quality_record(errors["knn"])
    assert set(record["mpjpe"]) == {"train", "val", "all"} and len(record["per_joint"]["val"]) == NUM_JOINTS
    png = error_plot(errors, tmp_path / "quality.png")
    assert png.stat().st_size > 1000
    assert isinstance(table, pd.DataFrame)


def test_error_needs_matching_frames_and_a_truth(synthetic, small, tmp_path):
    from occbench.data.preprocess import preprocess

    _, occluded, _ = synthetic
    with pytest.raises(OccbenchError, match="no ground truth"):
        imputation_error(small, "xsub")
    frames = preprocess(occluded, tmp_path / "f", frames=occluded.frames)  # same frame count, relative data
    assert ground_truth(frames) is None
    with pytest.raises(OccbenchError, match="preprocessed after the occlusion"):
        imputation_error(frames, "xsub")
    shorter = preprocess(occluded, tmp_path / "g", frames=10)
    with pytest.raises(OccbenchError, match="frames"):
        imputation_error(shorter, "xsub", *ground_truth(occluded))
    with pytest.raises(OccbenchError, match="name the split"):
        imputation_error(occluded)
