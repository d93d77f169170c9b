"""Result records: one JSON file per finished benchmark cell, written atomically, loaded in one call.

A record (``"schema": 1``) has four parts, and optionally ``labels`` (how its plugins name its method,
imputer and protocol in tables; see `make_record`)::

    {"schema": 1,
     "cell":       {"method", "stream", "imputer", "dataset", "split", "occlusion", "protocol", "seed", "profile",
                    "pretrain_occlusion"},
     "metrics":    {"top1", "top5", "top1_last", "top5_last", "best_epoch", "epochs", "occluded", ...},
     "config":     the whole resolved config (null for published numbers),
     "provenance": {"source": "occbench" | "paper", "citation", versions, git, device, threads, world_size,
                    global_batch, wall_seconds, finished, ...}}

An imputation-quality record has ``cell.protocol == "imputation"`` (method and stream null) and the
metrics ``mpjpe`` (test part, in the data's units: metres for NTU), ``mpjpe_train``, ``count`` and
``per_joint``, in place of the accuracies.

``cell.occlusion`` is the occlusion spec (``realistic``, ``random@0.3``...) the protocol evaluated on,
``cell.pretrain_occlusion`` the one the encoder was pretrained on (a record written before that field
lacks it: it is then the same as ``occlusion``). ``metrics.occluded`` is the measured fraction of present
joint-frames hidden in the evaluated split's test part (0.0 for ``none``), in evaluation and
imputation-quality records alike.

A cell that has no result yet may have a status note in its place (``"status": "failed"`` or
``"submitted"``, with ``error`` and ``log``, empty metrics), in a file of its own beside where its record
will be (`paths.note_name`): `occbench table` shows the cell as failed or pending, with the log's path,
until its record is written (which removes the note).

A results file holds one record, or a list of records (the published tables in ``occbench/published/``).
Every ``*.json`` under a results folder is read; JSON that is not a record (no ``"schema"``) is foreign
and ignored, so a results folder may share space with other files.

This module must not import torch or pandas at import time: ``occbench table`` starts from it.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from occbench import __version__, paths
from occbench.errors import OccbenchError, write_error

SCHEMA = 1
CELL_FIELDS = ("method", "stream", "imputer", "dataset", "split", "occlusion", "protocol", "seed", "profile",
               "pretrain_occlusion")
# Cell fields a record written before them lacks (a reader fills them in): pretrain_occlusion is then
# the occlusion the cell was evaluated on.
LATER_CELL_FIELDS = ("pretrain_occlusion",)
METRIC_FIELDS = ("top1", "top5", "top1_last", "top5_last", "best_epoch", "epochs")
QUALITY_PROTOCOL = "imputation"  # the protocol of imputation-quality records
QUALITY_FIELDS = ("mpjpe", "mpjpe_train", "count", "per_joint")
STATUSES = ("failed", "submitted")  # of a status note: a cell without a result
NUMBERS = ("top1", "top5", "top1_last", "top5_last", "best_epoch", "epochs", "mpjpe", "mpjpe_train", "count",
           "occluded")
# Provenance fields copied into the flat rows of `records_frame`; the rest (plugins, ...) stay nested.
PROVENANCE_COLUMNS = ("source", "citation", "note", "occbench", "torch", "git", "device", "world_size",
                      "global_batch", "wall_seconds", "finished")


class RecordWarning(UserWarning):
    """A results file that could not be read as records; it is skipped, the message names it."""


# ---------------------------------------------------------------------------------------------- build


def make_record(cell: dict, metrics: dict, config: dict | None, provenance: dict, labels: dict | None = None) -> dict:
    """A schema-1 record from its parts; missing metric fields are null so every record of a kind has the
    same keys. `labels`: how the plugins of its method, imputer and protocol name them in tables
    ({"method": {"title", "citation", "order", "imputed_titles"}, "imputer": {"title", "order", "identity"},
    "protocol": {"title", "label", "order"}}), so that `occbench table` needs no plugin."""
    fields = QUALITY_FIELDS if cell.get("protocol") == QUALITY_PROTOCOL else METRIC_FIELDS
    if fields[0] not in metrics:
        raise OccbenchError(f"record metrics lack {fields[0]!r}")
    for name, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise OccbenchError(f"record metric {name} is {value}: a result that is not a number is never recorded")
    cell = _with_pretrain_occlusion(cell)
    record = {
        "schema": SCHEMA,
        "cell": {field: cell.get(field) for field in CELL_FIELDS} | _extra(cell, CELL_FIELDS),
        "metrics": {field: metrics.get(field) for field in fields} | _extra(metrics, fields),
        "config": config,
        "provenance": dict(provenance),
    }
    if labels:
        record["labels"] = labels
    check_record(record)
    return record


def _with_pretrain_occlusion(cell: dict) -> dict:
    """`cell` with pretrain_occlusion, which unless given is the occlusion it was evaluated on."""
    return cell if cell.get("pretrain_occlusion") is not None else {**cell, "pretrain_occlusion": cell.get("occlusion")}


def _extra(mapping: dict, known: tuple[str, ...]) -> dict:
    return {key: value for key, value in mapping.items() if key not in known}


def check_labels(labels: Any) -> None:
    """Raise OccbenchError unless `labels` (how plugins name a cell's method, imputer and protocol) is a
    mapping of mappings whose colours, where given, are #rrggbb."""
    if not isinstance(labels, dict) or not all(isinstance(value, dict) for value in labels.values()):
        raise OccbenchError("record labels: expected a mapping of method/imputer/protocol to their labels")
    colour = labels.get("method", {}).get("colour")
    if colour is not None and not (isinstance(colour, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", colour)):
        raise OccbenchError(f"method colour {colour!r}: expected #rrggbb, e.g. '#0072B2' (the class's `colour`)")


def check_record(record: Any) -> None:
    """Raise OccbenchError with the first thing that makes `record` not a usable schema-1 record."""
    if not isinstance(record, dict) or "schema" not in record:
        raise OccbenchError("not an occbench result record (no 'schema' field)")
    if record["schema"] != SCHEMA:
        raise OccbenchError(f"record schema {record['schema']!r}, this occbench reads schema {SCHEMA}")
    for part in ("cell", "metrics", "provenance"):
        if not isinstance(record.get(part), dict):
            raise OccbenchError(f"record has no '{part}' object")
    check_labels(record.get("labels", {}))
    missing = [field for field in CELL_FIELDS if field not in record["cell"] and field not in LATER_CELL_FIELDS]
    if missing:
        raise OccbenchError(f"record cell lacks {', '.join(missing)}")
    status = record.get("status")
    if status is not None and (status not in STATUSES or not isinstance(record.get("error", ""), str)):
        raise OccbenchError(f"record status {status!r}: expected one of {', '.join(STATUSES)} with an error text")
    needed = "mpjpe" if record["cell"]["protocol"] == QUALITY_PROTOCOL else "top1"
    if status is None and needed not in record["metrics"]:
        raise OccbenchError(f"record metrics lack {needed!r}")
    seed = record["cell"]["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise OccbenchError(f"record seed is {seed!r}: expected a whole number (or null)")
    for name in NUMBERS:
        value = record["metrics"].get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise OccbenchError(f"record metric {name} is {value!r}: expected a finite number (or null)")
    hidden = record["metrics"].get("occluded")
    if hidden is not None and not 0 <= hidden <= 1:
        raise OccbenchError(f"record metric occluded is {hidden!r}: expected a fraction in [0, 1]")


def make_note(cell: dict, status: str, error: str, log: str | None, config: dict | None = None,
              labels: dict | None = None) -> dict:
    """A status note for `cell`, which has no result: failed (error says why) or submitted to Slurm."""
    cell = _with_pretrain_occlusion(cell)
    note = {"schema": SCHEMA, "cell": {field: cell.get(field) for field in CELL_FIELDS}, "metrics": {},
            "status": status, "error": error, "log": None if log is None else str(log), "config": config,
            "provenance": {"source": "occbench", "occbench": __version__,
                           "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}}
    if labels:
        note["labels"] = labels
    check_record(note)
    return note


def write_note(note: dict, folder: Path) -> Path:
    return write_record(note, folder, name=paths.note_name(note["cell"]))


def provenance(*, plugins: dict[str, str] | None = None, device: str | None = None, world_size: int = 1,
               global_batch: int | None = None, wall_seconds: float | None = None,
               source: str = "occbench", citation: str | None = None, threads: dict | None = None) -> dict:
    """Where and with what a result was made: versions, git commit, host, device and finishing time.

    threads: the CPU threads of each stage; float sums are ordered by thread, so a training run on one
    thread and on two drifts apart (quick grid: up to a few points of top-1 on one seed).
    """
    return {
        "source": source,
        "citation": citation,
        "occbench": __version__,
        "torch": _torch_version(),
        "python": platform.python_version(),
        "plugins": dict(sorted((plugins or {}).items())),
        "git": _git_commit(paths.PACKAGE),
        "host": socket.gethostname(),
        "device": device,
        "threads": threads,
        "world_size": world_size,
        "global_batch": global_batch,
        "wall_seconds": wall_seconds,
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _torch_version() -> str | None:
    # Reading the installed metadata gives the version without paying for `import torch`.
    if "torch" in sys.modules:
        return str(sys.modules["torch"].__version__)
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit(folder: Path) -> str | None:
    """The commit of the source tree occbench runs from; None for an installed copy or without git.

    An installed copy can sit inside someone else's repository (a virtual environment in an experiment
    folder): the commit counts only when git tracks this very file."""
    try:
        done = subprocess.run(["git", "-C", str(folder), "ls-files", "--error-unmatch", "store.py"],
                              capture_output=True, text=True, timeout=5, check=False)
        if done.returncode != 0:
            return None
        done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


# ---------------------------------------------------------------------------------------------- write


def record_name(record: dict) -> str:
    """A stable, readable file name from the cell, e.g. ``opstl-J-knn-ntu60-xsub-realistic-linear-paper-seed0.json``."""
    return paths.record_name(record["cell"])


def write_record(record: dict, folder: Path, name: str | None = None) -> Path:
    """Write `record` to `folder`/`name` (default: `record_name`) so readers see the old file or the whole new one.

    The text goes to a temporary file in the same folder (same file system), is flushed to disk, and then
    renamed over the target with os.replace, which is atomic; on any failure the temporary file is removed
    and the target is left as it was.
    """
    check_record(record)
    folder = Path(folder)
    target = folder / (name or record_name(record))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=folder, prefix=f".{target.name}.",
                                             suffix=".tmp", delete=False)
    except OSError as err:
        raise write_error(folder, err, "--results") from None
    try:
        with handle:
            json.dump(_jsonable(_without_path(record)), handle, indent=2, allow_nan=False, default=_to_json)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o666 & ~_umask())  # what open() would have made: a shared folder stays readable
        os.replace(handle.name, target)
        if "status" not in record:  # the cell has its result: a note of its failure is history
            (folder / paths.note_name(record["cell"])).unlink(missing_ok=True)
    except BaseException as err:
        Path(handle.name).unlink(missing_ok=True)  # the old record, if any, stays as it was
        if isinstance(err, OSError):
            raise write_error(target, err, "--results") from None
        raise
    return target


def as_stored(record: dict) -> dict:
    """`record` as `write_record` stores it (and `json.load` reads it back)."""
    return json.loads(json.dumps(_jsonable(_without_path(record)), allow_nan=False, default=_to_json))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _without_path(record: dict) -> dict:
    # `path` is added by load_records to say where a record came from; it is not part of the stored record.
    return {key: value for key, value in record.items() if key != "path"}


def _jsonable(value: Any) -> Any:
    """NaN and infinities in a record's config become null, so the file stays strict JSON (its metrics are
    never non-finite: make_record refuses them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


def _to_json(value: Any) -> Any:
    """Config values json cannot write itself: paths, numpy scalars and arrays, sets, anything else as text."""
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


# ----------------------------------------------------------------------------------------------- read


def load_records(folder: Path | str) -> list[dict]:
    """Every record in the ``*.json`` files under `folder` (recursively; or in one file), each with a ``path``
    key added.

    A file that is not valid JSON or holds a broken record is skipped with a RecordWarning naming it, so
    one damaged file does not hide the other results. Foreign JSON (no ``"schema"``) is skipped silently.
    """
    folder = Path(folder)
    if folder.is_file():
        return _read_file(folder)
    if not folder.is_dir():
        raise OccbenchError(f"no such results folder: {folder}")
    records = []
    for path in sorted(folder.rglob("*.json")):
        if not path.is_file():  # a FIFO or a device named *.json would block the read
            warnings.warn(f"skipped {path}: not a regular file", RecordWarning, stacklevel=2)
            continue
        records.extend(_read_file(path))
    return records


def _read_file(path: Path) -> list[dict]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        warnings.warn(f"skipped {path}: not readable JSON ({err})", RecordWarning, stacklevel=3)
        return []
    items = content if isinstance(content, list) else [content]
    if not any(isinstance(item, dict) and "schema" in item for item in items):
        return []  # foreign JSON
    records = []
    for index, item in enumerate(items):
        where = f"{path}" if len(items) == 1 else f"{path} [item {index}]"
        try:
            check_record(item)
        except OccbenchError as err:
            warnings.warn(f"skipped {where}: {err}", RecordWarning, stacklevel=3)
            continue
        records.append(item | {"path": str(path)})
    return records


def flat_rows(records: Iterable[dict]) -> list[dict]:
    """One flat dict per record: cell fields (``pretrain_occlusion`` = ``occlusion`` where a record lacks it),
    metrics, the main provenance fields and the file path."""
    return [_flatten(record) for record in records]


def _flatten(record: dict) -> dict:
    origin = record["provenance"]
    row = _with_pretrain_occlusion(dict(record["cell"])) | dict(record["metrics"])
    row |= {field: origin.get(field) for field in PROVENANCE_COLUMNS}
    row |= {field: record.get(field) for field in ("status", "error", "log")}
    row["path"] = record.get("path")
    for name, labels in (record.get("labels") or {}).items():
        row[f"{name}_labels"] = labels
    return row


def records_frame(source: Path | str | Iterable[dict]):
    """All records as a pandas DataFrame, one row per record (see `flat_rows` for the columns).

    `source` is a results folder or records already loaded. pandas is imported here, not at module
    import, to keep `occbench table` fast.
    """
    import pandas as pd

    records = load_records(source) if isinstance(source, (str, Path)) else list(source)
    rows = flat_rows(records)
    columns = list(dict.fromkeys([*CELL_FIELDS, *METRIC_FIELDS, *PROVENANCE_COLUMNS, "status", "error", "log", "path"]
                                 + [key for row in rows for key in row]))
    frame = pd.DataFrame(rows, columns=columns)
    # Missing numbers are None in the records; as NaN the columns stay numeric (mean, groupby work).
    numeric = [*METRIC_FIELDS, "mpjpe", "mpjpe_train", "occluded", "top1_change_abs", "world_size", "global_batch",
               "wall_seconds"]
    for name in [name for name in numeric if name in frame]:
        frame[name] = pd.to_numeric(frame[name])
    frame["seed"] = frame["seed"].astype("Int64")
    return frame
