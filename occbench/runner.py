"""Runs the stages of a plan: each stage once, resumably, its output recorded in its own folder.

A stage is done when its folder holds `done.json` (written atomically, last); evaluation stages also
write their result record into the results folder and keep a copy in `done.json`. A stage is computed
under a lock on its folder, so concurrent runs sharing a work folder compute it once. Killed at any
moment, a re-run skips what is done, and a pretraining resumes from its last epoch's checkpoint.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from occbench import distributed, encoders, paths, store
from occbench.data.dataset import SkeletonDataset
from occbench.errors import OccbenchError, brief, write_error
from occbench.hookspecs import StageEvent
from occbench.plan import Stage
from occbench.plugins import load_plugins


@dataclass
class Context:
    """Where and how stages run. Picklable: a worker process or a slurm job reloads the plugins."""

    work: Path  # stage folders
    results: Path  # result records
    device: str = "cpu"
    progress: bool = True
    disabled: tuple[str, ...] = ()  # blocked plugins
    host: object = None  # the PluginHost, loaded from `disabled` when not given
    load_error: str | None = field(default=None, repr=False)  # why a worker could not load the plugins

    def __post_init__(self):
        if self.host is None:
            self.host = load_plugins(disabled=self.disabled)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "host": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        try:
            self.__post_init__()
        except Exception as err:  # noqa: BLE001 (raised by run_stage, as the stage's failure, not as a dead worker)
            self.load_error = f"a worker process could not load the plugins: {brief(err)}"


# The outputs of a stage that are files: kept in done.json relative to the stage folder, so a work
# folder can move; `output` hands them out as full paths.
FILE_OUTPUTS = ("raw", "frames", "encoder")


def is_done(stage: Stage, context: Context) -> bool:
    """The stage's done-marker is there and whole (an evaluation's holds its record): a truncated or
    emptied marker is removed, and the stage computed again rather than reported done without a result."""
    marker = stage.folder(context.work) / paths.DONE
    if not marker.is_file():
        return False
    try:
        result = json.loads(marker.read_text())
        whole = isinstance(result, dict) and (stage.kind != "evaluate" or bool(result.get("records")))
        # a flipped digit leaves valid JSON: the marker's digest of its own content finds it
        whole = whole and result.pop(MARKER_DIGEST, None) in (None, _marker_digest(result))
    except (OSError, UnicodeDecodeError, ValueError):
        whole = False
    if not whole:
        print(f"{stage.label}: its done-marker {marker} is damaged; computing the stage again", flush=True)
        marker.unlink(missing_ok=True)
    return whole


MARKER_DIGEST = "marker_digest"  # done.json's digest of the rest of its content


def _marker_digest(result: dict) -> str:
    return paths.digest({"marker": result}, length=32)


def output(stage: Stage, context: Context) -> dict:
    folder = stage.folder(context.work)
    result = json.loads((folder / paths.DONE).read_text())
    result.pop(MARKER_DIGEST, None)
    return result | {name: str(paths.resolve(folder, result[name])) for name in FILE_OUTPUTS if name in result}


def verified_output(stage: Stage, context: Context) -> dict:
    """`output` of a done stage whose files are used as input: each checked against the digest the stage
    kept of it. A damaged one (a flipped byte, a replaced file) is removed and the stage computed again,
    under its lock, so nothing is ever trained or evaluated on it."""
    result = output(stage, context)
    if not _damaged(result):
        return result
    with _exclusive(stage, context):
        result = output(stage, context) if is_done(stage, context) else None
        damaged = _damaged(result) if result else []
        if result is None or damaged:
            for name in damaged:
                _discard(stage, context, Path(result[name]))
            (stage.folder(context.work) / paths.DONE).unlink(missing_ok=True)
            result = _compute(stage, context)
    return result


def _damaged(result: dict) -> list[str]:
    """The file outputs of `result` whose content is not what its stage wrote."""
    damaged = []
    for name in FILE_OUTPUTS:
        if f"{name}_digest" in result:
            try:
                same = paths.content_digest(result[name]) == result[f"{name}_digest"]
            except OSError:
                same = False
            if not same:
                damaged.append(name)
    return damaged


def _discard(stage: Stage, context: Context, path: Path) -> None:
    """Remove a damaged output that occbench made (in the stage's folder, or the embedded dataset's); one
    that is the user's own (a prepared dataset passed with --data) is never touched: an error names it."""
    folder = stage.folder(context.work)
    if not any(path.resolve().is_relative_to(mine.resolve()) for mine in (folder, paths.embedded_root())):
        raise OccbenchError(f"{path}: changed since {stage.label} read it; prepare it again as it was, or run "
                            f"with a new --work")
    print(f"{path}: not what {stage.label} wrote (damaged or replaced); making it again", flush=True)
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _finish(stage: Stage, context: Context, result: dict) -> dict:
    folder = stage.folder(context.work)
    kept = result | {name: paths.relative_to(folder, result[name]) for name in FILE_OUTPUTS if name in result}
    kept = json.loads(json.dumps(kept, default=str))  # as it will be read back
    kept[MARKER_DIGEST] = _marker_digest(kept)
    tmp = folder / f"{paths.DONE}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / paths.DESCRIPTION).write_text(json.dumps({"kind": stage.kind, "label": stage.label,
                                                            "key": stage.key, "settings": stage.settings},
                                                           indent=2, default=str))
        tmp.write_text(json.dumps(kept, indent=2, default=str))
        os.replace(tmp, folder / paths.DONE)
    except OSError as err:  # the stage stays not done: a re-run computes it again
        tmp.unlink(missing_ok=True)
        raise write_error(folder / paths.DONE, err, "--work") from None
    return result


def run_stage(stage: Stage, context: Context) -> dict:
    if context.load_error is not None:
        raise OccbenchError(context.load_error)
    if not is_done(stage, context):
        with _exclusive(stage, context):
            if not is_done(stage, context):  # nobody finished it while we waited
                return _compute(stage, context)
    result = output(stage, context)
    _copy_records(result, context.results, stage.cell.profile if stage.cell else None)
    context.host.hook.occbench_stage_finished(event=stage_event(stage, result, cached=True))
    return result


def stage_event(stage: Stage, result: dict | None = None, cached: bool = False) -> StageEvent:
    """What the event hooks receive about `stage`; `result`: its output, once it has finished."""
    cell = asdict(stage.cell) if stage.cell else None
    if result is None:
        return StageEvent(stage.kind, stage.key, stage.label, stage.settings, cell)
    records = result.get("records", {})
    records = tuple(records.values()) if isinstance(records, dict) else ()
    output = {name: value for name, value in result.items() if name != "records"}
    return StageEvent(stage.kind, stage.key, stage.label, stage.settings, cell, records, output,
                      result.get("wall_seconds"), cached)


@contextmanager
def _exclusive(stage: Stage, context: Context):
    """Hold the stage's lock file: two processes (two `occbench run`s on one work folder, a worker left
    over from a killed run) never compute the same stage at once. The kernel drops the lock when its
    holder dies, even by SIGKILL, so a lock is never stale."""
    with _locked(stage.folder(context.work), stage.label, "--work"):
        yield


@contextmanager
def _locked(folder: Path, what: str, option: str):
    """Hold the lock file of `folder` (made if need be) while `what` is made in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / paths.LOCK, "w")  # closed by the with below
    except OSError as err:
        raise write_error(folder, err, option) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {what}: another process is computing it", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _compute(stage: Stage, context: Context) -> dict:
    context.host.hook.occbench_stage_started(event=stage_event(stage))
    started = time.time()
    result = EXECUTORS[stage.kind](stage, context)
    result["wall_seconds"] = round(time.time() - started, 2)
    result |= {f"{name}_digest": paths.content_digest(result[name]) for name in FILE_OUTPUTS if name in result}
    # the records first: a stage marked done always has its records
    if stage.kind == "evaluate":
        records = [_record(stage, context, result)]
    elif stage.kind == "impute" and result["quality"]:
        records = list(_quality_records(stage, context, result).values())
    else:
        records = []
    if records:
        result["records"] = {store.record_name(record): record for record in records}
    for name, record in result.get("records", {}).items():
        store.write_record(record, context.results, name=name)
    _finish(stage, context, result)
    result = output(stage, context)
    context.host.hook.occbench_stage_finished(event=stage_event(stage, result))
    return result


def _copy_records(result: dict, results: Path, profile: str | None = None) -> None:
    """A cached stage's records into this run's results folder: the stage keeps its own copy, so they
    reach any folder, wherever (and from whichever working directory) the stage was first computed.
    A record that differs from the stage's copy (damaged, edited, or made by other stages: other
    settings under the same profile name) is replaced: a results folder holds the grid as it was last run.

    `profile`: the name this run gives the stage's cells. The same stage (same key, same settings) may
    have been computed under another name, `quick (pretrain.epochs=6)` before the quick profile itself
    became 6 epochs; its records take this run's name, or a table would split one cell in two."""
    records = result.get("records", {})
    if not isinstance(records, dict):  # stages finished before the copy was kept: paths to the records
        found = [Path(p) for p in filter(None, [result.get("record"), *records])]
        records = {p.name: json.loads(p.read_text()) for p in found if p.is_file()}
    for record in records.values():
        if profile is not None and record["cell"].get("profile") != profile:
            record = _named(record, profile)
        name = store.record_name(record)
        if _stored(Path(results) / name) != store.as_stored(record):  # missing, damaged, or another stage's
            store.write_record(record, results, name=name)


def _named(record: dict, profile: str) -> dict:
    """`record` with its cell (and the cell in its configuration) under the profile name `profile`."""
    record = {**record, "cell": {**record["cell"], "profile": profile}}
    config = record.get("config")
    if isinstance(config, dict) and isinstance(config.get("cell"), dict):
        record["config"] = {**config, "cell": {**config["cell"], "profile": profile}}
    return record


def _stored(path: Path) -> dict | None:
    """The record at `path`; None when there is none (or it cannot be read)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# --- data -----------------------------------------------------------------------------------------


def _data(stage: Stage, context: Context) -> dict:
    """The dataset under the stage's occlusion spec (`random@0.3`: occlude's kind and severity), at its
    recorded length and preprocessed with its pipeline, with the measured hidden fraction of each split's
    test part."""
    from occbench.data.occlusion import occlude
    from occbench.data.preprocess import preprocess

    s = stage.settings
    pipeline = _pipeline(stage)
    if s["source"] == "embedded":
        from occbench.data.embedded import embedded_datasets
        from occbench.data.synth import SynthConfig

        occlusion = "realistic" if s["occlusion"] == "none" else s["occlusion"]
        config = SynthConfig(**s["synth"])
        # the data stages of several occlusions share the chain's clean parts: made once, under its lock
        with _locked(paths.embedded_folder(asdict(config)), f"the embedded dataset ({s['dataset']})", "OCCBENCH_HOME"):
            sets = embedded_datasets(occlusion=occlusion, config=config, frames=s["frames"], progress=context.progress,
                                     pipeline=pipeline)
        raw, frames = ((sets["raw"], sets["clean"]) if s["occlusion"] == "none" else
                       (sets["occluded_raw"], sets["occluded"]))
    else:
        folder = stage.folder(context.work)
        raw = SkeletonDataset(s["source"])
        if s["occlusion"] != "none":
            raw = _reuse(folder / paths.RAW, lambda out: occlude(raw, out, s["occlusion"], seed=0,
                                                                  progress=context.progress))
        frames = _reuse(folder / paths.FRAMES,
                        lambda out: preprocess(raw, out, frames=s["frames"], progress=context.progress,
                                               pipeline=pipeline))
    return {"raw": raw.path, "frames": frames.path, "occluded": _occluded_fractions(raw)}


def _pipeline(data: Stage) -> str:
    """The preprocessing pipeline of a data stage (its settings name it only when it is not the default)."""
    from occbench.data.preprocess import DEFAULT_PIPELINE

    return data.settings.get("pipeline", DEFAULT_PIPELINE)


TEST_PART = "val"  # a split's part that the protocols report on


def _occluded_fractions(raw: SkeletonDataset) -> dict[str, float]:
    """{split: the fraction of present joint-frames hidden in its test part}, measured on the data at its
    recorded length (the records' `occluded`)."""
    from occbench.data.occlusion import occluded_fraction

    return {split: round(occluded_fraction(raw, split, TEST_PART), 6) for split in raw.splits}


def occluded(data: Stage, split: str, context: Context) -> float:
    """The measured hidden fraction of `split`'s test part in the data stage `data`'s output (measured
    now for a stage finished before data stages kept it)."""
    result = output(data, context)
    kept = result.get("occluded")
    if not isinstance(kept, dict) or split not in kept:
        kept = _occluded_fractions(SkeletonDataset(verified_output(data, context)["raw"]))
    return kept[split]


def _reuse(folder: Path, build) -> SkeletonDataset:
    return SkeletonDataset(folder) if (folder / "meta.json").is_file() else build(folder)


# --- impute ---------------------------------------------------------------------------------------


def _impute(stage: Stage, context: Context) -> dict:
    from occbench.data.preprocess import preprocess
    from occbench.impute import identity_imputer, registered_imputer

    s = stage.settings
    data = verified_output(stage.need("data"), context)
    raw, frames = SkeletonDataset(data["raw"]), SkeletonDataset(data["frames"])
    imputer = registered_imputer(context.host.imputers, s["imputer"])
    embed = None
    if imputer.stage1_method(s["settings"]) is not None:  # the planner made the stage-1 pretraining a need
        encoder = load_stage_encoder(stage.need("pretrain"), context)
        embed = lambda part: embed_part(encoder, part, context.device)  # noqa: E731
    folder = stage.folder(context.work)
    # a complete imputation left by a run killed before the stage was done is reused by the imputer
    imputed = imputer(raw, frames, s["split"], folder / paths.RAW, s["settings"], s["seed"], embed=embed,
                      progress=context.progress)
    # the imputed data is preprocessed as the data stage preprocessed the occluded data
    imputed_frames = _reuse(folder / paths.FRAMES, lambda out: preprocess(
        imputed, out, frames=frames.frames, progress=context.progress, pipeline=_pipeline(stage.need("data"))))
    baseline = identity_imputer(context.host.imputers)
    return {"raw": imputed.path, "frames": imputed_frames.path,
            "quality": _quality(imputed, raw, s["split"], s["imputer"], baseline)}


def _quality(imputed: SkeletonDataset, occluded: SkeletonDataset, split: str, imputer: str,
             baseline: str | None) -> dict | None:
    """The error on the occluded joints when the clean data is known (occbench occluded it), of the imputer
    and of leaving the zeros, recorded under the name of the identity imputer `baseline` (not measured
    when no identity imputer is installed: baseline None)."""
    from occbench.impute import ground_truth, imputation_error, quality_record

    if ground_truth(imputed) is None:
        return None
    measured = ((baseline, occluded),) if baseline is not None else ()
    return {name: quality_record(imputation_error(data, split)) for name, data in (*measured, (imputer, imputed))}


def _quality_records(stage: Stage, context: Context, result: dict) -> dict[str, dict]:
    plugins = {info.name: info.version for info in context.host.plugins}
    provenance = store.provenance(plugins=plugins, device=context.device, wall_seconds=result["wall_seconds"])
    data = stage.need("data")
    hidden = occluded(data, stage.settings["split"], context)
    records = {}
    for imputer, quality in result["quality"].items():
        metrics = {"mpjpe": quality["mpjpe"]["val"], "mpjpe_train": quality["mpjpe"]["train"],
                   "count": quality["count"]["val"], "per_joint": quality["per_joint"]["val"], "occluded": hidden}
        cell = {**asdict(stage.cell), "imputer": imputer, "stream": None}
        # Leaving the zeros (the identity imputer's record) depends on the occluded data alone, whichever
        # imputation stage measured it: its record names that stage only, so every imputer's stage makes the same one.
        own = imputer == stage.settings["imputer"]
        config = {"impute": stage.settings if own else {"split": stage.settings["split"]},
                  "stages": {need.kind: need.key for need in ((stage, *stage.needs) if own else (data,))}}
        records[imputer] = store.make_record(cell, metrics, config, provenance, context.host.labels(cell))
    return records


@torch.no_grad()
def embed_part(encoder: torch.nn.Module, part, device: str, batch_size: int = 256):
    encoder.eval()
    x, mask = torch.as_tensor(part.data), torch.as_tensor(part.mask)
    chunks = [encoder(x[i : i + batch_size].to(device), mask=mask[i : i + batch_size].to(device)).cpu()
              for i in range(0, len(x), batch_size)]
    return torch.cat(chunks).numpy()


# --- pretrain -------------------------------------------------------------------------------------


def _method(stage: Stage, context: Context):
    cls = context.host.methods[stage.settings["method"]]
    return cls(stage.settings["method_settings"]).to(context.device)


def _input(stage: Stage) -> tuple[Stage, Stage]:
    """(the stage whose data `stage` reads: an imputation or a data stage, that data stage)."""
    source = next(need for need in stage.needs if need.kind in ("impute", "data"))
    return source, source if source.kind == "data" else source.need("data")


def _train_data(stage: Stage, context: Context, part: str = "train"):
    """The split's part from the stage's input (a pretraining's, or an evaluation's own: its occlusion may
    differ from the pretraining's), with OPSTL's missing-joint flags from the occluded data."""
    from occbench.data.batches import DeviceData, occluded_joints

    s = stage.settings
    source, occluded_data = _input(stage)
    data = SkeletonDataset(verified_output(source, context)["frames"])
    occluded = SkeletonDataset(verified_output(occluded_data, context)["frames"]).part(s["split"], part)
    piece = data.part(s["split"], part)
    if piece.names != occluded.names:
        raise OccbenchError(f"{data.path}: samples of {s['split']}/{part} differ from the occluded data's; "
                            "delete the stage folder and run again")
    return DeviceData(piece, context.device, missing=occluded_joints(occluded)), data


def _pretrain(stage: Stage, context: Context) -> dict:
    processes = stage.settings.get("world_size", 1)
    if processes > 1:
        os.environ["OCCBENCH_DEVICE"] = context.device  # read by each rank to pick nccl or gloo
        return distributed.launch(_pretrain_rank, processes, stage, context)
    return _pretrain_rank(stage, context)


def _pretrain_rank(stage: Stage, context: Context) -> dict:
    """One process's pretraining; under data parallelism each rank runs this on its rows of every batch."""
    from occbench.engine import Checkpoint, calibrate_batch_norm, fit, seed_everything

    s = stage.settings
    context = replace(context, device=distributed.device(context.device))
    rank, world = distributed.rank(), distributed.world_size()
    generator = seed_everything(s["seed"])  # the same on every rank: same weights, same batch order
    method = _method(stage, context)
    distributed.broadcast_module(method)
    train, _ = _train_data(stage, context)
    folder = stage.folder(context.work)
    augment = generator if world == 1 else torch.Generator()

    def batches(epoch, gen):
        if world > 1:  # each rank its own augmentations and dropout, reproducible from (seed, rank, epoch)
            augment.manual_seed((s["seed"] * 1_000_003 + rank) * 10_007 + epoch)
            torch.manual_seed((s["seed"] * 1_000_003 + rank) * 10_007 + epoch + 5_003)
        return map(distributed.shard, train.batches(min(s["batch_size"], len(train)), gen))

    history = fit(
        method, lambda batch, epoch: method.training_step(batch, epoch, augment), batches,
        s["pretrain"]["epochs"], s["pretrain"]["optimizer"], s["pretrain"].get("schedule", {}), generator,
        checkpoint=Checkpoint(folder), params=method.param_groups(),
        after_step=lambda epoch, index: method.after_step(), progress=stage.label if context.progress else None,
        precision=s["pretrain"].get("precision", "fp32"),
    )
    encoder = method.feature_encoder()
    if s["pretrain"]["epochs"] == 0:  # the random-weights baseline: BatchNorm statistics from the data
        calibrate_batch_norm(encoder, train.inputs(s["batch_size"]))
    if rank == 0:
        folder.mkdir(parents=True, exist_ok=True)  # zero epochs write no checkpoint (the random-weights baseline)
        encoders.save(encoder, folder / paths.ENCODER)
    distributed.barrier()
    weights = folder / paths.ENCODER
    return {"encoder": weights, "history": history, "world_size": world, "threads": torch.get_num_threads()}


def load_stage_encoder(stage: Stage, context: Context) -> torch.nn.Module:
    """The stage's feature encoder, built from the spec saved with its weights (the method is not built:
    its queues, key encoders and projectors are not needed), or through the method for an encoder a
    spec cannot rebuild (and the files of occbench before specs)."""
    path = Path(verified_output(stage, context)["encoder"])
    try:
        saved = torch.load(path, map_location=context.device, weights_only=True)
        spec, weights = (saved["spec"], saved["state_dict"]) if "state_dict" in saved else (None, saved)
        encoder = encoders.build(spec) if spec else _method(stage, context).feature_encoder()
        encoder.load_state_dict(weights)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as err:
        raise OccbenchError(f"{path}: unreadable encoder ({type(err).__name__}); remove its stage to pretrain it "
                            f"again: rm -r {stage.folder(context.work)}") from None
    return encoder.to(context.device).eval()


# --- evaluate -------------------------------------------------------------------------------------


def _evaluate(stage: Stage, context: Context) -> dict:
    from occbench.data.batches import EvalData
    from occbench.engine import seed_everything

    s = stage.settings
    pretrain = stage.need("pretrain")
    encoder = load_stage_encoder(pretrain, context)
    train, data = _train_data(stage, context, "train")
    val, _ = _train_data(stage, context, "val")
    generator = seed_everything(s["seed"])
    protocol = context.host.protocols[s["protocol"]]
    eval_data = EvalData(train, val, data.num_class, generator, stage.label if context.progress else None)
    hidden = occluded(_input(stage)[1], s["split"], context)  # of the evaluated data, not the pretraining's
    metrics = {**protocol(encoder, eval_data, s["settings"]), "occluded": hidden}
    for name, value in metrics.items():  # a diverged probe is a failed stage, never a result
        if isinstance(value, float) and not math.isfinite(value):
            raise OccbenchError(f"{name} is {value}: the {s['protocol']} protocol diverged and nothing is recorded; "
                                f"lower its learning rate (--cfg-options protocols.{s['protocol']}...optimizer.lr=...)")
    return {"metrics": metrics}


def _record(stage: Stage, context: Context, result: dict) -> dict:
    pretrain = stage.need("pretrain")
    plugins = {info.name: info.version for info in context.host.plugins}
    # the stages of the cell by kind; those of the pretraining's side apart where its occlusion differs
    source, data = _input(stage)  # the evaluated data: an imputation or the data stage, and that data stage
    stages = {need.kind: need.key for need in (stage, *stage.needs, *pretrain.needs)}
    if stage.cell.pretrain_occlusion != stage.cell.occlusion:
        stages = {need.kind: need.key for need in (stage, *stage.needs, source, data)}
        stages["pretrain_side"] = {need.kind: need.key for need in (pretrain, *pretrain.needs)}
    # the evaluated data's stage settings, its preprocessing pipeline named even when it is the default
    # (not its source: a path on the machine that ran it)
    data_settings = {name: value for name, value in data.settings.items() if name != "source"}
    config = {"cell": asdict(stage.cell), "evaluate": stage.settings, "pretrain": pretrain.settings,
              "data": {**data_settings, "pipeline": _pipeline(data)}, "stages": stages}
    provenance = store.provenance(plugins=plugins, device=context.device,
                                  world_size=pretrain.settings.get("world_size", 1),
                                  global_batch=pretrain.settings["batch_size"], wall_seconds=result["wall_seconds"],
                                  threads={"pretrain": output(pretrain, context).get("threads"),
                                           "evaluate": torch.get_num_threads()})
    cell = result_cell(stage, context)
    return store.make_record(cell, result["metrics"], config, provenance, context.host.labels(cell))


def result_cell(stage: Stage, context: Context) -> dict:
    """The cell of an evaluation stage's record (and of a status note in its place)."""
    method = context.host.methods[stage.cell.method]
    return {**asdict(stage.cell), "stream": "+".join(stream[0].upper() for stream in method.streams)}


def note_failure(failed: Stage, error: BaseException, stages: list[Stage], context: Context,
                 log: str | None = None) -> None:
    """A failed note in the results folder for every result cell among `stages` that `failed` (or a stage
    it needs) kept from being computed: `occbench table` shows them as failed, with why and the log."""
    for stage in stages:
        if stage.kind == "evaluate" and failed.key in {s.key for s in (stage, *stage.upstream())}:
            cell = result_cell(stage, context)
            note = store.make_note(cell, "failed", f"{failed.label}: {error}", log, labels=context.host.labels(cell))
            store.write_note(note, context.results)


EXECUTORS = {"data": _data, "impute": _impute, "pretrain": _pretrain, "evaluate": _evaluate}
