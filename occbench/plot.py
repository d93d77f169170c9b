"""Pictures of result records for a paper, as PNG and PDF, legible at column width (3.5 in) or page width (7 in).

Kinds (`occbench plot [KIND ...]`):

* ``bars``: a Tables II/III-style grid as grouped bars: one group per method (and stream), one bar per
  imputer, one panel per dataset and split; the bar is the mean top-1 over seeds and its error bar the
  standard deviation (none with one seed). One figure per occlusion (and pretraining occlusion),
  protocol and profile.
* ``severity``: top-1 against the occluded fraction of each level of a severity sweep (records whose
  occlusion is ``kind@severity``, and clean data, ``none``, at 0), one line per method and a line style per
  imputer, one panel per occlusion kind. The x of a level is its measured ``occluded`` fraction; records
  written before it was measured fall back to the severity number (the axis says so). Cells pretrained on
  another occlusion than the one evaluated are left out of the lines (they are in the bars). Clean data has
  nothing to impute: an imputer without its own clean record starts from the identity imputer's.
* ``joints``: the imputation error (MPJPE on the occluded joints of the test set) per joint, from the
  imputation-quality records, drawn on a standing body: one panel per imputer, the marker's colour and size
  its error, one colour bar in mm. Leaving the zeros (the identity imputer) is left out beside others: its
  error is the joints' distance from the origin, which would flatten every other panel's colours.

A method keeps its colour in every picture: the one its plugin declares (`colour`, carried by its
records; the built-ins' are `PALETTE`, Okabe and Ito's colour-blind-safe palette with wine for its
yellow), else, in the order the plugins give the methods, a palette colour that no method of the records
declares. Its marker is its place in that order.

Like `report`, this module reads records only; matplotlib is imported when a picture is drawn (a bare
`Figure` renders with Agg and leaves pyplot's backend alone) so that the CLI starts fast.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
import sys
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occbench import paths
from occbench.data import ntu
from occbench.errors import OccbenchError, write_error
from occbench.report import Names, Stat, latest_per_seed, load_with_warnings, severity_of
from occbench.store import CELL_FIELDS, QUALITY_PROTOCOL, flat_rows

KINDS = ("bars", "severity", "joints")
FORMATS = ("png", "pdf")
DEFAULT_OUT = Path("plots")
COLUMN, PAGE = 3.5, 7.0  # figure widths (in) of one column and of a page
DPI = 300  # of the PNGs; the PDFs are vector graphics
# For methods that declare no colour, less the colours the records' methods declare: Okabe & Ito's
# colour-blind-safe palette with Tol's wine for its yellow, which is faint on white; in the order of the
# built-ins' own colours, so that records written before methods declared one draw the same
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000", "#882255")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
HATCHES = ("", "////", "....", "xxxx", "\\\\\\\\", "++++", "oooo")  # per imputer in the bars
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))  # per imputer in the lines
STYLE = {"font.size": 7, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
         "legend.fontsize": 7, "legend.title_fontsize": 7, "figure.titlesize": 8, "axes.linewidth": 0.6,
         "hatch.linewidth": 0.6, "pdf.fonttype": 42}  # 42: TrueType fonts in the PDF, which journals ask for
ACCURACY = "Top-1 accuracy (%)"
OCCLUDED = "occluded joint-frames (%)"
MPJPE = "MPJPE (mm)"
CMAP = "plasma_r"  # sequential and legible in grey; dark is a large error
# A standing NTU body seen from the front (metres, feet at 0; the person's left on the picture's right),
# arms a little away from the body so that the hand joints stay apart: where `joints` draws the errors.
STANDING_POSE = (
    (0.0, 0.98), (0.0, 1.22), (0.0, 1.50), (0.0, 1.63),  # spine base, spine mid, neck, head
    (0.19, 1.42), (0.29, 1.17), (0.37, 0.95), (0.40, 0.88),  # left shoulder, elbow, wrist, hand
    (-0.19, 1.42), (-0.29, 1.17), (-0.37, 0.95), (-0.40, 0.88),  # right shoulder, elbow, wrist, hand
    (0.10, 0.93), (0.12, 0.52), (0.13, 0.09), (0.19, 0.02),  # left hip, knee, ankle, foot
    (-0.10, 0.93), (-0.12, 0.52), (-0.13, 0.09), (-0.19, 0.02),  # right hip, knee, ankle, foot
    (0.0, 1.42),  # spine shoulder
    (0.44, 0.79), (0.33, 0.86),  # left hand tip, thumb
    (-0.44, 0.79), (-0.33, 0.86),  # right hand tip, thumb
)
# What splits the records into one figure each, and into panels
BARS_CONTEXT = ("occlusion", "pretrain_occlusion", "protocol", "profile")
SEVERITY_CONTEXT = ("dataset", "split", "protocol", "profile")
JOINTS_CONTEXT = ("dataset", "split", "occlusion", "profile")


@dataclass(frozen=True)
class Picture:
    """One figure and the file name (without suffix) it is written under."""

    name: str
    figure: Any  # matplotlib.figure.Figure


# ----------------------------------------------------------------------------------------------- rows


@dataclass
class Grid:
    """The records to draw: flat rows (one per cell and seed, the latest run), their names and the colours."""

    rows: list[dict]
    names: Names
    colours: dict[Any, str]  # method -> its colour
    markers: dict[Any, str]  # method -> its marker: its place in the methods' order

    @classmethod
    def of(cls, records: Iterable[dict]) -> Grid:
        rows = [row for row in flat_rows(records) if not row.get("status")]
        ours = [row for row in rows if row.get("source") != "paper"]
        rows = latest_per_seed(ours or rows, CELL_FIELDS)  # the published numbers alone, when nothing of ours
        names = Names.of(rows)
        methods = sorted({row["method"] for row in rows if row.get("method") is not None},
                         key=lambda method: names.rank("method", method))
        declared = {method: names.info.get(("method", method), {}).get("colour") for method in methods}
        taken = {colour.lower() for colour in declared.values() if colour}
        spare = itertools.cycle([colour for colour in PALETTE if colour.lower() not in taken] or PALETTE)
        return cls(rows, names, {method: declared[method] or next(spare) for method in methods},
                   {method: MARKERS[index % len(MARKERS)] for index, method in enumerate(methods)})

    def colour(self, method: Any) -> str:
        return self.colours[method]

    def marker(self, method: Any) -> str:
        return self.markers[method]

    def accuracy_rows(self) -> list[dict]:
        return [row for row in self.rows if row.get("protocol") != QUALITY_PROTOCOL and row.get("top1") is not None]

    def ranked(self, rows: list[dict], fields: tuple[str, ...]) -> list[tuple]:
        """The distinct values of `fields` in `rows`, in the order tables show them."""
        values = {tuple(row.get(name) for name in fields) for row in rows}
        return sorted(values, key=lambda value: [self.names.rank(*pair) for pair in zip(fields, value, strict=True)])

    def method_label(self, method: Any, stream: Any) -> str:
        """As tables label a row: 2s-CrosSCLR for two streams."""
        streams = str(stream).count("+") + 1
        return (f"{streams}s-" if streams > 1 else "") + self.names.label("method", method)


def _select(rows: list[dict], **fields: Any) -> list[dict]:
    return [row for row in rows if all(row.get(name) == value for name, value in fields.items())]


def _contexts(grid: Grid, rows: list[dict], fields: tuple[str, ...]) -> list[dict]:
    """One figure per value of `fields`; like tables, only the headline protocol (linear) when there is one."""
    headline = [row for row in rows if grid.names.headline(row.get("protocol"))]
    rows = headline or rows
    return [dict(zip(fields, value, strict=True)) for value in grid.ranked(rows, fields)]


def _occluded(rows: list[dict]) -> float | None:
    """The measured hidden fraction (%) of these rows' data, when every row has it."""
    measured = [row.get("occluded") for row in rows]
    if not measured or any(value is None for value in measured):
        return None
    return 100.0 * statistics.fmean(float(value) for value in measured)


def _seeds_note(stats: list[Stat]) -> str:
    low, high = min(stat.seeds for stat in stats), max(stat.seeds for stat in stats)
    if high == 1:
        return "one seed per point: no error bars"
    runs = f"n = {high}" if low == high else f"n = {low}-{high}"
    return f"mean ± std over seeds ({runs}{'; one seed: no error bar' if low == 1 else ''})"


def _occlusion_title(context: dict) -> str:
    evaluated, pretrained = context["occlusion"], context.get("pretrain_occlusion", context["occlusion"])
    text = "no occlusion" if evaluated == "none" else f"{evaluated} occlusion"
    if pretrained != evaluated:
        text = f"pretrained on {pretrained}, evaluated on {evaluated}"
    return text


def _context_title(grid: Grid, context: dict) -> str:
    parts = []
    for name, value in context.items():
        if name == "occlusion":
            parts.append(_occlusion_title(context))
        elif name == "protocol":
            parts.append(grid.names.title("protocol", value))
        elif name == "profile":
            parts.append(f"profile {value}")
        elif name == "dataset":
            split = [grid.names.label("split", context["split"])] if "split" in context else []
            parts.append(" ".join([grid.names.label(name, value), *split]))
    return " · ".join(parts)


# ----------------------------------------------------------------------------------------- drawing


@contextmanager
def _style():
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # a bare Figure renders with Agg and leaves pyplot's backend alone

    return Figure(figsize=(width, height), layout="constrained")


def bars(records: Iterable[dict] | Grid) -> list[Picture]:
    """The grouped-bar figures of the records' accuracy grids (see the module docstring)."""
    grid = records if isinstance(records, Grid) else Grid.of(records)
    rows = grid.accuracy_rows()
    if not rows:
        raise OccbenchError("no bars: the records hold no top-1 accuracies (only imputation-quality records)")
    contexts = _contexts(grid, rows, BARS_CONTEXT)
    if any(context["occlusion"] != "none" for context in contexts):  # as tables: nothing to impute on clean data
        contexts = [context for context in contexts if context["occlusion"] != "none"]
    with _style():
        figures = [_bars_figure(grid, _select(rows, **context), context) for context in contexts]
    return _named("bars", contexts, figures)


def _bars_figure(grid: Grid, rows: list[dict], context: dict):
    from matplotlib.patches import Patch

    panels = grid.ranked(rows, ("dataset", "split"))
    groups = grid.ranked(rows, ("method", "stream"))
    imputers = [imputer for (imputer,) in grid.ranked(rows, ("imputer",))]
    figure = _figure(COLUMN if len(panels) == 1 else PAGE, 2.5)
    axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    width = 0.8 / len(imputers)
    stats = []
    top = 0.0
    for ax, (dataset, split) in zip(axes, panels, strict=True):
        here = _select(rows, dataset=dataset, split=split)
        for j, imputer in enumerate(imputers):
            offset = (j - (len(imputers) - 1) / 2) * width
            found = [(i, method, stream, Stat.of([row["top1"] for row in
                                                 _select(here, method=method, stream=stream, imputer=imputer)]))
                     for i, (method, stream) in enumerate(groups)
                     if _select(here, method=method, stream=stream, imputer=imputer)]
            if not found:
                continue
            xs = [i + offset for i, *_ in found]
            means = [stat.mean for *_, stat in found]
            bars_drawn = ax.bar(xs, means, width, color=[grid.colour(method) for _, method, _, _ in found],
                                edgecolor="white", linewidth=0.4, hatch=HATCHES[j % len(HATCHES)],
                                label=grid.names.label("imputer", imputer))
            for patch, (_, method, stream, _) in zip(bars_drawn.patches, found, strict=True):
                patch.set_gid(f"{method}|{stream}|{imputer}")
            errors = [stat.std if stat.std is not None else math.nan for *_, stat in found]
            if any(not math.isnan(error) for error in errors):
                ax.errorbar(xs, means, yerr=errors, fmt="none", ecolor="black", elinewidth=0.7, capsize=1.5,
                            capthick=0.7, label=f"_std {imputer}")
            stats += [stat for *_, stat in found]
            top = max(top, *(stat.mean + (stat.std or 0.0) for *_, stat in found))
        hidden = _occluded(here)
        title = f"{grid.names.label('dataset', dataset)} {grid.names.label('split', split)}"
        ax.set_title(title + (f" · {hidden:.1f}% hidden" if hidden is not None and context["occlusion"] != "none"
                              else ""))
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([grid.method_label(*group) for group in groups], rotation=30 if len(groups) > 3 else 0,
                           ha="right" if len(groups) > 3 else "center", rotation_mode="anchor")
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.tick_params(labelsize=7, length=2.5)
        ax.grid(axis="y", lw=0.4, alpha=0.4)
        ax.set_axisbelow(True)
    axes[0].set_ylabel(ACCURACY, fontsize=8)
    axes[0].set_ylim(0, min(100.0, top * 1.08) if top > 0 else 1.0)
    handles = [Patch(facecolor="0.45", edgecolor="white", linewidth=0.4, hatch=HATCHES[j % len(HATCHES)],
                     label=grid.names.label("imputer", imputer)) for j, imputer in enumerate(imputers)]
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize=7,
                  frameon=False, title=f"imputer · {_seeds_note(stats)}", title_fontsize=7)
    figure.suptitle(_context_title(grid, context), fontsize=8)
    return figure


def severity(records: Iterable[dict] | Grid) -> list[Picture]:
    """Top-1 against the occluded fraction of each severity level (see the module docstring)."""
    grid = records if isinstance(records, Grid) else Grid.of(records)
    rows = [row for row in grid.accuracy_rows() if row["pretrain_occlusion"] == row["occlusion"]]
    levels = [row for row in rows if severity_of(row["occlusion"])[1] is not None]
    if not levels:
        present = sorted({str(row["occlusion"]) for row in grid.accuracy_rows()}) or ["none"]
        raise OccbenchError(f"no severity plot: no accuracy records of occlusion levels such as random@0.3 (the "
                            f"records' occlusions: {', '.join(present)}); run a grid with e.g. "
                            "--occlusion random@0.1,random@0.3,random@0.5")
    clean = [row for row in rows if row["occlusion"] == "none"]
    contexts = _contexts(grid, levels, SEVERITY_CONTEXT)
    with _style():
        figures = [_severity_figure(grid, _select(levels, **context), _select(clean, **context), context)
                   for context in contexts]
    return _named("severity", contexts, figures)


def _severity_figure(grid: Grid, levels: list[dict], clean: list[dict], context: dict):
    from matplotlib.lines import Line2D

    kinds = sorted({severity_of(row["occlusion"])[0] for row in levels},
                   key=lambda kind: grid.names.rank("occlusion", kind))
    series = grid.ranked(levels, ("method", "stream", "imputer"))
    imputers = [imputer for (imputer,) in grid.ranked(levels, ("imputer",))]
    figure = _figure(COLUMN if len(kinds) == 1 else PAGE, 3.0)
    axes = figure.subplots(1, len(kinds), sharey=True, squeeze=False)[0]
    stats = []
    for ax, kind in zip(axes, kinds, strict=True):
        here = [row for row in levels if severity_of(row["occlusion"])[0] == kind]
        specs = sorted({row["occlusion"] for row in here}, key=lambda spec: severity_of(spec)[1])
        measured = {spec: _occluded(_select(here, occlusion=spec)) for spec in specs}
        exact = all(value is not None for value in measured.values())
        x_of = {spec: measured[spec] if exact else 100.0 * severity_of(spec)[1] for spec in specs}
        for method, stream, imputer in series:
            points = []
            own_clean = _select(clean, method=method, stream=stream, imputer=imputer)
            start = own_clean or _select(clean, method=method, stream=stream, imputer=grid.names.baseline)
            if start:
                points.append((0.0, Stat.of([row["top1"] for row in start])))
            cells = {spec: _select(here, method=method, stream=stream, imputer=imputer, occlusion=spec)
                     for spec in specs}
            points += [(x_of[spec], Stat.of([row["top1"] for row in cell])) for spec, cell in cells.items() if cell]
            if not any(cells.values()):
                continue  # this series has no level of this kind
            xs = [x for x, _ in points]
            means = [stat.mean for _, stat in points]
            errors = [stat.std if stat.std is not None else math.nan for _, stat in points]
            several = len(str(stream).split("+")) > 1
            line = ax.errorbar(xs, means, yerr=errors if any(not math.isnan(e) for e in errors) else None,
                               color=grid.colour(method), marker=grid.marker(method), ms=3.5, lw=1.0,
                               ls=LINESTYLES[imputers.index(imputer) % len(LINESTYLES)], capsize=1.5,
                               elinewidth=0.6, mfc="white" if several else grid.colour(method),
                               label=f"{grid.method_label(method, stream)} · {grid.names.label('imputer', imputer)}")
            line.lines[0].set_gid(f"{method}|{stream}|{imputer}")
            stats += [stat for _, stat in points]
        ax.set_title(f"{kind} occlusion")
        ax.set_xlabel(OCCLUDED if exact else f"{kind} severity × 100 (occluded fraction not recorded)", fontsize=8)
        ax.set_xlim(left=-2.0)
        ax.tick_params(labelsize=7, length=2.5)
        ax.grid(lw=0.4, alpha=0.4)
    axes[0].set_ylabel(ACCURACY, fontsize=8)
    methods = [Line2D([], [], color=grid.colour(method), marker=grid.marker(method), ms=3.5, lw=1.0,
                      mfc="white" if "+" in str(stream) else grid.colour(method),
                      label=grid.method_label(method, stream))
               for method, stream in grid.ranked(levels, ("method", "stream"))]
    styles = [Line2D([], [], color="0.3", lw=1.0, ls=LINESTYLES[j % len(LINESTYLES)],
                     label=grid.names.label("imputer", imputer)) for j, imputer in enumerate(imputers)]
    columns = min(3 if len(kinds) == 1 else 6, max(len(methods), len(styles)))
    figure.legend(handles=_by_rows([methods, styles if len(imputers) > 1 else []], columns), loc="outside lower center",
                  ncol=columns, fontsize=7, frameon=False, title=_seeds_note(stats), title_fontsize=7)
    figure.suptitle(_context_title(grid, context), fontsize=8)
    return figure


def _by_rows(groups: list[list], columns: int) -> list:
    """Legend handles laid out so that each group starts a row of its own (a legend fills column by column)."""
    from matplotlib.lines import Line2D

    rows = []
    for group in groups:
        for start in range(0, len(group), columns):
            row = group[start:start + columns]
            rows.append(row + [Line2D([], [], alpha=0, label=" ")] * (columns - len(row)))
    return [row[column] for column in range(columns) for row in rows]


def joints(records: Iterable[dict] | Grid) -> list[Picture]:
    """The imputation error per joint on a standing body (see the module docstring)."""
    grid = records if isinstance(records, Grid) else Grid.of(records)
    rows = [row for row in grid.rows
            if row.get("protocol") == QUALITY_PROTOCOL and isinstance(row.get("per_joint"), dict)]
    if not rows:
        raise OccbenchError("no joints plot: no imputation-quality records with per-joint errors (a grid writes "
                            "them when occbench occluded the data itself, so that the true positions are known)")
    contexts = _contexts(grid, rows, JOINTS_CONTEXT)
    with _style():
        figures = [_joints_figure(grid, _select(rows, **context), context) for context in contexts]
    return _named("joints", contexts, figures)


def _joints_figure(grid: Grid, rows: list[dict], context: dict):
    import numpy as np
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    imputers = [imputer for (imputer,) in grid.ranked(rows, ("imputer",))]
    left_out = [imputer for imputer in imputers if grid.names.identity(imputer)] if len(imputers) > 1 else []
    imputers = [imputer for imputer in imputers if imputer not in left_out]
    errors = {imputer: _joint_errors(_select(rows, imputer=imputer)) for imputer in imputers}
    known = [value for values in errors.values() for value in values if value is not None]
    norm = Normalize(0.0, max(known) if known else 1.0)
    figure = _figure(COLUMN if len(imputers) <= 3 else PAGE, 2.7)
    axes = figure.subplots(1, len(imputers), squeeze=False)[0]
    pose = np.asarray(STANDING_POSE)
    for ax, imputer in zip(axes, imputers, strict=True):
        _draw_body(ax, pose)
        values = errors[imputer]
        seen = np.array([value is not None for value in values])
        mm = np.array([value if value is not None else 0.0 for value in values])
        dots = ax.scatter(*pose[seen].T, c=mm[seen], s=6 + 40 * norm(mm[seen]), cmap=CMAP, norm=norm,
                          edgecolors="black", linewidths=0.3, zorder=5)
        dots.set_gid(f"mpjpe|{imputer}")
        if (~seen).any():  # never occluded in the test set: no error to show
            ax.scatter(*pose[~seen].T, s=6, facecolors="white", edgecolors="0.5", linewidths=0.4, zorder=5)
        ax.set_title(f"{grid.names.label('imputer', imputer)}\n{_overall(rows, imputer):.0f} mm overall", fontsize=8)
        ax.set_aspect("equal")
        ax.set_xlim(-0.55, 0.55)
        ax.set_ylim(-0.05, 1.72)
        ax.set_axis_off()
    axes[0].text(0.02, 0.0, "R", transform=axes[0].transAxes, fontsize=7, color="0.4")
    axes[-1].text(0.98, 0.0, "L", transform=axes[-1].transAxes, fontsize=7, color="0.4", ha="right")
    bar = figure.colorbar(ScalarMappable(norm, CMAP), ax=list(axes), shrink=0.8, pad=0.02)
    bar.set_label(MPJPE, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    seeds = max(len({row.get("seed") for row in _select(rows, imputer=imputer)}) for imputer in imputers)
    hidden = _occluded(rows)
    lines = ["Error on the occluded joints of the test set",
             f"{grid.names.label('dataset', context['dataset'])} {grid.names.label('split', context['split'])} · "
             + _occlusion_title(context) + (f" ({hidden:.1f}% hidden)" if hidden is not None else ""),
             f"profile {context['profile']}" + (f" · mean over {seeds} seeds" if seeds > 1 else "")]
    figure.suptitle("\n".join(lines), fontsize=8)
    notes = [f"{grid.names.label('imputer', imputer)} (leaving the zeros): {_overall(rows, imputer):.0f} mm, not drawn"
             for imputer in left_out]
    if any(value is None for values in errors.values() for value in values):
        notes.append("○ never occluded")
    if notes:
        figure.supxlabel("; ".join(notes), fontsize=7, color="0.3")
    return figure


def _overall(rows: list[dict], imputer: Any) -> float:
    """The imputer's MPJPE over all occluded joints (mm), mean over seeds."""
    values = [1000.0 * row["mpjpe"] for row in _select(rows, imputer=imputer) if row.get("mpjpe") is not None]
    return statistics.fmean(values) if values else math.nan


def _joint_errors(rows: list[dict]) -> list[float | None]:
    """Per NTU joint, the mean MPJPE (mm) over the seeds; None for a joint never occluded."""
    means = []
    for name in ntu.JOINT_NAMES:
        values = [1000.0 * row["per_joint"][name] for row in rows if row["per_joint"].get(name) is not None]
        means.append(statistics.fmean(values) if values else None)
    return means


def _draw_body(ax, pose) -> None:
    """The bones and joints of `pose` (V, 2) as `show` draws a body."""
    import numpy as np

    from occbench.data.show import View, _draw_frame

    xyz = np.concatenate([pose, np.ones((len(pose), 1))], axis=1)[None, None]  # (T=1, M=1, V, 3)
    body = View(name="standing", xyz=xyz, present=np.ones((1, 1), bool), hidden=np.zeros((1, 1, len(pose)), bool),
                known=np.ones((1, 1, len(pose)), bool), length=1, boxes=None, class_name=None,
                hidden_label="occluded", note="")
    _draw_frame(ax, body, 0, lambda points: points[..., :2])


def _named(kind: str, contexts: list[dict], figures: list) -> list[Picture]:
    """File names: the kind, and the context values that tell its figures apart (bars-random-0.3)."""
    varying = [name for name in (contexts[0] if contexts else {}) if len({str(c[name]) for c in contexts}) > 1]
    return [Picture("-".join(filter(None, [kind, *(_name_part(context, name) for name in varying)])), figure)
            for context, figure in zip(contexts, figures, strict=True)]


def _name_part(context: dict, name: str) -> str:
    value = _safe(str(context[name]))
    if name == "pretrain_occlusion":  # said only where it is not the evaluated occlusion: bars-realistic-pretrain-none
        return "" if context[name] == context.get("occlusion") else f"pretrain-{value}"
    return value


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+]+", "-", text).strip("-") or "x"


# ------------------------------------------------------------------------------------------- writing


DRAW: dict[str, Callable[[Grid], list[Picture]]] = {"bars": bars, "severity": severity, "joints": joints}


def pictures(records: Iterable[dict], kinds: Iterable[str] | None = None,
             skipped: list[str] | None = None) -> list[Picture]:
    """The pictures of `kinds` (default: every kind the records allow; why one is not made goes to `skipped`)."""
    chosen = list(kinds or KINDS)
    unknown = [kind for kind in chosen if kind not in KINDS]
    if unknown:
        raise OccbenchError(f"unknown plot {unknown[0]!r}; choose from {', '.join(KINDS)}")
    grid = Grid.of(records)
    if not grid.rows:
        raise OccbenchError("no result records to plot")
    made = []
    for kind in chosen:
        try:
            made += DRAW[kind](grid)
        except OccbenchError as err:
            if kinds:  # asked for by name: it must be made
                raise
            if skipped is not None:
                skipped.append(str(err))
    if not made:
        raise OccbenchError("nothing to plot: " + "; ".join(skipped or []))
    return made


def save(picture: Picture, out: Path, formats: Iterable[str] = FORMATS) -> list[Path]:
    """Write `picture` into `out` once per format; the paths written."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(out, err, "--out") from None
    written = []
    with _style():
        for fmt in formats:
            target = out / f"{picture.name}.{fmt}"
            try:
                picture.figure.savefig(target, format=fmt, dpi=DPI)
            except OSError as err:
                raise write_error(target, err, "--out") from None
            written.append(target)
    return written


def formats(text: str) -> tuple[str, ...]:
    """`png,pdf` -> ("png", "pdf"); an unknown format is an error naming it."""
    chosen = tuple(dict.fromkeys(part.strip().lower() for part in str(text).split(",") if part.strip()))
    unknown = [fmt for fmt in chosen if fmt not in FORMATS]
    if unknown or not chosen:
        raise OccbenchError(f"--format {text!r}: choose from {', '.join(FORMATS)}, comma-separated (e.g. png,pdf)")
    return chosen


def load(folder: Path) -> list[dict]:
    """The records under `folder`; damaged files are one-line warnings on stderr."""
    folder = Path(folder)
    if not folder.exists():
        raise OccbenchError(f"no results folder {folder}: run `occbench run` first (it writes records there), "
                            "or pass --results")
    records = load_with_warnings(folder)
    if not records:
        raise OccbenchError(f"no result records in {folder}: run `occbench run` first, or pass --results")
    return records


# ----------------------------------------------------------------------------------------------- CLI


def add_plot_command(subparsers) -> None:
    """Register ``occbench plot`` on the CLI's subparsers."""
    p = subparsers.add_parser("plot", help="pictures of the results (PNG, PDF): bars of the grid, accuracy against "
                                           "occlusion severity, imputation error per joint")
    p.add_argument("kinds", nargs="*", metavar="KIND",
                   help=f"any of {', '.join(KINDS)} (default: every one the records allow)")
    p.add_argument("--results", type=Path, default=paths.DEFAULT_RESULTS,
                   help=f"folder of result records, read recursively (default: {paths.DEFAULT_RESULTS}/)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder to write into (default: {DEFAULT_OUT}/)")
    p.add_argument("--format", dest="formats", default=",".join(FORMATS),
                   help=f"comma-separated: {', '.join(FORMATS)} (default: both)")
    p.set_defaults(func=_plot_command)


def _plot_command(args) -> None:
    chosen = formats(args.formats)
    skipped: list[str] = []
    made = pictures(load(args.results), args.kinds or None, skipped)
    for reason in skipped:
        print(f"occbench: {reason}", file=sys.stderr)
    for picture in made:
        for path in save(picture, args.out, chosen):
            print(path)
