"""Imputation's core: the exact fast KNN core against scikit-learn, the imputer contract (the base class on
worked examples: what a fill writes, the provenance, reuse, settings errors, identity imputers, the stage-1
method, a third-party imputer in a grid), and the quality report. The built-in imputers' own tests are in
tests/plugins/test_imputers.py."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import occbench
import occbench.impute as imp
from occbench.cli import main
from occbench.data.dataset import DatasetWriter
from occbench.data.ntu import NUM_JOINTS
from occbench.data.occlusion import occlude
from occbench.data.prepare import prepare
from occbench.data.preprocess import preprocess
from occbench.data.synth import SynthConfig, synthesize
from occbench.errors import OccbenchError
from occbench.hookspecs import hookimpl
from occbench.impute import (
    Imputer,
    error_plot,
    error_table,
    ground_truth,
    identity_imputer,
    imputation_error,
    impute_and_preprocess,
    knn_core,
    knn_fill,
    quality_record,
    registered_imputer,
)
from occbench.plugins import load_plugins
from occbench.settings import number, one_of


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


# --- datasets for the imputers --------------------------------------------------------------------


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


# --- the imputer contract on worked examples ------------------------------------------------------


class Constant(Imputer):
    """Every occluded joint of `part` at (value, value, value)."""

    name = "constant"
    defaults = {"value": 1.5, "part": "all"}
    schema = {"value": number(-10, 10), "part": one_of("train", "val", "all")}

    def fill(self, job):
        filled = 0
        for rows in job.chunks(job.settings["part"]):
            block = job.read(rows)
            job.write(rows, np.full_like(block.data, job.settings["value"]), block.target)
            filled += block.target.sum()  # a numpy integer: the provenance stores it as a number
        return {"filled": filled}


class AsIs(Imputer):
    """A third way of leaving the data as it is, with a setting of its own."""

    name = "asis"
    identity = True
    defaults = {"note": ""}


class Cells(Imputer):
    """Each occluded joint at (row, frame, joint), written cell by cell, window of frames after window."""

    name = "cells"

    def fill(self, job):
        windows = 0
        for window in job.frame_windows():
            block = job.read(job.rows(), window, data=False)
            rows, t, v, m = np.nonzero(block.target)
            t = t + window.start
            job.write_cells(rows, t, v, m, np.stack([rows, t, v], axis=1))
            windows += 1
        return {"windows": windows}


def test_what_fill_writes_lands_in_data_mask_and_imputed(small, tmp_path):
    out = Constant()(small, None, "xsub", tmp_path / "out", {"value": 2.0}, seed=3)
    observed, target = observed_and_target(small)
    rows = np.concatenate([small.splits["xsub"]["train"], small.splits["xsub"]["val"]])
    assert out.names == [small.names[i] for i in rows]  # training samples, then validation ones
    assert out.splits == {"xsub": {"train": pytest.approx(np.arange(40)), "val": pytest.approx(np.arange(40, 60))}}
    imputed = np.asarray(out.extra["imputed"])
    assert np.array_equal(imputed, target[rows]) and imputed.sum() > 100
    assert np.array_equal(np.asarray(out.mask), np.asarray(small.mask)[rows] | imputed)  # visible or imputed
    data, before = np.moveaxis(np.asarray(out.data), 1, -1), np.moveaxis(np.asarray(small.data)[rows], 1, -1)
    assert (data[imputed] == 2.0).all()
    assert np.array_equal(data[~imputed], before[~imputed])  # observed joints, padding and absent bodies kept
    for name in ("present", "length", "label", "inferred"):
        assert np.array_equal(getattr(out, name), getattr(small, name)[rows])
    stage = out.meta["stages"][-1]
    assert stage == {"stage": "impute", "occbench": occbench.__version__, "imputer": "constant", "split": "xsub",
                     "settings": {"value": 2.0, "part": "all"}, "seed": 3, "source": str(small.path.resolve()),
                     "filled": int(target[rows].sum()), "seconds": stage["seconds"]}
    assert out.meta["stages"][:-1] == small.meta["stages"]


def test_what_is_not_filled_stays_occluded(small, tmp_path):
    out = Constant()(small, None, "xsub", tmp_path / "out", {"part": "val"})
    imputed = np.asarray(out.extra["imputed"])
    _, target = observed_and_target(out)
    assert not imputed[:40].any() and np.array_equal(imputed[40:], target[40:] | imputed[40:])
    assert target[:40].any() and not target[40:].any()  # the training rows' joints still to fill


def test_cells_written_one_by_one_over_windows_of_frames(small, tmp_path, monkeypatch):
    monkeypatch.setattr(imp, "_CHUNK_BYTES", 1 << 15)  # 5 of the 8 frames per window: two windows
    out = Cells()(small, None, "xsub", tmp_path / "out")
    rows = np.concatenate([small.splits["xsub"]["train"], small.splits["xsub"]["val"]])
    imputed = np.asarray(out.extra["imputed"])
    assert np.array_equal(imputed, observed_and_target(small)[1][rows]) and out.meta["stages"][-1]["windows"] == 2
    n, t, v, m = np.nonzero(imputed)
    assert np.array_equal(np.asarray(out.data)[n, :, t, v, m], np.stack([n, t, v], axis=1).astype(np.float32))


def test_the_job_reads_its_rows_by_chunk_and_by_window(small, tmp_path, monkeypatch):
    monkeypatch.setattr(imp, "_CHUNK_BYTES", 1 << 15)  # 6 samples of 8 frames per chunk
    seen = {}

    class Reader(Imputer):
        name = "reader"

        def fill(self, job):
            seen["job"] = (len(job), job.n_train, job.split, job.seed, job.settings, job.embed,
                           job.frames is job.source)
            seen["chunks"] = list(job.chunks())
            seen["train"] = list(job.chunks("train", masks_only=True))
            seen["whole"] = job.read(job.rows())
            seen["windows"] = [job.read(job.rows("val"), window, data=False) for window in job.frame_windows()]

    Reader()(small, None, "xsub", tmp_path / "out", seed=4)
    assert seen["job"] == (60, 40, "xsub", 4, {}, None, True)
    assert len(seen["chunks"]) == 10 and np.array_equal(np.concatenate(seen["chunks"]), np.arange(60))
    assert len(seen["train"]) == 2 and np.array_equal(np.concatenate(seen["train"]), np.arange(40))
    whole = seen["whole"]
    rows = np.concatenate([small.splits["xsub"]["train"], small.splits["xsub"]["val"]])
    observed, target = observed_and_target(small)
    assert np.array_equal(whole.data, np.asarray(small.data)[rows]) and len(whole) == 60
    assert np.array_equal(whole.observed, observed[rows]) and np.array_equal(whole.target, target[rows])
    windows = seen["windows"]
    assert len(windows) == 2 and all(block.data is None for block in windows)
    assert np.array_equal(np.concatenate([block.target for block in windows], axis=1), target[rows][40:])
    assert np.array_equal(np.concatenate([block.observed for block in windows], axis=1), observed[rows][40:])


class Careless(Imputer):
    """Breaks the contract in the way its `mistake` says."""

    name = "careless"
    defaults = {"mistake": "observed"}

    def fill(self, job):
        rows = job.rows("train")[:4]
        block = job.read(rows)
        mistake = job.settings["mistake"]
        if mistake == "observed":
            job.write(rows, block.data + 1, block.observed | block.target)
        elif mistake == "nan":
            job.write(rows, np.full_like(block.data, np.nan), block.target)
        elif mistake == "absent body":
            job.write_cells([1], [0], [0], [1], [[1.0, 2.0, 3.0]])  # sample 1 has one body
        elif mistake == "shape":
            job.write(rows, block.data[:, :2], block.target)
        elif mistake == "statistics":
            return {"seed": 1}
        return [1]


@pytest.mark.parametrize("mistake, message", [
    ("observed", "cells that are not occluded joints (visible joints, padding frames or absent bodies)"),
    ("nan", "imputer careless: wrote values that are not finite numbers"),
    ("absent body", "imputer careless: wrote 1 cells that are not occluded joints"),
    ("shape", "imputer careless: write got data (4, 2, 8, 25, 2)"),
    ("statistics", "imputer careless: fill's statistics seed would replace the provenance's own"),
    ("list", "imputer careless: fill returned a list; return a dict"),
])
def test_a_fill_that_breaks_the_contract_is_a_one_line_error_and_writes_nothing(small, tmp_path, mistake, message):
    with pytest.raises(OccbenchError) as caught:
        Careless()(small, None, "xsub", tmp_path / "out", {"mistake": mistake})
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not any(tmp_path.glob("out*"))  # neither a dataset nor a partial one


def test_a_complete_earlier_result_of_the_same_imputation_is_reused(small, tmp_path):
    calls = []

    class Counted(Constant):
        def fill(self, job):
            calls.append(job.settings["value"])
            return super().fill(job)

    imputer, out = Counted(), tmp_path / "out"
    first = imputer(small, None, "xsub", out, {"value": 2.0}, seed=1)
    again = imputer(small, None, "xsub", out, {"value": 2.0}, seed=1)
    assert calls == [2.0] and again.meta == first.meta
    for settings, seed in (({"value": 3.0}, 1), ({"value": 2.0}, 2)):  # another imputation is not this one
        with pytest.raises(OccbenchError, match="a dataset is already there; pass --overwrite"):
            imputer(small, None, "xsub", out, settings, seed=seed)
    redone = imputer(small, None, "xsub", out, {"value": 3.0}, seed=1, overwrite=True)
    assert calls == [2.0, 3.0] and (np.moveaxis(np.asarray(redone.data), 1, -1)[np.asarray(redone.extra["imputed"])]
                                    == 3.0).all()
    imputer(small, None, "xsub", out, {"value": 3.0}, seed=1, overwrite=True)  # overwrite: computed again
    assert calls == [2.0, 3.0, 3.0]


class Typed(Imputer):
    """Settings without a schema, typed like their defaults."""

    name = "typed"
    defaults = {"count": 2, "scale": 0.5, "flag": True, "mode": "fast", "device": None}


@pytest.mark.parametrize("imputer, settings, message", [
    (Constant(), {"valeu": 1.0}, "imputers.constant.valeu: unknown setting; did you mean imputers.constant.value? "
                                 "(imputers.constant has part, value)"),
    (Constant(), {"value": "high"}, "imputers.constant.value='high': expected a number in [-10, 10]"),
    (Constant(), {"value": 11}, "imputers.constant.value=11: out of range; expected a number in [-10, 10]"),
    (Constant(), {"part": "test"}, "imputers.constant.part='test': use train or val or all"),
    (Typed(), {"count": 1.5}, "imputers.typed.count=1.5: expected an integer"),
    (Typed(), {"scale": "big"}, "imputers.typed.scale='big': expected a number"),
    (Typed(), {"flag": 1}, "imputers.typed.flag=1: expected true or false"),
    (Typed(), {"mode": 3}, "imputers.typed.mode=3: expected a string"),
    (AsIs(), {"nte": "x"}, "imputers.asis.nte: unknown setting; did you mean imputers.asis.note?"),
])
def test_a_bad_setting_is_a_one_line_error_before_anything_is_written(small, tmp_path, imputer, settings, message):
    with pytest.raises(OccbenchError) as caught:
        imputer(small, None, "xsub", tmp_path / "out", settings)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_settings_resolve_over_the_defaults():
    assert Constant().resolve({"value": 2.0}) == {"value": 2.0, "part": "all"}
    assert Typed().resolve({"device": "cpu"})["device"] == "cpu"  # a None default takes any value
    assert Typed().resolve() == Typed.defaults
    with pytest.raises(OccbenchError, match="imputers.constant=3: expected a mapping"):
        Constant().resolve(3)
    with pytest.raises(OccbenchError, match=r"^mine\.valeu: unknown setting"):
        Constant().check_settings({"valeu": 1}, "mine")


def test_an_unknown_split_or_a_bad_seed_fails_before_anything_is_written(small, tmp_path):
    with pytest.raises(OccbenchError, match="no split 'xview'; it has xsub"):
        Constant()(small, None, "xview", tmp_path / "out")
    with pytest.raises(OccbenchError, match="seed -1"):
        Constant()(small, None, "xsub", tmp_path / "out", seed=-1)
    assert not (tmp_path / "out").exists()


def test_an_identity_imputer_leaves_the_data_as_it_is(small, tmp_path):
    frames = preprocess(small, tmp_path / "frames", frames=6)
    assert AsIs()(small, frames, "xsub", tmp_path / "out") is small
    assert AsIs()(None, frames, "xsub", tmp_path / "out", {"note": "frames"}) is frames
    imputed = impute_and_preprocess(AsIs(), small, frames, "xsub", tmp_path / "out")
    assert imputed.data is small and imputed.frames is frames
    assert not (tmp_path / "out").exists()
    with pytest.raises(OccbenchError, match="imputers.asis.nte: unknown setting"):
        impute_and_preprocess(AsIs(), small, frames, "xsub", tmp_path / "out", {"nte": "x"})


class Mine:
    """A plugin registering the worked examples (and one that wants a stage-1 encoder)."""

    @hookimpl
    def occbench_register_imputers(self, registry):
        registry.add("constant", Constant())
        registry.add("asis", AsIs())
        registry.add("embedding", Embedding())


class Embedding(Constant):
    """Wants the stage-1 encoder of the method its `encoder` setting names."""

    name = "embedding"
    defaults = {**Constant.defaults, "encoder": "skeletonclr"}

    def stage1_method(self, settings):
        return self.resolve(settings)["encoder"]


def test_the_identity_imputer_is_found_through_the_registry():
    host = load_plugins(extra={"mine": Mine()})
    assert identity_imputer(host.imputers) == "none"  # the built-in plugin registers first
    assert identity_imputer(host.imputers, ["constant", "asis", "none"]) == "asis"  # a grid's own first
    assert identity_imputer(load_plugins(disabled=("imputers",), extra={"mine": Mine()}).imputers) == "asis"
    assert identity_imputer(load_plugins(disabled=("imputers",)).imputers) is None


def test_stage1_method_says_which_encoder_an_imputer_wants():
    assert Constant().stage1_method({}) is None
    assert Embedding().stage1_method({}) == "skeletonclr" and Embedding().stage1_method({"encoder": "pstl"}) == "pstl"


def plan(host, imputers, *overrides):
    from occbench.catalogue import load_catalogue
    from occbench.plan import build_stages, resolve_grid

    catalogue = load_catalogue()
    grid = resolve_grid(catalogue, host, methods=["skeletonclr"], imputers=imputers, seeds=[0],
                        overrides=list(overrides))
    return build_stages(grid, catalogue, host, {})


def test_the_planner_asks_the_imputer_class_what_it_needs():
    host = load_plugins(extra={"mine": Mine()})
    stages = plan(host, ["asis", "constant", "embedding", "knn"])
    imputes = {stage.settings["imputer"]: stage for stage in stages if stage.kind == "impute"}
    assert set(imputes) == {"constant", "embedding", "knn"}  # the identity imputer has no stage
    assert [need.kind for need in imputes["constant"].needs] == ["data"]
    assert imputes["embedding"].need("pretrain").settings["method"] == "skeletonclr"
    assert imputes["knn"].need("pretrain").settings["method"] == "opstl"  # the plugin's default
    unimputed = next(stage for stage in stages if stage.kind == "pretrain" and stage.needs == (imputes["knn"].needs[0],)
                     and stage.settings["method"] == "skeletonclr")
    # the stage-1 pretraining is the method's own pretraining on the occluded data: one stage
    assert imputes["embedding"].need("pretrain") is unimputed
    assert unimputed.label.startswith("pretrain skeletonclr asis")
    again = plan(host, ["embedding", "knn"], "imputers.embedding.encoder=pstl", "imputers.knn.stage1_method=pstl")
    assert {stage.need("pretrain").settings["method"] for stage in again if stage.kind == "impute"} == {"pstl"}
    with pytest.raises(OccbenchError, match="imputer embedding asks for the stage-1 encoder of method 'simclr', "
                                            "which is not installed"):
        plan(host, ["embedding"], "imputers.embedding.encoder=simclr")
    with pytest.raises(OccbenchError, match="imputers.embedding.valeu: unknown setting; did you mean "
                                            "imputers.embedding.value?"):
        plan(host, ["none"], "imputers.embedding.valeu=1")


def test_a_registered_object_that_is_not_an_imputer_is_a_one_line_error():
    class Wrong:
        @hookimpl
        def occbench_register_imputers(self, registry):
            registry.add("class", Constant)
            registry.add("object", object())

    host = load_plugins(extra={"wrong": Wrong()})
    with pytest.raises(OccbenchError, match=r"imputer 'class' of plugin wrong .* register an instance: "
                                            r"registry.add\('class', Constant\(\)\)"):
        registered_imputer(host.imputers, "class")
    with pytest.raises(OccbenchError, match="imputer 'object' .* subclass occbench.impute.Imputer"):
        plan(host, ["object"])


CENTRE = """
    import numpy as np

    from occbench.hookspecs import hookimpl
    from occbench.impute import Imputer
    from occbench.settings import number


    class Centre(Imputer):
        # each occluded joint at `weight` times the mean of its body's visible joints in that frame

        name = "centre"
        defaults = {"weight": 1.0}
        schema = {"weight": number(0, 1)}

        def fill(self, job):
            filled = 0
            for rows in job.chunks():
                block = job.read(rows)
                seen = block.observed[:, None]  # (n, 1, T, 25, 2)
                count = seen.sum(axis=3, keepdims=True)
                mean = np.where(seen, block.data, 0).sum(axis=3, keepdims=True) / np.maximum(count, 1)
                fill = block.target & (count[:, 0] > 0)
                job.write(rows, np.broadcast_to(job.settings["weight"] * mean, block.data.shape), fill)
                filled += int(fill.sum())
            return {"filled": filled}


    @hookimpl
    def occbench_register_imputers(registry):
        registry.add("centre", Centre())
"""


def test_a_third_party_imputer_runs_in_a_grid_with_no_change_to_occbench(tiny_grid, third_party, capsys):
    tmp_path, _, args = tiny_grid
    third_party("occbench-centre", "occbench_centre", CENTRE)
    args[args.index("--imputers") + 1] = "none,centre"
    args[args.index("--seeds") + 1] = "0"
    args = [args[0], "--slots", "1", *args[1:]]
    for typo, message in (("imputers.centre.wieght=1", "imputers.centre.wieght: unknown setting; did you mean "
                                                       "imputers.centre.weight?"),
                          ("imputers.centre.weight=2", "imputers.centre.weight=2: out of range")):
        assert main([*args, typo]) == 2  # --cfg-options is the last option of the tiny grid's arguments
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
        assert not (tmp_path / "results").exists() or not list((tmp_path / "results").glob("*.json"))
    assert main([*args, "imputers.centre.weight=0.9"]) == 0
    records = [json.loads(path.read_text()) for path in (tmp_path / "results").glob("*.json")]
    cells = {(r["cell"]["method"], r["cell"]["imputer"], r["cell"]["protocol"]): r for r in records}
    assert {("tinyclr", "none", "linear"), ("tinyclr", "centre", "linear")} <= set(cells)
    quality = {imputer: cells[(None, imputer, "imputation")] for imputer in ("none", "centre")}
    assert quality["centre"]["metrics"]["mpjpe"] < quality["none"]["metrics"]["mpjpe"]  # nearer than the zeros
    assert quality["centre"]["config"]["impute"]["settings"] == {"weight": 0.9}
    provenance = quality["centre"]["provenance"]["plugins"]
    assert provenance["occbench_centre"] == "1.2.3"


def test_imputing_then_preprocessing_reuses_both_outputs(small, tmp_path):
    frames = preprocess(small, tmp_path / "frames", frames=6)
    result = impute_and_preprocess(Constant(), small, frames, "xsub", tmp_path / "out", {"value": 0.5})
    assert result.data.frames == small.frames and result.frames.frames == 6
    assert result.frames.meta["stages"][-1]["stage"] == "preprocess"
    assert result.frames.meta["stages"][-2]["stage"] == "impute"
    assert np.asarray(result.frames.mask)[np.asarray(result.frames.present)[:, :, None, :].repeat(25, 2)].all()
    again = impute_and_preprocess(Constant(), small, frames, "xsub", tmp_path / "out", {"value": 0.5})
    assert again.frames.meta == result.frames.meta  # reused, not recomputed
    direct = impute_and_preprocess(Constant(), None, frames, "xsub", tmp_path / "direct")
    assert direct.data.path == direct.frames.path and direct.data.frames == 6


def test_imputed_data_is_preprocessed_with_the_pipeline_of_the_data_it_came_from(small, tmp_path):
    from occbench.data.preprocess import pipeline_of

    frames = preprocess(small, tmp_path / "frames", frames=6, pipeline="published")
    result = impute_and_preprocess(Constant(), small, frames, "xsub", tmp_path / "out", {"value": 0.5})
    assert pipeline_of(result.frames) == "published"
    # the same imputation preprocessed by the other pipeline is not taken for it
    aware = preprocess(small, tmp_path / "aware", frames=6)
    again = impute_and_preprocess(Constant(), small, aware, "xsub", tmp_path / "out", {"value": 0.5})
    assert pipeline_of(again.frames) == "mask-aware"


# --- quality on the synthetic dataset with realistic occlusion -------------------------------------


def occluded_synthetic(root):
    """(clean, occluded): a small synthetic dataset at its recorded length, and it with realistic occlusion."""
    synthesize(root / "raw", SynthConfig(classes=4, subjects=3, setups=2, replications=1, min_frames=24,
                                         max_frames=36))
    clean = prepare(root / "raw", root / "clean", workers=1)
    return clean, occlude(clean, root / "occluded", "realistic", seed=0)


def with_arrays(source, path, data, mask):
    """`source` written again at `path` with other data and mask (the same samples, splits and metadata)."""
    with DatasetWriter(path, len(source), source.frames) as writer:
        for name in ("present", "inferred", "length", "label"):
            writer[name][:] = getattr(source, name)
        writer["data"][:], writer["mask"][:] = data, mask
        writer.names = source.names
        return writer.finish({split: {part: rows.tolist() for part, rows in parts.items()}
                              for split, parts in source.splits.items()}, source.meta)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    clean, occluded = occluded_synthetic(root)
    made = {"none": occluded, "constant": Constant()(occluded, None, "xsub", root / "constant")}
    return clean, occluded, made


def test_the_ground_truth_of_an_imputed_dataset_is_found_through_its_stages(synthetic):
    clean, occluded, made = synthetic
    assert [ds.path for ds in ground_truth(made["constant"])] == [occluded.path, clean.path]
    assert [ds.path for ds in ground_truth(occluded)] == [occluded.path, clean.path]
    errors = {name: imputation_error(ds, "xsub") for name, ds in made.items()}
    counts = {name: int(df[(df.part == "all") & (df.joint == "all")]["count"].iloc[0]) for name, df in errors.items()}
    assert len(set(counts.values())) == 1 and counts["constant"] > 100  # the same occluded joints for both


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
    assert list(table.columns) == ["none", "constant", "occluded joints"] and table.index[-1] == "all"
    record = quality_record(errors["constant"])
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
