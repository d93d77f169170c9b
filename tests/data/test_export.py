"""Exporting prepared datasets to the CrosSCLR/AimCLR folder and the CTR-GCN/MAMP npz: the import round
trip, what the published feeders read, the one-line errors and atomic writes."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest

import occbench.data.export as export
from occbench.cli import main
from occbench.data.dataset import PARTS
from occbench.data.export import export_layout
from occbench.data.layouts import import_layout
from occbench.data.occlusion import occlude
from occbench.data.prepare import prepare
from occbench.data.preprocess import preprocess
from occbench.data.synth import SynthConfig, synthesize
from occbench.errors import OccbenchError
from occbench_plugins.imputers import KnnImputer
from tests.test_impute import by_label


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The embedded pipeline on a small generator: realistic occlusion (camera space), its knn imputation
    of xsub, and the occluded data preprocessed (relative: the centre joint is exactly 0 and visible)."""
    root = tmp_path_factory.mktemp("export")
    synthesize(root / "raw", SynthConfig(classes=4, subjects=3, setups=2, replications=1, min_frames=24,
                                         max_frames=36))
    occluded = occlude(prepare(root / "raw", root / "clean", workers=1), root / "occluded", "realistic", seed=0)
    imputed = KnnImputer()(occluded, None, "xsub", root / "knn", {"clusters": 2}, seed=0, embed=by_label)
    return {"occluded": occluded, "imputed": imputed, "preprocessed": preprocess(occluded, root / "pre", frames=12)}


def parts(dataset):
    return [(split, part, rows) for split, both in dataset.splits.items() for part, rows in both.items()]


@pytest.mark.parametrize("name", ["occluded", "imputed"])
@pytest.mark.parametrize("layout", ["crossclr", "ctrgcn"])
def test_export_then_import_gives_back_the_data_mask_and_labels(datasets, tmp_path, layout, name):
    dataset = datasets[name]
    assert (~np.asarray(dataset.mask) & np.asarray(dataset.present)[:, :, None]).any()  # some joints are hidden
    back = import_layout(export_layout(dataset, layout, tmp_path / "out"), tmp_path / "back")
    assert sorted(back.splits) == sorted(dataset.splits)
    for split, part, rows in parts(dataset):
        again = back.splits[split][part]
        assert len(again) == len(rows) > 0
        np.testing.assert_array_equal(back.data[again], dataset.data[rows])
        np.testing.assert_array_equal(back.label[again], dataset.label[rows])
        np.testing.assert_array_equal(back.mask[again], dataset.mask[rows])
        np.testing.assert_array_equal(back.present[again], dataset.present[rows])
        if layout == "crossclr":
            assert [back.names[i] for i in again] == [dataset.names[i] for i in rows]


@pytest.mark.parametrize("layout", ["crossclr", "ctrgcn"])
def test_preprocessed_data_round_trips_and_its_mask_file_keeps_the_visible_zero_centre(datasets, tmp_path, layout):
    dataset = datasets["preprocessed"]
    out = export_layout(dataset, layout, tmp_path / "out")
    back = import_layout(out, tmp_path / "back")
    for split, part, rows in parts(dataset):
        again = back.splits[split][part]
        np.testing.assert_array_equal(back.data[again], dataset.data[rows])
        np.testing.assert_array_equal(back.label[again], dataset.label[rows])
        # The visible centre joint is 0 by construction: only the exported mask says it is visible.
        mask = np.asarray(dataset.mask[rows])
        assert (mask[:, :, 20] & (np.asarray(dataset.data[rows])[:, :, :, 20] == 0).all(axis=1)).any()
        if layout == "crossclr":
            written = np.load(out / split / f"{part}_mask.npy")
        else:
            key = export.CTRGCN_PARTS[part]
            written = np.load(out / f"{split}.npz")[f"mask_{key}"].reshape(len(rows), -1, 2, 25).transpose(0, 1, 3, 2)
        np.testing.assert_array_equal(written, mask)
        np.testing.assert_array_equal(back.mask[again], mask)  # the importer reads the mask file


def test_a_crossclr_export_reads_as_the_published_feeders_read_it(datasets, tmp_path):
    dataset = datasets["occluded"]
    out = export_layout(dataset, "crossclr", tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["xset", "xsub", "xview"]
    for split, part, rows in parts(dataset):
        folder = out / split
        data = np.load(folder / f"{part}_data.npy", mmap_mode="r")  # the feeders' mmap=True
        with open(folder / f"{part}_label.pkl", "rb") as handle:
            names, labels = pickle.load(handle)
        assert isinstance(names, list) and isinstance(labels, list)
        assert data.dtype == np.float32 and data.shape == (len(rows), 3, dataset.frames, 25, 2)
        assert names == [f"{dataset.names[i]}.skeleton" for i in rows]
        assert all(type(label) is int for label in labels) and labels == dataset.label[rows].tolist()
        mask = np.load(folder / f"{part}_mask.npy", mmap_mode="r")
        assert mask.dtype == np.bool_ and mask.shape == (len(rows), dataset.frames, 25, 2)
        assert (np.asarray(data)[np.broadcast_to(~mask[:, None], data.shape)] == 0).all()  # occluded joints are 0
        np.testing.assert_array_equal(data, dataset.data[rows])
        assert sorted(f.name for f in folder.iterdir()) == sorted(f"{p}_{k}" for p in PARTS
                                                                  for k in ("data.npy", "label.pkl", "mask.npy"))


def test_a_ctrgcn_export_reads_as_its_feeder_reads_it(datasets, tmp_path):
    dataset = datasets["imputed"]
    out = export_layout(dataset, "ctrgcn", tmp_path / "out")
    assert [p.name for p in out.iterdir()] == ["xsub.npz"]  # not an NTU benchmark: named by split
    npz = np.load(out / "xsub.npz")
    assert sorted(npz.files) == ["mask_test", "mask_train", "x_test", "x_train", "y_test", "y_train"]
    for part, key in (("train", "train"), ("val", "test")):
        rows = dataset.splits["xsub"][part]
        x, y = npz[f"x_{key}"], npz[f"y_{key}"]
        n, t, _ = x.shape
        assert x.dtype == np.float32 and x.shape == (len(rows), dataset.frames, 150)
        np.testing.assert_array_equal(x.reshape((n, t, 2, 25, 3)).transpose(0, 4, 1, 3, 2), dataset.data[rows])
        assert y.shape == (len(rows), dataset.num_class) and (y.sum(axis=1) == 1).all()
        np.testing.assert_array_equal(np.argmax(y, axis=-1), dataset.label[rows])
        assert npz[f"mask_{key}"].dtype == np.bool_ and npz[f"mask_{key}"].shape == (n, t, 50)
    with zipfile.ZipFile(out / "xsub.npz") as archive:  # stored, as np.savez: a reader may map the members
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


def test_ntu_benchmarks_get_the_published_npz_names(datasets, tmp_path, monkeypatch):
    dataset = datasets["occluded"]
    monkeypatch.setitem(dataset.meta, "benchmark", "ntu60")
    out = export_layout(dataset, "ctrgcn", tmp_path / "out")  # xset is not an NTU-60 split: left out
    assert sorted(p.name for p in out.iterdir()) == ["NTU60_CS.npz", "NTU60_CV.npz"]
    with pytest.raises(OccbenchError, match=r"^split 'xset' cannot be written in the ctrgcn layout.*NTU60_CS"):
        export_layout(dataset, "ctrgcn", tmp_path / "again", splits=["xset"])


def test_split_selection(datasets, tmp_path):
    out = export_layout(datasets["occluded"], "crossclr", tmp_path / "out", splits=["xview"])
    assert [p.name for p in out.iterdir()] == ["xview"]


@pytest.mark.parametrize("call, message", [
    (lambda d, out: export_layout(out.parent / "missing", "crossclr", out), r"missing: no such directory"),
    (lambda d, out: export_layout(d, "stgcn", out), r"^unknown layout 'stgcn'; choose one of crossclr, ctrgcn$"),
    (lambda d, out: export_layout(d, "crossclr", out, splits=["xview"]), r"no split 'xview'; it has xsub$"),
])
def test_one_line_errors(datasets, tmp_path, call, message):
    with pytest.raises(OccbenchError, match=message) as error:
        call(datasets["imputed"], tmp_path / "out")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_an_existing_export_is_kept_unless_overwrite(datasets, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    args = ["data", "export", str(datasets["imputed"].path), "--layout", "crossclr", "--out", str(out)]
    assert main(args) == 2
    assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert main([*args, "--overwrite"]) == 0
    assert [p.name for p in out.iterdir()] == ["xsub"]
    assert main([*args[:3], "--layout", "cross", "--out", str(tmp_path / "other")]) == 2
    assert capsys.readouterr().err.strip().endswith("unknown layout 'cross'; choose one of crossclr, ctrgcn")


@pytest.mark.parametrize("layout, writer", [("crossclr", "_write_crossclr"), ("ctrgcn", "_write_ctrgcn")])
def test_a_failure_midway_leaves_nothing_half_written(datasets, tmp_path, monkeypatch, layout, writer):
    written = []
    real = getattr(export, writer)

    def fails_on_the_second_split(dataset, split, target, progress):
        if written:
            raise OSError(28, "No space left on device")
        written.append(split)
        real(dataset, split, target, progress)

    monkeypatch.setattr(export, writer, fails_on_the_second_split)
    out = tmp_path / "out"
    with pytest.raises(OccbenchError, match=r"out\.partial: cannot write \(no space left on the device\)"):
        export_layout(datasets["occluded"], layout, out)
    assert written and list(tmp_path.iterdir()) == []  # neither OUT nor OUT.partial

    out.mkdir()
    (out / "earlier.txt").write_text("an earlier export")
    written.clear()
    with pytest.raises(OccbenchError):
        export_layout(datasets["occluded"], layout, out, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (out / "earlier.txt").read_text() == "an earlier export"
