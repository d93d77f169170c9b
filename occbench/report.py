"""Tables from result records, laid out like the paper's: markdown, LaTeX (booktabs), CSV and JSON.

Layouts (top-1 accuracy in %):

* ``imputers`` (Tables II/III): rows method x stream; columns imputer (none, random, knn) x split; the
  imputed cells show their change against ``none`` of the same method and split, with an arrow.
* ``protocols`` (Table IV): rows protocol x method; columns dataset x split; cells on imputed data with
  their change against the same protocol on non-imputed data.
* ``summary`` (Table I): baselines without imputation and IosPSTL (OPSTL + KNN imputation), linear protocol.
* ``stages`` (Table V, the ASM ablation): rows stage 1, the imputer (a KNN imputer's name says whose
  stage-1 encoder embeds the data), x stage 2, the method pretrained on the imputed data; columns dataset x
  split; every imputed cell (the non-imputed ones have no stage 1).
* ``imputation`` (Table VI): one table per method, rows imputer (by title: no imputation, the KNN imputer...),
  columns dataset x split, each imputed cell with its change against ``none``.
* ``quality``: the imputers' error on the occluded joints of the test set (MPJPE in mm, from the
  imputation-quality records the runner writes when the clean data is known); rows imputer, columns
  dataset x split, with the change against leaving the zeros (none).
* ``severity``: accuracy per occlusion level; rows method x stream (x imputer when there are several),
  columns split x occlusion level (``random@0.1``, ``random@0.3``...: kind, then the severity as a
  number), each with the measured fraction of hidden joint-frames. A level's change is against the
  lowest level of its kind (same method, imputer and split): what the extra occlusion costs. The
  imputers' own gain at each level is the ``imputers`` layout, one table per level.

``tableN`` names the layout of the paper's Table N (``table1`` is ``summary``, ``table2`` and ``table3``
``imputers``, ``table4`` ``protocols``, ``table5`` ``stages``, ``table6`` ``imputation``), as ``occbench run
--suite tableN`` names its grid.

Fields a layout does not put in rows or columns (dataset, occlusion, protocol, profile...) split the
records into one table per value; unless filtered, clean data (occlusion ``none``) is left out of
occlusion tables and the imputers and summary layouts use the linear protocol when there is one. The
occlusion an encoder was pretrained on is part of a cell: a cell pretrained on other data than it is
evaluated on (clean pretraining, realistic evaluation) gets its own table, titled so.

Changes pair the runs of one seed: a change is the mean of the per-seed differences between the cell
and the one it is compared with (everything else equal), over the seeds both have; with two pairs or
more it has a two-sided 95% t interval (df = pairs - 1), and a ``*`` where that interval excludes 0.
``reference=METHOD`` compares every method with that one instead. Records without seeds (the published
numbers) change by the difference of their means.

The best number of each column (the highest top-1, the lowest MPJPE; per protocol in ``protocols``; ties
as printed all count) is bold in markdown and LaTeX and a ``best`` field in csv and json. LaTeX tables can
be scaled to a width (``\\resizebox``) and labelled (``\\label``, numbered when there are several).

Published numbers (``provenance.source == "paper"``) are shown only when there is nothing else, or beside
ours with ``compare="paper"``, where they do not compete for the best. Like `store`, this module imports
neither torch nor pandas (nor numpy: the t quantile is computed here).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from occbench import paths
from occbench.errors import OccbenchError
from occbench.store import RecordWarning, flat_rows, load_records

# `pretraining` is derived from the record's pretrain_occlusion (`_as_rows`): SAME when the encoder was
# pretrained on the occlusion it is evaluated on, else that occlusion, so that a severity sweep whose
# levels each pretrain on their own data stays one table.
KEY = ("method", "stream", "imputer", "dataset", "split", "occlusion", "pretraining", "protocol", "profile")
SAME = "as evaluated"
AGAINST = "\0against"  # the profile of `--against`'s cells, which pair with ours whatever their profile
FILTERS = ("dataset", "split", "protocol", "imputer", "occlusion", "pretrain_occlusion", "method", "profile")
FORMATS = ("markdown", "latex", "csv", "json")
# The order and labels of the data-layer fields; methods, imputers and protocols are named by their
# plugins, whose titles each record carries (`Names`)
ORDER = {
    "dataset": ("ntu60", "ntu120", "synthetic"),
    "split": ("xsub", "xview", "xset"),
    "occlusion": ("none", "realistic", "random", "inferred"),  # a level `kind@severity` ranks by kind, severity
}
LABELS = {"dataset": {"ntu60": "NTU-60", "ntu120": "NTU-120"}}
TITLES = {"occlusion": {"none": "no occlusion"}}
NAMED_BY_PLUGINS = ("method", "imputer", "protocol")


@dataclass
class Names:
    """How the records name their methods, imputers and protocols: the titles, order and roles their
    plugins gave them, which each record carries (`labels`), so that tables need no plugin installed.
    A record without them (written before they were recorded) shows its bare names."""

    info: dict[tuple[str, Any], dict] = field(default_factory=dict)
    baseline: Any = None  # the imputer that leaves the data as it is, when the records have one

    @classmethod
    def of(cls, rows: list[dict]) -> Names:
        info: dict[tuple[str, Any], dict] = {}
        for row in rows:
            for name in NAMED_BY_PLUGINS:
                labels = row.get(f"{name}_labels")
                if isinstance(labels, dict) and row.get(name) is not None:
                    info.setdefault((name, row[name]), labels)
        identities = (value for (name, value), own in info.items() if name == "imputer" and own.get("identity"))
        return cls(info, next(identities, None))

    def label(self, name: str, value: Any) -> str:
        if name in NAMED_BY_PLUGINS:
            own = self.info.get((name, value), {})  # an imputer's column is its name unless it gives a label
            return str(own.get("label") or (own.get("title") if name == "method" else None) or value)
        return LABELS.get(name, {}).get(value, str(value))

    def title(self, name: str, value: Any) -> str:
        if name in NAMED_BY_PLUGINS:
            return str(self.info.get((name, value), {}).get("title") or value)
        return TITLES.get(name, {}).get(value, self.label(name, value))

    def rank(self, name: str, value: Any) -> tuple:
        if name == "stream":
            return (str(value).count("+"), str(value))
        if name in NAMED_BY_PLUGINS:
            own = self.info.get((name, value), {})
            return (own.get("order", math.inf), self.label(name, value))
        if name == "pretraining":
            return (0,) if value == SAME else (1, *self.rank("occlusion", value))
        if name == "occlusion":
            kind, severity = severity_of(value)
            order = ORDER["occlusion"]
            # a bare kind (its default parameters) before its levels; the levels by number, not text (0.05 < 0.1)
            return (order.index(kind) if kind in order else len(order), kind, severity is not None,
                    severity if severity is not None else 0.0, str(value))
        order = ORDER.get(name, ())
        return (order.index(value) if value in order else len(order), str(value))

    def identity(self, imputer: Any) -> bool:
        """Whether the imputer leaves the occluded data as it is (no imputation: the baseline)."""
        return bool(self.info.get(("imputer", imputer), {}).get("identity"))

    def headline(self, protocol: Any) -> bool:
        """Whether the protocol is the one the imputers and summary layouts show when none is chosen."""
        return bool(self.info.get(("protocol", protocol), {}).get("headline"))

    def imputed_titles(self, method: Any) -> dict:
        """{imputer: title} of a method that is another method on imputed data (OPSTL + KNN is IosPSTL)."""
        return self.info.get(("method", method), {}).get("imputed_titles") or {}


# ------------------------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Layout:
    context: tuple[str, ...]  # one table per value of these
    rows: tuple[str, ...]
    columns: tuple[str, str]  # (grouped header, sub-header)
    header: tuple[str, ...]  # the row-label columns
    shown: Callable[[dict, Names], bool] = lambda key, names: True
    # the cell a cell's change is against, given the cells with a result
    baseline: Callable[[dict, Names, Present], dict | None] = lambda key, names, present: None
    change_note: str = ""
    metric: str = "top1"  # the record field shown, times `scale`
    scale: float = 1.0
    heading: str = "Top-1 accuracy (%)"
    optional_header: tuple[str, ...] = ()  # row labels left out of a table where they have one value
    lower_is_better: bool = False  # which number of a column is its best (bold): the highest unless this
    best_within: tuple[str, ...] = ()  # row fields whose values each have their own best (Table IV: protocol)
    header_titles: tuple[tuple[str, str], ...] = ()  # (field, what its row-label column is headed) where not the name
    titled: tuple[str, ...] = ()  # row fields labelled by their plugin's title (no imputation) instead of the label


@dataclass(frozen=True)
class Present:
    """The cells that have a result: their KEY tuples, and the occlusions among them."""

    keys: frozenset[tuple]
    occlusions: tuple

    @classmethod
    def of(cls, keys: Iterable[tuple]) -> Present:
        keys = frozenset(keys)
        return cls(keys, tuple({key[KEY.index("occlusion")] for key in keys}))


def severity_of(occlusion: Any) -> tuple[str, float | None]:
    """(kind, severity) of an occlusion spec: ``random@0.3`` is ("random", 0.3), a bare kind has None. Only
    for ordering and grouping: a severity that is not a number orders as text."""
    kind, _, severity = str(occlusion).partition("@")
    try:
        return kind, float(severity) if severity else None
    except ValueError:
        return kind, None


def _against_none(key: dict, names: Names, present: Present) -> dict | None:
    return None if names.baseline is None or names.identity(key["imputer"]) else key | {"imputer": names.baseline}


def _against_lowest_level(key: dict, names: Names, present: Present) -> dict | None:
    """The lowest level of the same kind (``random@0.1`` for ``random@0.3``), all else equal; a bare kind
    is no level of a sweep."""
    kind, severity = severity_of(key["occlusion"])
    if severity is None:
        return None
    levels = [level for level in present.occlusions if severity_of(level)[0] == kind
              and severity_of(level)[1] is not None and _key_tuple(key | {"occlusion": level}) in present.keys]
    lowest = min(levels, key=lambda level: severity_of(level)[1], default=key["occlusion"])
    return None if lowest == key["occlusion"] else key | {"occlusion": lowest}


def _in_summary(key: dict, names: Names) -> bool:
    # Table I: every method without imputation, and a method that is another one on imputed data (OPSTL on
    # KNN-imputed data is IosPSTL) only as that one
    imputed = names.imputed_titles(key["method"])
    return key["imputer"] in imputed if imputed else names.identity(key["imputer"])


def _imputed(key: dict, names: Names) -> bool:
    return key["method"] is not None and not names.identity(key["imputer"])


LAYOUTS = {
    "imputers": Layout(("dataset", "occlusion", "pretraining", "protocol", "profile"), ("method", "stream"),
                       ("imputer", "split"), ("method", "stream"), baseline=_against_none,
                       change_note="change against no imputation (none) of the same method and split"),
    "protocols": Layout(("occlusion", "pretraining", "imputer", "profile"), ("protocol", "method", "stream"),
                        ("dataset", "split"), ("protocol", "method", "stream"), baseline=_against_none,
                        change_note="change against the same protocol on non-imputed data",
                        best_within=("protocol",)),
    "summary": Layout(("occlusion", "pretraining", "protocol", "profile"), ("method", "stream", "imputer"),
                      ("dataset", "split"), ("method", "stream"), shown=_in_summary),
    "quality": Layout(("occlusion", "pretraining", "profile"), ("imputer",), ("dataset", "split"), ("imputer",),
                      baseline=_against_none, change_note="change against leaving the zeros (none)",
                      metric="mpjpe", scale=1000.0, heading="MPJPE on the occluded joints of the test set (mm)",
                      lower_is_better=True),
    "severity": Layout(("dataset", "pretraining", "protocol", "profile"), ("method", "stream", "imputer"),
                       ("split", "occlusion"), ("method", "stream", "imputer"),
                       shown=lambda key, names: key["method"] is not None, baseline=_against_lowest_level,
                       change_note="change against the lowest level of the same occlusion kind (same method, "
                                   "imputer and split)", optional_header=("imputer",)),
    "stages": Layout(("occlusion", "pretraining", "protocol", "profile"), ("imputer", "method", "stream"),
                     ("dataset", "split"), ("imputer", "method", "stream"), shown=_imputed,
                     optional_header=("stream",),
                     header_titles=(("imputer", "stage 1 (imputer)"), ("method", "stage 2 (method)"))),
    "imputation": Layout(("method", "occlusion", "pretraining", "protocol", "profile"), ("imputer", "stream"),
                         ("dataset", "split"), ("imputer", "stream"),
                         shown=lambda key, names: key["method"] is not None,
                         baseline=_against_none, optional_header=("stream",), titled=("imputer",),
                         change_note="change against no imputation (none) of the same method and split"),
}
# the paper's table numbers, as `occbench run --suite tableN` names the grids
LAYOUT_ALIASES = {"table1": "summary", "table2": "imputers", "table3": "imputers", "table4": "protocols",
                  "table5": "stages", "table6": "imputation"}
T_LEVEL = 0.95  # of the changes' two-sided t intervals


# --------------------------------------------------------------------------------------------- model


@dataclass
class Stat:
    mean: float
    std: float | None
    seeds: int

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        """Mean, sample standard deviation (None for one value) and count of one cell's runs."""
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))


@dataclass
class Cell:
    stat: Stat | None = None
    change: float | None = None  # signed, against the layout's baseline cell: the mean per-seed difference
    interval: tuple[float, float] | None = None  # the change's t interval (T_LEVEL), with two pairs or more
    pairs: int | None = None  # seeds the change pairs (None: unseeded records, a difference of means)
    unpaired: int = 0  # runs of the two cells without a partner of the same seed, left out of the change
    change_abs: float | None = None  # published magnitude whose sign was lost (Table IV)
    paper: float | None = None
    occluded: list[float] = field(default_factory=list)  # measured fraction of hidden joint-frames, per run
    status: str | None = None  # "failed" or "submitted" (its seeds' status notes), when it has no result
    notes: list[dict] = field(default_factory=list)  # the status notes of its seeds without a result
    best: bool = False  # the best number of its column (`_mark_best`)

    @property
    def distinct(self) -> bool:
        """Whether the change's interval excludes 0: more than the seeds' noise."""
        return self.interval is not None and (self.interval[0] > 0 or self.interval[1] < 0)


@dataclass
class Table:
    layout: str
    context: dict
    row_keys: list[dict]
    col_keys: list[dict]
    cells: list[list[Cell]]
    published_only: bool = False
    compare: bool = False
    citations: list[str] = field(default_factory=list)
    names: Names = field(default_factory=Names)
    header: tuple[str, ...] = ()  # the row-label columns (the layout's, less one-valued optional ones)
    change_note: str = ""
    reference: Any = None  # the method every change is against (--reference), if chosen
    bold: bool = True  # whether markdown and LaTeX show the best of each column in bold


# -------------------------------------------------------------------------------------------- render


def render(frame: Any, layout: str = "imputers", fmt: str = "markdown", compare: str | None = None,
           reference: str | None = None, bold: bool = True, resizebox: str | None = None, label: str | None = None,
           against: Any = None, against_name: str = "the other results", **filters: str | None) -> str:
    """The tables of `layout` for the records in `frame` (a DataFrame from `records_frame`, flat rows, or
    records), as text in `fmt`. `compare="paper"` puts the published number beside each of ours;
    `reference` (a method) makes every change one against that method on the same data; `against` (records
    of another run of the same grid: another profile setting, pipeline or revision, named `against_name`)
    makes every change one against the same cell there, paired by seed; `bold` shows the
    best number of each column in bold (markdown and LaTeX; csv and json always carry a `best` field);
    for LaTeX, `resizebox` (a width: ``\\columnwidth``, ``0.9\\textwidth``, ``8.5cm``) scales each tabular
    to that width and `label` gives each table a ``\\label`` (``label-1``, ``label-2``... when there are
    several); `filters` (dataset, split, protocol, imputer, occlusion, pretrain_occlusion, method,
    profile) keep matching records only."""
    layout = LAYOUT_ALIASES.get(layout, layout)
    _check_options(layout, fmt, compare, filters)
    resizebox = _latex_options(fmt, resizebox, label)
    filters = {name: value for name, value in filters.items() if value is not None}
    rows = _as_rows(frame)
    if not rows:
        raise OccbenchError("no result records to tabulate")
    paper = [row for row in rows if row.get("source") == "paper"]
    ours = [row for row in rows if row.get("source") != "paper"]
    if compare and not paper:
        raise OccbenchError(f"--compare paper: no published records among the results (occbench ships them in "
                            f"{paths.PUBLISHED})")
    # With nothing of ours that the filters keep, the published numbers are the table (e.g. `--dataset
    # ntu60` after a run on the embedded dataset); otherwise they only appear beside ours.
    if paper and not _any_match(ours, filters) and _any_match(paper, filters):
        ours = []
    other = None
    if against is not None:
        if reference is not None:
            raise OccbenchError("--against and --reference: a change is against one thing; choose one of them")
        other = [row for row in _as_rows(against) if row.get("source") != "paper"]
        theirs = {name: value for name, value in filters.items() if name != "profile"}
        if _any_match(ours, filters) and not _any_match(other, theirs):
            raise OccbenchError(f"--against {against_name}: no results of ours there{_describe(filters)} to compare "
                                "with; point it at the --results folder of another run")
    tables = build_tables(ours or paper, paper, layout, filters, compare=bool(compare and ours),
                          published_only=not ours, reference=reference, against=other, against_name=against_name)
    for table in tables:
        table.bold = bold
    if fmt == "latex":
        return to_latex(tables, resizebox=resizebox, label=label)
    return FORMATTERS[fmt](tables)


def _check_options(layout: str, fmt: str, compare: str | None, filters: dict) -> None:
    if layout not in LAYOUTS:
        raise OccbenchError(f"unknown layout {layout!r}; choose from {', '.join([*LAYOUTS, *LAYOUT_ALIASES])}")
    if fmt not in FORMATTERS:
        raise OccbenchError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if compare not in (None, "paper"):
        raise OccbenchError(f"unknown comparison {compare!r}; the one available is 'paper'")
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise OccbenchError(f"unknown filter {unknown[0]!r}; filters: {', '.join(FILTERS)}")


# A width \resizebox takes: a multiple of the column, text or line width, or a length with a unit. The
# backslash is optional because an unquoted `--resizebox \textwidth` reaches us without it.
LATEX_WIDTH = re.compile(r"(?:(\d*\.?\d+)?\\?(columnwidth|textwidth|linewidth)|\d*\.?\d+(?:pt|bp|mm|cm|in|pc|em|ex))")
LATEX_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._+/-]*")


def _latex_options(fmt: str, resizebox: str | None, label: str | None) -> str | None:
    """Check the LaTeX-only options; the \\resizebox width with its backslash (None: no \\resizebox)."""
    given = [name for name, value in (("--resizebox", resizebox), ("--label", label)) if value is not None]
    if given and fmt != "latex":
        raise OccbenchError(f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} only to LaTeX tables: "
                            f"add --format latex or leave {'them' if len(given) > 1 else 'it'} out")
    if label is not None and not LATEX_LABEL.fullmatch(label):
        raise OccbenchError(f"--label {label!r}: use letters, digits and : . _ + / - only (e.g. tab:occluded)")
    if resizebox is None:
        return None
    width = LATEX_WIDTH.fullmatch(resizebox.strip())
    if width is None:
        raise OccbenchError(f"--resizebox {resizebox!r} is not a LaTeX width: give e.g. \\columnwidth, "
                            "0.9\\textwidth or 8.5cm")
    factor, name = width.groups()
    return f"{factor or ''}\\{name}" if name else resizebox.strip()


def _as_rows(frame: Any) -> list[dict]:
    """Flat dict rows from a DataFrame, flat rows or records, with pandas' missing values made None and
    the pretraining occlusion filled in (`pretraining`: SAME or the other occlusion)."""
    if hasattr(frame, "to_dict"):
        rows = frame.to_dict("records")
    else:
        rows = list(frame)
        if rows and "cell" in rows[0]:
            rows = flat_rows(rows)
    rows = [{name: _plain(value) for name, value in row.items()} for row in rows]
    for row in rows:
        if row.get("pretrain_occlusion") is None:  # a record from before the field: pretrained as evaluated
            row["pretrain_occlusion"] = row.get("occlusion")
        row["pretraining"] = SAME if row["pretrain_occlusion"] == row.get("occlusion") else row["pretrain_occlusion"]
    return rows


def _plain(value: Any) -> Any:
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def build_tables(rows: list[dict], paper: list[dict], layout: str, filters: dict, compare: bool = False,
                 published_only: bool = False, reference: str | None = None, against: list[dict] | None = None,
                 against_name: str = "the other results") -> list[Table]:
    """The tables of one layout: one per combination of the layout's context fields that has results.
    Changes are against the layout's baseline cell, the `reference` method's, or the same cell among the
    rows `against` (another run of the grid)."""
    spec = LAYOUTS[layout]
    names = Names.of([*rows, *paper])
    kept = {name: value for name, value in filters.items() if name != "imputer"}
    latest = latest_per_seed(_filtered(rows, kept))
    runs = _runs(latest, spec.metric, spec.scale)
    statuses = _statuses(latest)
    base_runs, baseline, change_note = runs, spec.baseline, spec.change_note
    if reference is not None:
        baseline, change_note = _against_reference(reference, layout, runs, names)
    if against is not None:
        base_runs, baseline, change_note = _against_run(against, against_name, kept, spec, latest)
    # The imputer filter picks the cells shown; the non-imputed baselines stay available for the changes.
    shown = [key for key in map(_key_dict, dict.fromkeys([*runs.values, *statuses])) if spec.shown(key, names)
             and str(key["imputer"]) == str(filters.get("imputer", key["imputer"]))]
    if not shown:
        raise OccbenchError(f"no {layout} table in these results{_describe(filters)}")
    present = Present.of(runs.values)
    published = _paper_lookup(paper)

    def cell_of(key: dict) -> Cell:
        return _cell(key, runs, published if compare else {}, statuses, baseline(key, names, present), base_runs)

    tables = []
    for context in _contexts(spec, shown, filters, names):
        keys = [key for key in shown if all(key[name] == value for name, value in context.items())]
        if keys:
            table = _table(layout, context, keys, cell_of, names)
            table.published_only, table.compare = published_only, compare
            table.change_note, table.reference = change_note, reference
            table.citations = _citations(keys, published) if published_only or compare else []
            tables.append(table)
    return tables


def _against_reference(reference: str, layout: str, runs: Runs, names: Names) -> tuple[Callable, str]:
    """The baseline of `--reference METHOD`: that method on the same data (imputer, dataset, split,
    occlusion, pretraining) and protocol; in the same stream when it has it, else in its only one."""
    if layout == "quality":
        raise OccbenchError("--reference compares methods, and the quality layout has none: leave it out there")
    streams: dict[Any, set] = {}
    for key in map(_key_dict, runs.values):
        streams.setdefault(key["method"], set()).add(key["stream"])
    if reference not in streams:
        present = ", ".join(sorted(str(method) for method in streams if method is not None))
        raise OccbenchError(f"--reference {reference}: no results of that method; methods present: {present}")

    def against(key: dict, names: Names, present: Present) -> dict | None:
        if key["method"] == reference:
            return None
        own = streams[reference]
        stream = key["stream"] if key["stream"] in own else (next(iter(own)) if len(own) == 1 else None)
        return None if stream is None else key | {"method": reference, "stream": stream}

    title = names.label("method", reference)
    return against, f"change against {title} on the same data and protocol"


def _against_run(against: list[dict], name: str, filters: dict, spec: Layout,
                 ours: list[dict]) -> tuple[Runs, Callable, str]:
    """The baseline of `--against DIR`: the same cell among another run's rows. The profile is left out of
    the pairing, since a run with --cfg-options records its profile with them ("quick (data.pipeline=...)"),
    as long as each cell there has one."""
    rows = latest_per_seed(_filtered(against, {field: value for field, value in filters.items() if field != "profile"}))
    profiles: dict[tuple, set] = {}
    for row in rows:
        profiles.setdefault(tuple(row.get(field) for field in KEY if field != "profile"), set()).add(row.get("profile"))
    several = next((found for found in profiles.values() if len(found) > 1), None)
    if several:
        raise OccbenchError(f"--against {name}: its records hold the same cell under several profiles "
                            f"({', '.join(sorted(map(str, several)))}); give it the results folder of one run")
    runs = _runs([row | {"profile": AGAINST} for row in rows], spec.metric, spec.scale)
    theirs = sorted({str(row.get("profile")) for row in rows})
    note = f"change against the same cell in {name}"
    if set(theirs) != {str(row.get("profile")) for row in ours}:
        note += f" (profile {', '.join(theirs)})"
    return runs, lambda key, names, present: key | {"profile": AGAINST}, note


def _any_match(rows: list[dict], filters: dict) -> bool:
    """Whether some row passes every filter but the imputer (which `build_tables` applies to cells)."""
    return any(all(str(row.get(name)) == str(value) for name, value in filters.items() if name != "imputer")
               for row in rows)


def _filtered(rows: list[dict], filters: dict) -> list[dict]:
    for name, value in filters.items():
        present = sorted({str(row.get(name)) for row in rows})
        rows = [row for row in rows if str(row.get(name)) == str(value)]
        if not rows:
            raise OccbenchError(f"no results with {name} {value!r}; present: {', '.join(present)}")
    return rows


def _describe(filters: dict) -> str:
    return "".join(f", {name} {value}" for name, value in filters.items())


def latest_per_seed(rows: list[dict], fields: tuple[str, ...] = KEY) -> list[dict]:
    """One run per cell (its `fields`) and seed: a re-run (or a copy of the folder) must not count a seed
    twice. Runs without a seed are each their own."""
    latest: dict[tuple, dict] = {}
    for index, row in enumerate(rows):
        seed = row.get("seed")
        slot = (*(row.get(name) for name in fields), seed if seed is not None else f"unseeded-{index}")
        if slot not in latest or str(row.get("finished") or "") >= str(latest[slot].get("finished") or ""):
            latest[slot] = row
    return list(latest.values())


def _statuses(rows: list[dict]) -> dict[tuple, list[dict]]:
    """The status notes (failed, submitted) per cell: seeds that have no result."""
    found: dict[tuple, list[dict]] = {}
    for row in rows:
        if row.get("status"):
            found.setdefault(tuple(row.get(name) for name in KEY), []).append(row)
    return found


@dataclass
class Runs:
    """The results per cell (a KEY tuple): every run's metric (times the layout's scale), the seeded ones
    by seed (for pairing), the measured occluded fractions and any published |change|."""

    values: dict[tuple, list[float]] = field(default_factory=dict)
    by_seed: dict[tuple, dict[int, float]] = field(default_factory=dict)
    occluded: dict[tuple, list[float]] = field(default_factory=dict)
    changes_abs: dict[tuple, float] = field(default_factory=dict)

    def stat(self, key: tuple) -> Stat | None:
        values = self.values.get(key)
        return Stat.of(values) if values else None


def _runs(rows: list[dict], metric: str = "top1", scale: float = 1.0) -> Runs:
    runs = Runs()
    for row in rows:
        key = tuple(row.get(name) for name in KEY)
        if row.get(metric) is not None:
            value = float(row[metric]) * scale
            runs.values.setdefault(key, []).append(value)
            if row.get("seed") is not None:
                runs.by_seed.setdefault(key, {})[row["seed"]] = value
            if row.get("occluded") is not None:
                runs.occluded.setdefault(key, []).append(float(row["occluded"]))
        if row.get("top1_change_abs") is not None:
            runs.changes_abs[key] = float(row["top1_change_abs"])
    return runs


def _key_dict(key: tuple) -> dict:
    return dict(zip(KEY, key, strict=True))


def _key_tuple(key: dict) -> tuple:
    return tuple(key[name] for name in KEY)


def _paper_key(key: dict) -> tuple:
    # Matched on everything but the profile: the paper's own training is what the `paper` profile reproduces.
    return tuple(key.get(name) for name in KEY if name != "profile")


def _paper_lookup(paper: list[dict]) -> dict[tuple, tuple[float, str | None]]:
    """Published top-1 and its citation per cell."""
    return {_paper_key(row): (float(row["top1"]), row.get("citation")) for row in paper if row.get("top1") is not None}


def _contexts(spec: Layout, shown: list[dict], filters: dict, names: Names) -> list[dict]:
    choices = [_context_values(name, {key[name] for key in shown}, filters, names) for name in spec.context]
    return [dict(zip(spec.context, values, strict=True)) for values in product(*choices)]


def _context_values(name: str, present: set, filters: dict, names: Names) -> list:
    """Which values of a context field get a table when the user did not choose one."""
    if name in filters:
        return [value for value in present if str(value) == str(filters[name])]
    if name == "occlusion" and present - {"none"}:
        present = present - {"none"}  # nothing to impute on clean data
    if name == "imputer" and {value for value in present if not names.identity(value)}:
        present = {value for value in present if not names.identity(value)}  # in protocols, the baseline
    if name == "protocol" and {value for value in present if names.headline(value)}:
        present = {value for value in present if names.headline(value)}  # the paper's main tables': linear
    return sorted(present, key=lambda value: names.rank(name, value))


def _table(layout: str, context: dict, keys: list[dict], cell_of: Callable[[dict], Cell], names: Names) -> Table:
    spec = LAYOUTS[layout]
    row_keys = _distinct(keys, spec.rows, names)
    col_keys = _distinct(keys, spec.columns, names)
    # fields the layout does not lay out are the same in all its records (quality: no method, no protocol)
    fixed = {name: keys[0][name] for name in KEY if name not in (*spec.context, *spec.rows, *spec.columns)}
    grid = [[cell_of(fixed | context | row | col) for col in col_keys] for row in row_keys]
    header = tuple(name for name in spec.header
                   if name not in spec.optional_header or len({key[name] for key in row_keys}) > 1)
    table = Table(layout, context, row_keys, col_keys, grid, names=names, header=header)
    _mark_best(table)
    return table


def _mark_best(table: Table) -> None:
    """Mark the best number of each column, as the paper's tables bold it: the highest (the lowest where
    lower is better), within each value of the layout's `best_within` fields (one protocol of Table IV
    is no rival of another). Numbers compare as printed (two decimals), so ties are all best; a column
    with one number beats nothing and has no best. Only the table's own numbers compete: the published
    ones that --compare shows beside them are the reference, not a rival."""
    spec = LAYOUTS[table.layout]
    for index in range(len(table.col_keys)):
        blocks: dict[tuple, list[Cell]] = {}
        for row_key, row in zip(table.row_keys, table.cells, strict=True):
            if row[index].stat is not None:
                blocks.setdefault(tuple(row_key[name] for name in spec.best_within), []).append(row[index])
        for cells in blocks.values():
            if len(cells) < 2:
                continue
            printed = [round(cell.stat.mean, 2) for cell in cells]
            best = min(printed) if spec.lower_is_better else max(printed)
            for cell, value in zip(cells, printed, strict=True):
                cell.best = value == best


def _distinct(keys: list[dict], fields: tuple[str, ...], names: Names) -> list[dict]:
    unique = {tuple(key[name] for name in fields) for key in keys}
    ordered = sorted(unique, key=lambda values: [names.rank(*pair) for pair in zip(fields, values, strict=True)])
    return [dict(zip(fields, values, strict=True)) for values in ordered]


def _cell(key: dict, runs: Runs, published: dict, statuses: dict, baseline: dict | None, base_runs: Runs) -> Cell:
    as_tuple = _key_tuple(key)
    cell = Cell(runs.stat(as_tuple), change_abs=runs.changes_abs.get(as_tuple), notes=statuses.get(as_tuple, []))
    cell.occluded = runs.occluded.get(as_tuple, [])
    if cell.stat is None and cell.notes:
        cell.status = "failed" if any(note["status"] == "failed" for note in cell.notes) else "submitted"
    cell.paper = published.get(_paper_key(key), (None, None))[0]
    if cell.stat and baseline:
        _pair(cell, runs, as_tuple, base_runs, _key_tuple(baseline))
    return cell


def _pair(cell: Cell, runs: Runs, key: tuple, base_runs: Runs, base: tuple) -> None:
    """The cell's change against the cell `base` of `base_runs`: the mean of the per-seed differences over
    the seeds both have, with its t interval from two pairs on. Unseeded records (the published numbers)
    can only be compared by their means."""
    base_stat = base_runs.stat(base)
    if base_stat is None:
        return
    own, other = runs.by_seed.get(key, {}), base_runs.by_seed.get(base, {})
    if not own and not other:
        cell.change = cell.stat.mean - base_stat.mean
        return
    seeds = sorted(own.keys() & other.keys())
    cell.unpaired = cell.stat.seeds + base_stat.seeds - 2 * len(seeds)
    if not seeds:
        return
    differences = [own[seed] - other[seed] for seed in seeds]
    cell.change, cell.pairs = statistics.fmean(differences), len(differences)
    if len(differences) > 1:
        half = t_critical(len(differences) - 1, T_LEVEL) * statistics.stdev(differences) / math.sqrt(len(differences))
        cell.interval = (cell.change - half, cell.change + half)


def t_critical(df: int, level: float = T_LEVEL) -> float:
    """The t with P(|T| <= t) = `level` for Student's t with `df` (a whole number) degrees of freedom: the
    half-width of a two-sided interval in standard errors (df 2, 95%: 4.303).

    For whole df, P(|T| <= t) has a closed form in theta = atan(t / sqrt(df)) (Abramowitz and Stegun
    26.7.3-4), increasing in theta on [0, pi/2), so bisection on theta finds it to float precision
    without scipy (which would put numpy into `occbench table`'s start)."""
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise OccbenchError(f"t quantile: degrees of freedom {df!r}, expected a whole number >= 1")
    if not 0 < level < 1:
        raise OccbenchError(f"t quantile: level {level!r}, expected a probability between 0 and 1")
    low, high = 0.0, math.pi / 2
    for _ in range(200):
        middle = (low + high) / 2
        if _within(middle, df) < level:
            low = middle
        else:
            high = middle
        if high - low < 1e-15:
            break
    return math.sqrt(df) * math.tan((low + high) / 2)


def _within(theta: float, df: int) -> float:
    """P(|T| <= sqrt(df) tan(theta)) for whole `df`."""
    cos2 = math.cos(theta) ** 2
    if df % 2 == 0:  # sin(theta) (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ... up to cos^(df-2))
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        return math.sin(theta) * total
    # (2/pi) (theta + sin(theta) cos(theta) (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ... up to cos^(df-3)))
    term, total = 1.0, 1.0 if df > 1 else 0.0
    for k in range(1, (df - 1) // 2):
        term *= cos2 * (2 * k) / (2 * k + 1)
        total += term
    return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def _citations(keys: list[dict], published: dict) -> list[str]:
    """The sources of the published numbers a table shows, in order of first use."""
    found = (published.get(_paper_key(key), (None, None))[1] for key in keys)
    return list(dict.fromkeys(citation for citation in found if citation))


# ------------------------------------------------------------------------------------- text of cells


@dataclass(frozen=True)
class Style:
    up: str
    down: str
    pm: str
    minus: str
    delta: str
    missing: str
    dash: str  # for ranges
    sep: str  # between the parts of a title
    escape: Callable[[str], str]
    bold: Callable[[str], str]


def _latex_escape(text: str) -> str:
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    text = "".join(special.get(ch, ch) for ch in text)
    return re.sub(r'"([^"]*)"', r"``\1''", text)  # typographic quotes; a straight " prints as a closing one


MARKDOWN = Style("↑", "↓", "±", "-", "Δ", "–", "–", " · ", lambda text: text.replace("|", "/"),
                 lambda text: f"**{text}**")
LATEX = Style(r"$\uparrow$", r"$\downarrow$", r"$\pm$", "$-$", r"$\Delta$", "--", "--", ", ", _latex_escape,
              lambda text: rf"\textbf{{{text}}}")


MARK = "*"  # after a change whose interval excludes 0: plain in markdown (one per cell), LaTeX, csv and json


def cell_text(cell: Cell, style: Style, compare: bool = False, bold: bool = False) -> str:
    """``57.61 (+0.87 ↑)``, ``56.74 ± 0.30``, ``58.61 ± 0.20 (+1.87* ↑)`` (interval excludes 0),
    ``70.58 (Δ 3.22)``, and ``ours / paper`` when comparing; with `bold`, the number of the best cell of
    its column (mean and standard deviation, not its change nor the published number) is in bold."""
    text = _value_text(cell, style, bold and cell.best)
    if compare:
        text += " / " + (f"{cell.paper:.2f}" if cell.paper is not None else style.missing)
    return text


def _value_text(cell: Cell, style: Style, bold: bool = False) -> str:
    if cell.stat is None:
        return {"failed": "failed", "submitted": "pending"}.get(cell.status, style.missing)
    text = f"{cell.stat.mean:.2f}"
    if cell.stat.std is not None:
        text += f" {style.pm} {cell.stat.std:.2f}"
    if bold:
        text = style.bold(text)
    if cell.change is not None:
        text += f" ({_signed(cell.change, style, MARK if cell.distinct else '')})"
    elif cell.change_abs is not None:
        text += f" ({style.delta} {cell.change_abs:.2f})"
    return text


def _signed(change: float, style: Style, mark: str = "") -> str:
    change = round(change, 2)
    if change == 0:
        return f"0.00{mark}"
    arrow = style.up if change > 0 else style.down
    return f"{'+' if change > 0 else style.minus}{abs(change):.2f}{mark} {arrow}"


def row_labels(table: Table) -> list[list[str]]:
    """The row-label columns: the paper's names (2s-CrosSCLR for two streams, IosPSTL in the summary)."""
    header = table.header
    labels = []
    titled = LAYOUTS[table.layout].titled
    for key in table.row_keys:
        names = {name: (table.names.title if name in titled else table.names.label)(name, key[name])
                 for name in header}
        if "method" in header:
            names["method"] = _method_label(key, table)
        labels.append([names[name] for name in header])
    return labels


def _method_label(key: dict, table: Table) -> str:
    if table.layout == "summary" and key["imputer"] in table.names.imputed_titles(key["method"]):
        return table.names.imputed_titles(key["method"])[key["imputer"]]
    streams = str(key["stream"]).count("+") + 1
    return (f"{streams}s-" if streams > 1 else "") + table.names.label("method", key["method"])


def title(table: Table, style: Style) -> str:
    parts = [LAYOUTS[table.layout].heading]
    context = table.context
    for name, value in context.items():
        if name == "profile" and value == "paper":
            continue
        if name == "pretraining":
            if value != SAME and "occlusion" not in context:  # severity: the levels are the columns
                parts.append(f"pretrained on {_occlusion_title(table.names, value)}")
            continue
        text = table.names.title(name, value)
        if name == "occlusion":
            text = _occlusion_title(table.names, value, _hidden(cell for row in table.cells for cell in row))
            if context.get("pretraining", SAME) != SAME:
                text = f"pretrained on {_occlusion_title(table.names, context['pretraining'])}, evaluated on {text}"
            parts.append(text)
        elif name == "imputer" and table.names.identity(value):
            parts.append(text)  # "no imputation"
        else:
            parts.append({"imputer": f"{text} imputation", "profile": f"profile {text}"}.get(name, text))
    if table.published_only:
        parts.append("published numbers")
    return style.escape(style.sep.join(parts))


def _occlusion_title(names: Names, value: Any, hidden: float | None = None) -> str:
    """``no occlusion``, ``realistic occlusion``, ``random@0.3 occlusion (30.0% hidden)``."""
    text = names.title("occlusion", value) + ("" if value == "none" else " occlusion")
    return text + _hidden_text(value, hidden)


def _hidden_text(value: Any, hidden: float | None) -> str:
    return "" if hidden is None or value == "none" else f" ({100 * hidden:.1f}% hidden)"


def _hidden(cells: Iterable[Cell]) -> float | None:
    """The measured fraction of hidden joint-frames, mean over the runs of `cells` (None if unmeasured)."""
    runs = [value for cell in cells for value in cell.occluded]
    return statistics.fmean(runs) if runs else None


def notes(table: Table, style: Style) -> list[str]:
    """The sentences under a table: what the numbers are averaged over and what the brackets mean."""
    lines = [] if table.published_only else [_seeds_note(table, style)]
    cells = [cell for row in table.cells for cell in row]
    if any(cell.change is not None for cell in cells):
        lines.append(f"({style.up}/{style.down}): " + style.escape(_change_note(table, cells)))
    if any(cell.change_abs is not None and cell.change is None for cell in cells):
        lines.append(f"({style.delta} x): size of the published change against non-imputed data; "
                     "its sign was lost in the text.")
    if table.compare:
        lines.append(f"Each cell: ours / published; {style.missing} where there is no number.")
    if table.bold and any(cell.best for cell in cells):
        lines.append(style.escape(_best_note(table)))
    lines += [style.escape(line) for line in _status_lines(table)]
    lines += [style.escape(f"Published: {citation}.") for citation in table.citations]
    return lines


def _best_note(table: Table) -> str:
    spec = LAYOUTS[table.layout]
    text = f"Bold: the {'lowest' if spec.lower_is_better else 'highest'} of each column"
    if spec.best_within:
        text += f" within each {' and '.join(spec.best_within)}"
    if table.compare:
        text += " among ours (the published numbers do not compete)"
    return text + ", ties included."


def _change_note(table: Table, cells: list[Cell]) -> str:
    """What a change is against, how seeds pair, which interval the mark stands for, and what was left out."""
    text = f"{table.change_note}."
    if any(cell.pairs for cell in cells):
        text += " Runs pair by seed: a change is the mean of the per-seed differences."
    pairs = sorted(cell.pairs for cell in cells if cell.interval is not None)
    if pairs:
        counts = f"{pairs[0]}" if pairs[0] == pairs[-1] else f"{pairs[0]}-{pairs[-1]}"
        text += (f" {MARK}: its two-sided {100 * T_LEVEL:g}% t interval (df = pairs - 1, over {counts} pairs) "
                 "excludes 0.")
        if any(cell.pairs == 1 for cell in cells):
            text += " A change over one pair has no interval."
    unpaired = [cell.unpaired for cell in cells if cell.unpaired]
    if unpaired:
        text += (f" Seeds present on one side only are left out of the pairing ({_count(sum(unpaired), 'run')} "
                 f"in {_count(len(unpaired), 'cell')}).")
    return text


def _status_lines(table: Table) -> list[str]:
    """One line per seed of a cell that has no result: why it failed, or that it waits in Slurm, and its log."""
    lines = []
    for labels, row in zip(row_labels(table), table.cells, strict=True):
        for column, cell in zip(_column_titles(table, " "), row, strict=True):
            for note in cell.notes:
                what = "failed" if note["status"] == "failed" else "pending"
                log = f" (log: {note['log']})" if note.get("log") else ""
                lines.append(f"{what}: {' '.join(labels)}, {column}, seed {note.get('seed')}: {note.get('error')}{log}")
    return lines


def _seeds_note(table: Table, style: Style) -> str:
    seeds = [cell.stat.seeds for row in table.cells for cell in row if cell.stat]
    if not seeds:
        return "No cell has a result yet."
    low, high = min(seeds), max(seeds)
    if high == 1:
        return "One run per cell."
    runs = f"{high}" if low == high else f"{low}{style.dash}{high}"
    return f"Mean {style.pm} standard deviation over {runs} seeds per cell."


# ------------------------------------------------------------------------------------------- formats


def to_markdown(tables: list[Table]) -> str:
    from tabulate import tabulate  # small, but only needed here

    blocks = []
    for table in tables:
        header = [*_header_names(table), *_column_titles(table, " ")]
        body = [labels + [cell_text(cell, MARKDOWN, table.compare, table.bold) for cell in row]
                for labels, row in zip(_blank_repeats(row_labels(table)), table.cells, strict=True)]
        align = ["left"] * len(table.header) + ["right"] * len(table.col_keys)
        grid = tabulate(body, headers=header, tablefmt="github", disable_numparse=True, colalign=align)
        blocks.append("\n\n".join([f"**{title(table, MARKDOWN)}**", grid, "\n".join(notes(table, MARKDOWN))]))
    return "\n\n".join(blocks)


def _header_names(table: Table) -> list[str]:
    """What each row-label column is headed: its field's name, or what the layout calls it (Table V: stage 1)."""
    titles = dict(LAYOUTS[table.layout].header_titles)
    return [titles.get(name, name) for name in table.header]


def _column_titles(table: Table, joiner: str) -> list[str]:
    return [f"{group}{joiner}{sub}" for group, sub in _column_labels(table)]


def _column_labels(table: Table) -> list[tuple[str, str]]:
    """(group, sub-column) label of each column; an occlusion level with its measured hidden fraction."""
    group, sub = LAYOUTS[table.layout].columns
    labels = []
    for index, key in enumerate(table.col_keys):
        text = table.names.label(sub, key[sub])
        if sub == "occlusion":
            text += _hidden_text(key[sub], _hidden(row[index] for row in table.cells))
        labels.append((table.names.label(group, key[group]), text))
    return labels


def _blank_repeats(labels: list[list[str]]) -> list[list[str]]:
    """Show a leading label (the protocol of Table IV) only where it changes, as the paper does."""
    if len(labels[0]) < 3:
        return labels
    return [([""] if i and label[0] == labels[i - 1][0] else label[:1]) + label[1:] for i, label in enumerate(labels)]


def to_latex(tables: list[Table], resizebox: str | None = None, label: str | None = None) -> str:
    """Each table a `table` float with its title and notes as caption; `label`: ``\\label{label}``, or
    ``label-1``, ``label-2``... when there are several, so that every label stays unique; `resizebox`: the
    width (a LaTeX length) each tabular is scaled to."""
    labels = [label] * len(tables)
    if label is not None and len(tables) > 1:
        labels = [f"{label}-{number}" for number in range(1, len(tables) + 1)]
    return "\n\n".join(_latex_table(table, resizebox, name) for table, name in zip(tables, labels, strict=True))


def _latex_table(table: Table, resizebox: str | None = None, label: str | None = None) -> str:
    header = table.header
    caption = " ".join([title(table, LATEX) + "."] + notes(table, LATEX))
    lines = [r"\begin{table}[htbp]", r"\centering", rf"\caption{{{caption}}}"]
    if label is not None:
        lines.append(rf"\label{{{label}}}")
    if resizebox is not None:  # `%`: no space from the line end inside the box
        lines.append(rf"\resizebox{{{resizebox}}}{{!}}{{%")
    lines += [rf"\begin{{tabular}}{{{'l' * len(header)}{'c' * len(table.col_keys)}}}", r"\toprule",
              *_latex_header(table, len(header)), r"\midrule"]
    labels = row_labels(table)
    for i, (names, row) in enumerate(zip(_blank_repeats(labels), table.cells, strict=True)):
        if i and len(header) > 2 and labels[i][0] != labels[i - 1][0]:
            lines.append(r"\midrule")
        texts = [_latex_escape(text) for text in names] + [cell_text(cell, LATEX, table.compare, table.bold)
                                                            for cell in row]
        lines.append(" & ".join(texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if resizebox is not None:
        lines.append("}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


def _latex_header(table: Table, label_columns: int) -> list[str]:
    """Two header rows: the grouped columns as multicolumns with cmidrules under them, then the sub-columns."""
    group, sub = LAYOUTS[table.layout].columns
    spans: list[list] = []  # [label, width] of consecutive columns sharing a group value
    for key in table.col_keys:
        if spans and spans[-1][0] == key[group]:
            spans[-1][1] += 1
        else:
            spans.append([key[group], 1])
    tops, rules, start = [""] * label_columns, [], label_columns + 1
    for value, width in spans:
        tops.append(rf"\multicolumn{{{width}}}{{c}}{{{_latex_escape(table.names.label(group, value))}}}")
        rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
        start += width
    names = [*_header_names(table), *(label for _, label in _column_labels(table))]
    return [" & ".join(tops) + r" \\", " ".join(rules), " & ".join(map(_latex_escape, names)) + r" \\"]


def tidy(tables: list[Table]) -> list[dict]:
    """One dict per shown cell: what it is (context, row and column fields) and its numbers, unrounded."""
    records = []
    for table in tables:
        for row_key, row in zip(table.row_keys, table.cells, strict=True):
            for col_key, cell in zip(table.col_keys, row, strict=True):
                if cell.stat is None and cell.paper is None and not cell.notes:
                    continue
                key = table.context | row_key | col_key
                pretraining = key.pop("pretraining")
                key["pretrain_occlusion"] = key["occlusion"] if pretraining == SAME else pretraining
                records.append({"layout": table.layout} | key | _numbers(cell, table))
    return records


def _numbers(cell: Cell, table: Table) -> dict:
    stat = cell.stat
    metric = LAYOUTS[table.layout].metric  # quality: mpjpe, in the table's unit (mm)
    numbers = {metric: _round(stat and stat.mean), f"{metric}_std": _round(stat and stat.std),
               "seeds": stat.seeds if stat else 0, "best": cell.best, "change": _round(cell.change),
               # the change's t interval (T_LEVEL, df = pairs - 1) and whether it excludes 0
               "change_low": _round(cell.interval and cell.interval[0]),
               "change_high": _round(cell.interval and cell.interval[1]), "pairs": cell.pairs,
               "unpaired": cell.unpaired, "distinct": cell.distinct if cell.interval else None,
               "change_abs": cell.change_abs, "occluded": _round(_hidden([cell]))}
    if table.reference is not None:
        numbers["reference"] = table.reference
    if table.compare:
        numbers[f"paper_{metric}"] = cell.paper
    numbers["source"] = "paper" if table.published_only else "occbench"
    numbers["status"] = cell.status  # failed or submitted: no result yet (the notes under the table say why)
    return numbers


def _round(value: float | None) -> float | None:
    # Differences of two-decimal numbers carry float noise (57.61 - 56.74 = 0.869999...).
    return None if value is None else round(value, 6)


def to_csv(tables: list[Table]) -> str:
    records = tidy(tables)
    columns = list(dict.fromkeys(name for record in records for name in record))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().rstrip("\n")


def to_json(tables: list[Table]) -> str:
    return json.dumps(tidy(tables), indent=2, ensure_ascii=False)


FORMATTERS: dict[str, Callable[[list[Table]], str]] = {
    "markdown": to_markdown, "latex": to_latex, "csv": to_csv, "json": to_json,
}


# ----------------------------------------------------------------------------------------------- CLI


def add_table_command(subparsers) -> None:
    """Register ``occbench table`` on the CLI's subparsers."""
    p = subparsers.add_parser("table", help="result tables: imputers (Tables II/III), protocols (IV), summary (I), "
                                            "stages (V), imputation (VI), quality (imputation error), severity "
                                            "(accuracy per occlusion level)",
                              description="With several seeds a cell shows mean ± standard deviation, and a change "
                                          "is the mean of the per-seed differences (runs paired by seed), marked * "
                                          "where its two-sided 95% t interval excludes 0.")
    p.add_argument("--results", type=Path, default=paths.DEFAULT_RESULTS,
                   help=f"folder of result records, read recursively (default: {paths.DEFAULT_RESULTS}/, where "
                        "`occbench run` writes them); the published numbers ship with occbench")
    p.add_argument("--layout", choices=[*LAYOUTS, *LAYOUT_ALIASES], default="imputers",
                   help="default imputers; severity: accuracy per occlusion level (random@0.1, random@0.3...), each "
                        "level against the lowest of its kind; stages (Table V), imputation (Table VI); table1 to "
                        "table6: the layout of that table of the paper")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="markdown", help="default markdown")
    p.add_argument("--compare", choices=["paper"], help="put the published number beside each of ours")
    p.add_argument("--reference", metavar="METHOD",
                   help="compare every method with this one (same imputer, data, occlusion and protocol) instead "
                        "of the layout's own baseline")
    p.add_argument("--against", type=Path, metavar="DIR",
                   help="compare every cell with the same cell in the result records under DIR (another run of the "
                        "grid: another setting, pipeline or revision), paired by seed, instead of the layout's "
                        "own baseline")
    for name in FILTERS:
        what = f"only this {name}"
        if name == "pretrain_occlusion":
            what = "only cells whose encoder was pretrained on this occlusion (none: pretrained clean)"
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, help=what)
    p.add_argument("--no-bold", dest="bold", action="store_false",
                   help="no bold: by default markdown and LaTeX show the best number of each column in bold (the "
                        "highest top-1, the lowest MPJPE; per protocol in the protocols layout; ties all bold; with "
                        "--compare only ours compete); csv and json always carry a boolean `best` field")
    p.add_argument("--resizebox", nargs="?", const=r"\columnwidth", metavar="WIDTH",
                   help="LaTeX: scale each tabular to WIDTH with \\resizebox{WIDTH}{!}{...} (needs "
                        "\\usepackage{graphicx}); WIDTH defaults to \\columnwidth, e.g. \\textwidth for table*, "
                        "0.9\\linewidth or 8.5cm (the backslash may be left out: 0.9textwidth)")
    p.add_argument("--label", metavar="NAME",
                   help="LaTeX: \\label{NAME} in the table; when the command prints several tables they are "
                        "labelled NAME-1, NAME-2, ... in the order printed, so labels stay unique")
    p.add_argument("--out", type=Path, help="write the table to this file instead of printing it")
    p.set_defaults(func=_table_command)


def _table_command(args) -> None:
    rows = _load(args.results, with_paper=args.compare == "paper")
    other = None
    if args.against is not None:
        if not args.against.is_dir():
            what = "not a folder" if args.against.exists() else "no such folder"
            raise OccbenchError(f"--against {args.against}: {what}; give the --results folder of another run")
        other = flat_rows(load_with_warnings(args.against))
    filters = {name: getattr(args, name) for name in FILTERS}
    text = render(rows, args.layout, args.fmt, compare=args.compare, reference=args.reference, bold=args.bold,
                  resizebox=args.resizebox, label=args.label, against=other, against_name=str(args.against),
                  **filters)
    if args.out is None:
        print(text)
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


def _load(folder: Path, with_paper: bool) -> list[dict]:
    """Flat rows of every record under `folder` and of the published tables; damaged files become one-line
    warnings on stderr. Without records of ours, the published tables alone need `--compare paper`."""
    ours = load_with_warnings(folder) if folder.exists() else []
    ours = [record for record in ours if record["provenance"].get("source") != "paper"]
    if not ours and not with_paper:
        raise OccbenchError(f"no occbench result records in {folder}: run `occbench run` first (it writes them "
                            "there), or pass --results; `occbench table --compare paper` shows the published tables")
    if not ours:
        print(f"occbench: no results of ours in {folder}: the published numbers alone", file=sys.stderr)
    return flat_rows(ours + load_with_warnings(paths.PUBLISHED))


def load_with_warnings(folder: Path) -> list[dict]:
    """The records under `folder` (store.load_records), each damaged file a one-line warning on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RecordWarning)
        records = load_records(folder)
    for warning in caught:
        print(f"occbench: warning: {warning.message}", file=sys.stderr)
    return records
