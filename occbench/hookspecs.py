"""Every hook occbench calls, in one place. Plugins implement them with ``occbench.hookimpl``.

A plugin is a module (or object) named in the ``occbench`` entry-point group of its distribution::

    [project.entry-points.occbench]
    mymethod = "mypackage.occbench_plugin"

occbench's own methods, imputers and protocols are plugins declared the same way. Two kinds of hooks:

* registration hooks, called once when the plugins load: each receives a registry and adds named
  components to it (the tox 4 pattern); the host owns the lookup, blocking and error messages;
* event hooks, called while a benchmark runs, to observe it (loggers, notifiers, dashboards): each
  receives one `StageEvent`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pluggy

hookspec = pluggy.HookspecMarker("occbench")
hookimpl = pluggy.HookimplMarker("occbench")


@hookspec
def occbench_register_methods(registry) -> None:
    """Add self-supervised pretraining methods: ``registry.add("name", MethodClass)``.

    A method class follows ``occbench.methods.Method``: it is built from its resolved settings and
    an encoder, and returns its loss for a batch of views. Its ``defaults`` name its settings and
    ``schema`` gives their types and ranges (``occbench.settings``), checked when the grid is planned.
    """


@hookspec
def occbench_register_imputers(registry) -> None:
    """Add imputers: ``registry.add("name", MyImputer())``, an instance of a subclass of
    ``occbench.impute.Imputer`` (the contract, documented there): the base class reads the occluded split,
    writes the output dataset, its provenance and its mask, and reuses an earlier result; the subclass
    only fills the occluded joints (``fill(job)``). Its ``defaults`` name its settings and ``schema``
    gives their types and ranges (``occbench.settings``), checked when the grid is planned; ``identity``
    marks an imputer that leaves the data as it is, ``stage1_method(settings)`` names the method whose
    stage-1 encoder it wants."""


@hookspec
def occbench_register_protocols(registry) -> None:
    """Add evaluation protocols: ``registry.add("name", fn)`` where ``fn(encoder, data, settings)``
    returns a metrics dict (top-1, top-5, best and last epoch). ``fn.schema`` declares the settings it
    reads (a dict of ``occbench.settings`` rules, e.g. ``{"k": integer(1)}``): a profile setting outside
    it, of the wrong type or out of range is an error when the grid is planned, before anything runs.
    (``fn.settings``, a set of names, checks the names only.)"""


@hookspec
def occbench_register_datasets(registry) -> None:
    """Add datasets: ``registry.add("name", dataset)``, or take one away: ``registry.remove("name")``.

    ``dataset`` is any object with a ``title``, its ``splits`` (a list of names) and a ``folder()`` that
    returns a prepared dataset (``occbench data prepare``'s layout, at its recorded length in camera
    space; ``occbench.plan.available_datasets`` reads them). The grid then occludes and preprocesses it as
    it does a prepared NTU; a folder given with ``--data NAME=DIR`` replaces the provider's. Removals
    apply after every plugin has registered, to the plugins' datasets and to the catalogue's
    (``registry.yaml``), so a plugin can remove a dataset whoever added it.
    """


@dataclass(frozen=True)
class StageEvent:
    """What an event hook receives about one stage of a grid (data, imputation, pretraining, evaluation).

    ``kind``: "data", "impute", "pretrain" or "evaluate"; ``key``: the stage's cache key (its folder's
    name under ``--work``); ``label``: how the progress lines name it, e.g. ``pretrain skeletonclr none
    synthetic/xsub seed0``; ``settings``: its resolved settings (what its key is made of); ``cell``: the
    results-table cell (method, imputer, dataset, split, occlusion, protocol, seed, profile,
    pretrain_occlusion) of an evaluation stage or of an imputation stage's quality records, None for data
    and pretraining stages.
    Only in ``finished``: ``records``, the records the stage stored in the results folder (one for an
    evaluation, the imputation-quality records for an imputation, none for the others), ``output``,
    its output (the paths it wrote, with their digests, and what it measured), ``seconds`` its wall
    time, and ``cached``: True when the stage was already done and this run reused it (no ``started``
    came before).
    """

    kind: str
    key: str
    label: str
    settings: dict
    cell: dict | None = None
    records: tuple[dict, ...] = ()
    output: dict | None = None
    seconds: float | None = None
    cached: bool = False

    @property
    def record(self) -> dict | None:
        """The stage's own stored record: an evaluation's result, an imputation's quality (not the
        leaving-the-zeros baseline measured beside it); None for data and pretraining stages."""
        if self.cell is None:
            return None
        own = [r for r in self.records if r["cell"].get("imputer") == self.cell.get("imputer")]
        return own[0] if own else None


@hookspec
def occbench_stage_started(event: StageEvent) -> None:
    """A stage of the grid starts computing (``event.records``, ``output`` and ``seconds`` are empty)."""


@hookspec
def occbench_stage_finished(event: StageEvent) -> None:
    """A stage finished, computed now or reused from the cache (``event.cached``); its records are stored.

    Called in the process that ran the stage (a worker of ``--slots``, a slurm job) for a computed stage,
    and in the ``occbench run`` process for a cached one.
    """
