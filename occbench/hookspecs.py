"""Every hook occbench calls, in one place. Plugins implement them with ``occbench.hookimpl``.

A plugin is a module (or object) named in the ``occbench`` entry-point group of its distribution::

    [project.entry-points.occbench]
    mymethod = "mypackage.occbench_plugin"

occbench's own methods, imputers and protocols are plugins declared the same way. Two kinds of hooks:

* registration hooks, called once when the plugins load: each receives a registry and adds named
  components to it (the tox 4 pattern); the host owns the lookup, blocking and error messages;
* event hooks, called while a benchmark runs, to observe it (loggers, notifiers, dashboards).
"""

from __future__ import annotations

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
    """Add imputers: ``registry.add("name", imputer)``; an imputer fills the occluded joints of a
    prepared dataset (see ``occbench.impute``). Its ``defaults`` name its settings, typed by their values;
    ``imputer.check_settings(settings)``, if it has one, is called instead when the grid is planned."""


@hookspec
def occbench_register_protocols(registry) -> None:
    """Add evaluation protocols: ``registry.add("name", fn)`` where ``fn(encoder, data, settings)``
    returns a metrics dict (top-1, top-5, best and last epoch). ``fn.schema`` declares the settings it
    reads (a dict of ``occbench.settings`` rules, e.g. ``{"k": integer(1)}``): a profile setting outside
    it, of the wrong type or out of range is an error when the grid is planned, before anything runs.
    (``fn.settings``, a set of names, checks the names only.)"""


@hookspec
def occbench_register_datasets(registry) -> None:
    """Add datasets: ``registry.add("name", provider)``; a provider returns the prepared (and
    occluded) dataset folders a benchmark cell reads."""


@hookspec
def occbench_cell_started(cell: dict) -> None:
    """A benchmark cell (one stage of the grid: imputation, pretraining or evaluation) starts.

    ``cell`` holds its kind, its key and its resolved settings.
    """


@hookspec
def occbench_cell_finished(cell: dict, result: dict) -> None:
    """A benchmark cell finished; ``result`` is the record stored for it (metrics and provenance)."""
