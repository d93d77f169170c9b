"""The plugin host: loads the ``occbench`` entry points and fills one registry per kind of component.

Built-in and third-party plugins load the same way. A plugin is blocked by its entry-point name
with ``--disable-plugin NAME`` or ``OCCBENCH_DISABLE_PLUGINS=NAME[,NAME...]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from occbench import hookspecs
from occbench.errors import OccbenchError, brief
from occbench.store import check_labels

ENTRY_POINT_GROUP = "occbench"
DISABLE_ENV = "OCCBENCH_DISABLE_PLUGINS"
KINDS = ("methods", "imputers", "protocols", "datasets")
# What a component may say about how tables name it (see PluginHost.labels)
LABEL_FIELDS = {"method": ("title", "citation", "order", "imputed_titles", "colour"),
                "imputer": ("title", "label", "citation", "order", "identity"),
                "protocol": ("title", "label", "order", "headline")}


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    registered: dict[str, list[str]] = field(default_factory=dict)


class Registry:
    """Named components of one kind; what a registration hook receives."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, object] = {}
        self._owners: dict[str, PluginInfo] = {}
        self._current: PluginInfo | None = None
        self.removed: dict[str, PluginInfo] = {}  # name: the plugin that removed it

    def add(self, name: str, component: object) -> None:
        owner = self._current
        if name in self._items:
            first = self._owners[name]
            raise OccbenchError(
                f"{self.singular} {name!r} is registered twice: by plugin {first.name} ({first.distribution}) "
                f"and by plugin {owner.name} ({owner.distribution}); disable one with --disable-plugin"
            )
        self._items[name] = component
        self._owners[name] = owner
        owner.registered.setdefault(self.kind, []).append(name)

    def remove(self, name: str) -> None:
        """Take `name` away, whoever adds it (another plugin, or the catalogue for datasets): applied
        once every plugin has registered, so the order plugins load in does not matter."""
        self.removed[name] = self._current
        self._current.registered.setdefault(f"removed {self.kind}", []).append(name)

    def _apply_removals(self) -> None:
        for name in self.removed:
            self._items.pop(name, None)
            self._owners.pop(name, None)

    @property
    def singular(self) -> str:
        return self.kind.removesuffix("s")

    def __getitem__(self, name: str) -> object:
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none registered"
            raise OccbenchError(f"unknown {self.singular} {name!r}: choose from {known} (see `occbench plugins`)")
        return self._items[name]

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def names(self) -> list[str]:
        return list(self._items)

    def owner(self, name: str) -> PluginInfo:
        self[name]
        return self._owners[name]


class PluginHost:
    """The loaded plugins, their registries, and the event hooks to call during a run."""

    def __init__(self, manager: pluggy.PluginManager, plugins: list[PluginInfo]):
        self.manager = manager
        self.plugins = plugins
        self.registries = {kind: Registry(kind) for kind in KINDS}
        for kind, registry in self.registries.items():
            hook = getattr(manager.hook, f"occbench_register_{kind}")
            by_name = {info.name: info for info in plugins}
            for impl in hook.get_hookimpls():
                registry._current = by_name[impl.plugin_name]
                try:
                    impl.function(registry=registry)
                finally:
                    registry._current = None
            registry._apply_removals()

    def labels(self, cell: dict) -> dict:
        """How the plugins name the cell's method, imputer and protocol in tables, from the components'
        own attributes (`title`, `label`, `citation`, `order`; an imputer's `identity`; a method's
        `imputed_titles`): a record carries them, so `occbench table` needs no plugin to show them."""
        labels = {}
        for kind in ("method", "imputer", "protocol"):
            name = cell.get(kind)
            registry = self.registries[f"{kind}s"]
            if name is None or name not in registry:
                continue
            component = registry[name]
            own = {field: getattr(component, field, None) for field in LABEL_FIELDS[kind]}
            labels[kind] = {field: value for field, value in own.items() if value not in (None, "", {}, False)}
        check_labels(labels)
        return labels

    @property
    def hook(self):
        return self.manager.hook

    @property
    def methods(self) -> Registry:
        return self.registries["methods"]

    @property
    def imputers(self) -> Registry:
        return self.registries["imputers"]

    @property
    def protocols(self) -> Registry:
        return self.registries["protocols"]

    @property
    def datasets(self) -> Registry:
        return self.registries["datasets"]


def load_plugins(disabled: tuple[str, ...] | list[str] = (), extra: dict[str, object] | None = None) -> PluginHost:
    """Load every ``occbench`` entry point that is not disabled, plus `extra` {name: plugin} (tests)."""
    blocked = {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}
    blocked |= set(disabled)
    manager = pluggy.PluginManager("occbench")
    manager.add_hookspecs(hookspecs)
    plugins: list[PluginInfo] = []
    loaded: dict[str, PluginInfo] = {}
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        if point.name in blocked:
            continue
        dist = point.dist
        info = PluginInfo(point.name, dist.name if dist else "?", dist.version if dist else "?")
        if point.name in loaded:
            first = loaded[point.name]
            if first.distribution == info.distribution:  # one distribution seen twice on the path
                continue
            raise OccbenchError(
                f"plugin {point.name} is declared by two distributions, {first.distribution} {first.version} and "
                f"{info.distribution} {info.version}; uninstall one, or block the name with --disable-plugin "
                f"{point.name}"
            )
        loaded[point.name] = info
        try:
            plugin = point.load()
        except Exception as err:  # a broken third-party plugin must not look like an occbench bug
            raise OccbenchError(
                f"plugin {point.name} ({info.distribution}) failed to load: {type(err).__name__}: {brief(err)}; "
                f"fix or uninstall it, or disable it with --disable-plugin {point.name}"
            ) from None
        _register(manager, plugin, info)
        plugins.append(info)
    for name, plugin in (extra or {}).items():
        if name not in blocked:
            info = PluginInfo(name, "(registered in-process)", "")
            _register(manager, plugin, info)
            plugins.append(info)
    return PluginHost(manager, plugins)


def _register(manager: pluggy.PluginManager, plugin: object, info: PluginInfo) -> None:
    try:
        manager.register(plugin, name=info.name)
        manager.check_pending()
    except pluggy.PluginValidationError as err:
        raise OccbenchError(
            f"plugin {info.name} ({info.distribution}) is invalid: {brief(err)}; "
            f"fix it or disable it with --disable-plugin {info.name}"
        ) from None
