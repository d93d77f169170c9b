"""Importing CrosSCLR/ST-GCN folders, OPSTL NaN files and CTR-GCN npz files into occbench datasets."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from occbench.data.layouts import detect_layout, import_layout, safe_load_pickle
from occbench.errors import OccbenchError
from tests.conftest import NTU_SAMPLES

PADDLE_SAMPLE = NTU_SAMPLES / "processed" / "paddlevideo_example_NTU-RGB-D_sketeton.npy"
T = 20


def make_sample(seed: int, length: int = 15, two_bodies: bool = False, frames: int = T) -> np.ndarray:
    """(3, frames, 25, 2) raw-style sample: non-zero joints up to `length`, zero padding after."""
    rng = np.random.default_rng(seed)
    x = np.zeros((3, frames, 25, 2), np.float32)
    x[:, :length, :, 0] = rng.uniform(0.1, 2.0, (3, length, 25))
    if two_bodies:
        x[:, :length, :, 1] = rng.uniform(0.1, 2.0, (3, length, 25))
    return x


def write_part(folder: Path, part: str, samples: dict, names: list[str], labels: list[int], suffix="data"):
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{part}_{suffix}.npy", np.stack([samples[n] for n in names]))
    with open(folder / f"{part}_label.pkl", "wb") as f:
        pickle.dump(([f"{n}.skeleton" for n in names], labels), f)


NAMES = ["S001C001P001R001A001", "S001C002P002R001A002", "S001C003P003R001A003", "S002C001P004R002A004"]
LABELS = {name: i for i, name in enumerate(NAMES)}


@pytest.fixture
def samples() -> dict[str, np.ndarray]:
    out = {name: make_sample(i, length=10 + i, two_bodies=i == 3) for i, name in enumerate(NAMES)}
    out[NAMES[0]][:, 3, 7, 0] = 0  # one occluded joint
    out[NAMES[0]][:, 5, :, 0] = 0  # body 1 entirely zero in frame 5: absent there
    out[NAMES[1]][:, :, 20, 0] = 0  # the centre joint occluded throughout
    return out


def crossclr_folder(root: Path, samples: dict, suffix: str = "data") -> Path:
    """xsub and xview that share samples: xsub = A B | C, xview = C A | B D."""
    a, b, c, d = NAMES
    for split, train, val in [("xsub", [a, b], [c]), ("xview", [c, a], [b, d])]:
        write_part(root / split, "train", samples, train, [LABELS[n] for n in train], suffix)
        write_part(root / split, "val", samples, val, [LABELS[n] for n in val], suffix)
    return root


# --------------------------------------------------------------------------------------------------
# Restricted unpickler


class Custom:
    pass


class RunsACommand:
    def __reduce__(self):
        return (os.system, ("true",))


def test_safe_load_pickle_accepts_the_crossclr_label_tuple_and_numpy(tmp_path):
    content = (["S001C001P001R001A001.skeleton"], [0])
    for protocol in (2, 4, 5):
        file = tmp_path / f"label{protocol}.pkl"
        file.write_bytes(pickle.dumps(content, protocol=protocol))
        assert safe_load_pickle(file) == content
        more = {"labels": np.arange(3), "one": np.int64(7), "set": {1, 2}, "bytes": b"ab", "none": None}
        file.write_bytes(pickle.dumps(more, protocol=protocol))
        loaded = safe_load_pickle(file)
        assert loaded["labels"].tolist() == [0, 1, 2] and loaded["one"] == 7
        assert loaded["set"] == {1, 2} and loaded["bytes"] == b"ab" and loaded["none"] is None


def test_safe_load_pickle_reads_numpy_1_pickles(tmp_path):
    file = tmp_path / "labels.pkl"  # numpy 1 names its reconstructors numpy.core, numpy 2 numpy._core
    file.write_bytes(
        pickle.dumps([np.arange(3), np.int64(2)], protocol=2).replace(b"numpy._core", b"numpy.core")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        array, scalar = safe_load_pickle(file)
    assert array.tolist() == [0, 1, 2] and scalar == 2


@pytest.mark.parametrize("obj, refused", [(RunsACommand(), "system"), (Custom(), "Custom")])
def test_safe_load_pickle_refuses_other_globals(tmp_path, obj, refused):
    file = tmp_path / "train_label.pkl"
    file.write_bytes(pickle.dumps(([obj], [0])))
    with pytest.raises(OccbenchError, match=refused) as err:
        safe_load_pickle(file)
    assert str(file) in str(err.value)


def test_safe_load_pickle_reports_a_truncated_file(tmp_path):
    file = tmp_path / "train_label.pkl"
    file.write_bytes(pickle.dumps((["a"] * 100, list(range(100))))[:50])
    with pytest.raises(OccbenchError, match="train_label.pkl"):
        safe_load_pickle(file)


# --------------------------------------------------------------------------------------------------
# CrosSCLR / ST-GCN folders


def test_crossclr_round_trip_dedups_the_pool_and_indexes_the_splits(tmp_path, samples):
    src = crossclr_folder(tmp_path / "ntu", samples)
    assert detect_layout(src) == "stgcn"
    ds = import_layout(src, tmp_path / "out")

    assert ds.names == NAMES  # first occurrence order, stored once, no .skeleton suffix
    assert {s: {p: i.tolist() for p, i in parts.items()} for s, parts in ds.splits.items()} == {
        "xsub": {"train": [0, 1], "val": [2]},
        "xview": {"train": [2, 0], "val": [1, 3]},
    }
    assert ds.label.tolist() == [0, 1, 2, 3]
    assert ds.meta["benchmark"] == "ntu60" and ds.meta["num_class"] == 60 and ds.meta["frames"] == T
    assert ds.meta["source"]["layout"] == "stgcn"
    assert ds.meta["stages"][0]["stage"] == "import" and ds.meta["stages"][0]["variant"] == "data"
    for i, name in enumerate(NAMES):
        x = samples[name]
        assert np.array_equal(ds.data[i], x)
        assert np.array_equal(ds.mask[i], (x != 0).any(0))
    assert ds.length.tolist() == [10, 11, 12, 13]
    assert not ds.mask[0, 3, 7, 0] and ds.present[0, 3, 0]  # occluded, body present
    assert not ds.present[0, 5, 0] and ds.present[0, 6, 0]  # all-zero body in a frame counts as absent
    assert not ds.mask[1, :, 20, 0].any() and ds.mask[1, :11, 19, 0].all()
    assert not ds.present[:3, :, 1].any() and ds.present[3, :13, 1].all() and not ds.present[3, 13:].any()
    assert not ds.inferred.any()


def test_crossclr_single_split_folder_and_visible_zeros(tmp_path, samples):
    src = crossclr_folder(tmp_path / "ntu", samples)
    ds = import_layout(src / "xview", tmp_path / "out", zeros_are_occluded=False)
    assert list(ds.splits) == ["xview"] and ds.names == [NAMES[2], NAMES[0], NAMES[1], NAMES[3]]
    zero_joint = ds.names.index(NAMES[0])
    assert ds.mask[zero_joint, 3, 7, 0]  # zeros are not occlusion here: a zero joint is visible
    assert np.array_equal(ds.mask[zero_joint], np.broadcast_to(ds.present[zero_joint][:, None], (T, 25, 2)))


def test_crossclr_position_files_keep_the_centre_joint_visible(tmp_path, samples):
    for x in samples.values():
        x -= x[:, :, 20:21] * (x != 0).any(0, keepdims=True)[:, :, 20:21]  # centred like CrosSCLR
    src = crossclr_folder(tmp_path / "ntu", samples, suffix="position")
    ds = import_layout(src, tmp_path / "out")
    assert ds.meta["stages"][0]["variant"] == "position" and ds.meta["stages"][0]["centred"]
    present = ds.present[0, :, 0]
    assert ds.mask[0, present, 20, 0].all() and not ds.mask[0, ~present, 20, 0].any()


def test_opstl_nan_file_is_preferred_and_keeps_fully_occluded_bodies_present(tmp_path, samples):
    nan = {name: x.copy() for name, x in samples.items()}
    nan[NAMES[0]][:, 2, 4, 0] = np.nan
    nan[NAMES[0]][:, 8, :, 0] = np.nan  # the whole body occluded in frame 8
    src = crossclr_folder(tmp_path / "ntu", samples)
    crossclr_folder(src, nan, suffix="data_nan")  # beside the zero-filled files, as OPSTL writes them
    ds = import_layout(src, tmp_path / "out", zeros_are_occluded=False)
    assert ds.meta["stages"][0]["variant"] == "data_nan"
    assert not ds.mask[0, 2, 4, 0] and ds.data[0, :, 2, 4, 0].tolist() == [0, 0, 0]
    assert ds.present[0, 8, 0] and not ds.mask[0, 8, :, 0].any()
    assert ds.mask[0, 3, 7, 0]  # a plain zero is visible here: NaN is the occlusion marker
    assert np.isfinite(ds.data[:]).all()


# --------------------------------------------------------------------------------------------------
# CTR-GCN npz


def to_ctrgcn(x: np.ndarray) -> np.ndarray:
    """(3, T, 25, 2) -> (T, 150) per frame [body1 25×xyz | body2 25×xyz]."""
    return x.transpose(1, 3, 2, 0).reshape(x.shape[1], 150)


def ctrgcn_samples() -> list[np.ndarray]:
    single = make_sample(10, length=12)
    single[:, :, :, 0] -= single[:, :1, 1:2, 0] * (single[:, :, :, 0] != 0).any(0)  # origin: joint 1, frame 0
    copied = single.copy()
    copied[..., 1] = copied[..., 0]  # NTU-120 npz: single actor copied into slot 2
    return [copied, make_sample(11, length=14, two_bodies=True), make_sample(12, length=9), single]


def write_npz(file: Path, x: list[np.ndarray], labels: list[int], classes: int, split_at: int = 3) -> None:
    xs = np.stack([to_ctrgcn(s) for s in x])
    ys = np.eye(classes, dtype=np.float32)[labels]
    np.savez(file, x_train=xs[:split_at], y_train=ys[:split_at], x_test=xs[split_at:], y_test=ys[split_at:])


def test_ctrgcn_npz_import_with_the_body_copy_rule(tmp_path):
    x = ctrgcn_samples()
    write_npz(tmp_path / "NTU120_CSub.npz", x, [0, 7, 14, 21], classes=120)
    assert detect_layout(tmp_path / "NTU120_CSub.npz") == "ctrgcn"
    ds = import_layout(tmp_path / "NTU120_CSub.npz", tmp_path / "out")

    assert ds.meta["benchmark"] == "ntu120" and ds.meta["source"]["layout"] == "ctrgcn"
    assert ds.names == [f"ctrgcn_xsub_train_{i:06d}" for i in range(3)] + ["ctrgcn_xsub_val_000000"]
    assert {p: i.tolist() for p, i in ds.splits["xsub"].items()} == {"train": [0, 1, 2], "val": [3]}
    assert ds.label.tolist() == [0, 7, 14, 21]
    assert not ds.present[0, :, 1].any() and not ds.data[0, ..., 1].any()  # the copy is dropped
    assert np.array_equal(ds.data[0, ..., 0], x[0][..., 0])
    assert ds.present[1, :14].all()  # two real actors stay
    assert np.array_equal(ds.data[1], x[1]) and ds.length.tolist() == [12, 14, 9, 12]
    assert ds.mask[0, 0, 1, 0] and ds.data[0, :, 0, 1, 0].tolist() == [0, 0, 0]  # the origin is visible
    assert ds.mask[0, :12, :, 0].all()


def test_ctrgcn_folder_of_files_dedups_by_content(tmp_path):
    x = ctrgcn_samples()
    write_npz(tmp_path / "NTU60_CS.npz", x, [0, 1, 2, 3], classes=60, split_at=3)
    write_npz(tmp_path / "NTU60_CV.npz", x[::-1], [3, 2, 1, 0], classes=60, split_at=1)
    ds = import_layout(tmp_path, tmp_path / "out")
    assert len(ds) == 4 and ds.meta["benchmark"] == "ntu60"
    assert {p: i.tolist() for p, i in ds.splits["xview"].items()} == {"train": [3], "val": [2, 1, 0]}


# --------------------------------------------------------------------------------------------------
# Errors


def test_missing_label_pkl(tmp_path, samples):
    src = crossclr_folder(tmp_path / "ntu", samples)
    (src / "xview" / "val_label.pkl").unlink()
    with pytest.raises(OccbenchError, match=r"val_data\.npy.*val_label\.pkl"):
        import_layout(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_data_and_label_lengths_differ(tmp_path, samples):
    src = crossclr_folder(tmp_path / "ntu", samples)
    with open(src / "xsub" / "train_label.pkl", "wb") as f:
        pickle.dump((NAMES[:3], [0, 1, 2]), f)
    with pytest.raises(OccbenchError, match=r"xsub/train_data\.npy: 2 samples but train_label\.pkl lists 3"):
        import_layout(src, tmp_path / "out")


def test_wrong_ndim(tmp_path, samples):
    src = crossclr_folder(tmp_path / "ntu", samples)
    np.save(src / "xsub" / "train_data.npy", np.zeros((2, 3, T, 25), np.float32))
    with pytest.raises(OccbenchError, match=r"xsub/train_data\.npy: shape"):
        import_layout(src, tmp_path / "out")


def test_truncated_npy(tmp_path, samples):
    src = crossclr_folder(tmp_path / "ntu", samples)
    file = src / "xsub" / "val_data.npy"
    file.write_bytes(file.read_bytes()[:-100])
    with pytest.raises(OccbenchError, match=r"xsub/val_data\.npy: unreadable or truncated"):
        import_layout(src, tmp_path / "out")


def test_label_pkl_with_a_forbidden_global(tmp_path, samples):
    src = crossclr_folder(tmp_path / "ntu", samples)
    (src / "xsub" / "train_label.pkl").write_bytes(pickle.dumps(([RunsACommand()], [0])))
    with pytest.raises(OccbenchError, match=r"xsub/train_label\.pkl: refused .*system"):
        import_layout(src, tmp_path / "out")


def test_labels_that_do_not_fit_the_benchmark(tmp_path, samples):
    src = crossclr_folder(tmp_path / "ntu", samples)
    write_part(src / "xsub", "val", samples, [NAMES[2]], [99])
    with pytest.raises(OccbenchError, match="label 99 does not fit ntu60"):
        import_layout(src / "xsub", tmp_path / "out", benchmark="ntu60")
    ds = import_layout(src / "xsub", tmp_path / "out")  # inferred from the labels
    assert ds.meta["benchmark"] == "ntu120"


def test_npz_errors_name_the_file(tmp_path):
    file = tmp_path / "NTU60_CS.npz"
    np.savez(file, x_train=np.zeros((2, T, 150), np.float32), y_train=np.eye(60)[:2])
    with pytest.raises(OccbenchError, match=r"NTU60_CS\.npz: no array 'x_test'"):
        import_layout(file, tmp_path / "out")
    np.savez(file, x_train=np.zeros((2, T, 75)), y_train=np.eye(60)[:2], x_test=np.zeros((0, T, 75)),
             y_test=np.eye(60)[:0])  # fmt: skip
    with pytest.raises(OccbenchError, match=r"NTU60_CS\.npz: x_train has shape"):
        import_layout(file, tmp_path / "out")
    file.write_bytes(b"not a zip")
    with pytest.raises(OccbenchError, match=r"NTU60_CS\.npz: unreadable"):
        import_layout(file, tmp_path / "out")


def test_unknown_layout(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(OccbenchError, match="not a known layout"):
        detect_layout(tmp_path / "empty")
    with pytest.raises(OccbenchError, match="no such file"):
        detect_layout(tmp_path / "missing")


def test_existing_output_needs_overwrite(tmp_path, samples):
    src = crossclr_folder(tmp_path / "ntu", samples)
    import_layout(src, tmp_path / "out")
    with pytest.raises(OccbenchError, match="overwrite"):
        import_layout(src, tmp_path / "out")
    ds = import_layout(src / "xsub", tmp_path / "out", overwrite=True)
    assert len(ds) == 3 and json.loads((tmp_path / "out" / "meta.json").read_text())["frames"] == T


# --------------------------------------------------------------------------------------------------
# A real sample (held out, outside the repository)


@pytest.mark.skipif(not PADDLE_SAMPLE.is_file(), reason="real NTU sample not available")
def test_real_sample_as_a_one_sample_crossclr_array(tmp_path):
    sample = np.load(PADDLE_SAMPLE)
    split = tmp_path / "ntu" / "xsub"
    split.mkdir(parents=True)
    np.save(split / "train_data.npy", sample[None])
    (split / "train_label.pkl").write_bytes(pickle.dumps((["S001C001P001R001A001.skeleton"], [0])))
    ds = import_layout(tmp_path / "ntu", tmp_path / "out")
    assert ds.length.tolist() == [72] and ds.frames == 300
    assert ds.present[0, :72, 0].all() and not ds.present[0, :, 1].any() and not ds.present[0, 72:].any()
    assert ds.mask[0, :72, :, 0].all()  # real data has no x = y = z = 0 joints
    assert np.array_equal(ds.data[0], sample)

    from occbench.data.preprocess import preprocess

    out = preprocess(ds, tmp_path / "p50")
    assert out.frames == 50 and out.length.tolist() == [50] and np.isfinite(out.data[:]).all()
    shoulder = out.data[0, :, :, 8, 0] - out.data[0, :, :, 4, 0]
    assert np.abs(shoulder[2]).max() < 1e-5 and (shoulder[0] > 0).all()


@pytest.mark.parametrize("dtype", [np.bool_, np.complex64, "datetime64[s]", "U4", [("x", np.float32)]])
def test_coordinates_that_are_not_real_numbers_are_refused(tmp_path, samples, dtype):
    a, b = NAMES[:2]
    folder = tmp_path / "xsub"
    write_part(folder, "train", samples, [a, b], [0, 1])
    array = np.load(folder / "train_data.npy")
    np.save(folder / "train_data.npy", np.zeros(array.shape, dtype=dtype))
    with pytest.raises(OccbenchError, match="train_data.npy: coordinates of dtype"):
        import_layout(tmp_path, tmp_path / "out")


def test_float64_beyond_float32_is_refused_not_made_inf(tmp_path, samples):
    a, b = NAMES[:2]
    folder = tmp_path / "xsub"
    write_part(folder, "train", samples, [a, b], [0, 1])
    array = np.load(folder / "train_data.npy").astype(np.float64)
    array[1, 0, 2, 3, 0] = 1e39
    np.save(folder / "train_data.npy", array)
    with pytest.raises(OccbenchError, match="beyond float32's range"):
        import_layout(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("labels, words", [
    ([0, 2**40], "label 1099511627776 is no class"),
    ([0, 2**63], "labels must be non-negative integers"),  # beyond int64: no integer array at all
    ([[0, 1], [2]], "not a flat list of integers"),
    ([0.0, 1.0], "labels must be non-negative integers"),
    ([True, False], "labels must be non-negative integers"),
])
def test_label_lists_that_are_not_class_indices_are_refused(tmp_path, samples, labels, words):
    a, b = NAMES[:2]
    folder = tmp_path / "xsub"
    write_part(folder, "train", samples, [a, b], [0, 1])
    with open(folder / "train_label.pkl", "wb") as f:
        pickle.dump(([f"{a}.skeleton", f"{b}.skeleton"], labels), f)
    with pytest.raises(OccbenchError, match=words):
        import_layout(tmp_path, tmp_path / "out")


def test_a_sample_in_both_parts_of_a_split_is_a_leak(tmp_path, samples):
    a, b, c = NAMES[:3]
    write_part(tmp_path / "xsub", "train", samples, [a, b], [0, 1])
    write_part(tmp_path / "xsub", "val", samples, [c, a], [2, 0])
    with pytest.raises(OccbenchError, match=f"sample {a} is in both the train and the test part of xsub"):
        import_layout(tmp_path, tmp_path / "out")


def test_a_sample_in_both_parts_of_one_npz_is_a_leak(tmp_path):
    """An npz has no sample names: the leak is found by content."""
    x = ctrgcn_samples()
    write_npz(tmp_path / "NTU60_CS.npz", [*x[:3], x[1]], [0, 1, 2, 1], classes=60, split_at=3)
    with pytest.raises(OccbenchError, match="sample ctrgcn_xsub_train_000001 is in both the train and the test part"):
        import_layout(tmp_path / "NTU60_CS.npz", tmp_path / "out")


def test_a_sample_listed_twice_in_a_part_is_refused(tmp_path, samples):
    a, b = NAMES[:2]
    write_part(tmp_path / "xsub", "train", samples, [a, b, a], [0, 1, 0])
    with pytest.raises(OccbenchError, match=f"sample {a} is listed twice in xsub/train"):
        import_layout(tmp_path, tmp_path / "out")
