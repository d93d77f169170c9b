"""The benchmark grid as a graph of cached stages (keyed and placed by `occbench.paths`).

    data (dataset, occlusion) ─► impute (imputer, split, seed) ─► pretrain (method, split, seed) ─► evaluate
                    └──────────────── stage-1 pretrain (OPSTL on the occluded data) ──┘  (knn only)

A stage's key is a digest of everything that determines its output: its own resolved settings and
the keys of the stages it reads. Identical stages collapse into one (the stage-1 OPSTL pretraining of
the KNN imputer *is* the OPSTL pretraining on non-imputed data), and a changed setting changes the
keys of exactly the stages it affects.

Occlusion. A grid runs one or more occlusion specs (`random@0.3`, `realistic`, ...; see
`occbench.data.occlusion.parse_occlusion`): each is a data stage of its own, and each its own cells.
A bare kind's data stage holds the kind alone, so it keeps the key it had before specs had severities.

Pretraining occlusion apart from evaluation occlusion (`--pretrain-occlusion`, a suite's
`pretrain_occlusion` or `transfer` pairs): the encoder is pretrained on the data of one spec and the
protocol evaluates on the data of another. Then

    data (pretrain spec) ─► impute ─► pretrain ─┐
    data (evaluation spec) ─► impute ───────────┴─► evaluate

a pretraining depends on its own data stage only, so changing the evaluation occlusion alone re-runs
the new data stage, its imputations and the evaluations, never a pretraining. The cell's imputer
applies to both sides, each imputed by its own stage: the pretraining data is imputed before the
method pretrains on it, the evaluation data before the protocol reads it (the KNN imputer's stage-1
encoder is pretrained on the occluded data it imputes, so each side has its own). A side with no
occlusion (`none`) has nothing to fill and is used as it is, so every imputer's cells pretrained on
clean data share one pretraining per method. When the two specs are equal the grid is exactly the
one-occlusion grid: one data stage, one imputation, read by the pretraining and the evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from occbench import paths
from occbench.catalogue import Catalogue, apply_overrides, merge
from occbench.data.preprocess import DEFAULT_PIPELINE, PIPELINES
from occbench.errors import OccbenchError, brief
from occbench.settings import ANY, DATA, check, one_of, typed_like, unknown
from occbench.store import QUALITY_PROTOCOL


@dataclass(frozen=True)
class Cell:
    """One result of the grid: what a table row/column pair refers to."""

    method: str | None  # None in imputation-quality cells
    imputer: str
    dataset: str
    split: str
    occlusion: str  # the spec the protocol evaluated on (imputation quality: the spec of the imputed data)
    protocol: str
    seed: int
    profile: str
    pretrain_occlusion: str | None = None  # the spec the encoder was pretrained on; None: `occlusion`

    def __post_init__(self):
        if self.pretrain_occlusion is None:
            object.__setattr__(self, "pretrain_occlusion", self.occlusion)


@dataclass(eq=False)
class Stage:
    kind: str
    label: str
    settings: dict
    needs: tuple[Stage, ...] = ()
    cell: Cell | None = None

    @cached_property
    def key(self) -> str:
        return paths.stage_key(self.kind, self.settings, [need.key for need in self.needs])

    def folder(self, work: Path) -> Path:
        return paths.stage_folder(work, self.kind, self.key)

    def need(self, kind: str) -> Stage:
        return next(need for need in self.needs if need.kind == kind)

    def upstream(self) -> list[Stage]:
        """Every stage this one needs, however indirectly, each once, needed ones first."""
        found: dict[str, Stage] = {}
        for need in self.needs:
            found |= {stage.key: stage for stage in (*need.upstream(), need)}
        return list(found.values())


@dataclass
class Grid:
    datasets: list[tuple[str, str]]
    occlusion: list[str]  # the specs evaluated on, each its own data stage and cells
    methods: list[str]
    imputers: list[str]
    protocols: list[str]
    seeds: list[int]
    profile: str
    overrides: list[str] = field(default_factory=list)
    world_size: int = 1  # processes (GPUs) per pretraining
    pretrain_occlusion: str | None = None  # the spec every encoder pretrains on; None: each level's own
    transfer: list[tuple[str, str]] = field(default_factory=list)  # further (pretrain, evaluate) spec pairs

    def occlusion_pairs(self) -> list[tuple[str, str]]:
        """(pretraining spec, evaluation spec) of every group of cells, each once, in order."""
        pairs = [(self.pretrain_occlusion or spec, spec) for spec in self.occlusion]
        return list(dict.fromkeys([*pairs, *self.transfer]))

    def several_occlusions(self) -> bool:
        """Whether the grid reads data of more than one spec (labels then name the spec)."""
        return len({spec for pair in self.occlusion_pairs() for spec in pair}) > 1


def occlusion_spec(text, where: str, catalogue: Catalogue) -> str:
    """The spec `text` checked (its kind one of the catalogue's occlusions, its severity one that
    `parse_occlusion` accepts) and written one way (`random@.30` is `random@0.3`), so equal
    specs are one data stage; `where` (the option or suite key it came from) starts any error."""
    from occbench.data.occlusion import occlusion_severity, parse_occlusion

    if not isinstance(text, str):
        raise OccbenchError(f"{where}: occlusion {text!r} is not a name; write e.g. realistic or random@0.3")
    text = text.strip()
    try:
        kind, _ = parse_occlusion(text)
        severity = occlusion_severity(text)
    except OccbenchError as err:
        raise OccbenchError(f"{where}: {err}") from None
    if kind not in catalogue.occlusions:
        raise OccbenchError(f"{where}: unknown occlusion {kind!r}: choose from {', '.join(catalogue.occlusions)} "
                            f"({catalogue.path})")
    return kind if severity is None else f"{kind}@{severity!r}"


def available_datasets(catalogue: Catalogue, host) -> dict[str, dict]:
    """The catalogue's datasets and those plugins add (`occbench_register_datasets`), less those a
    plugin removed: {name: {"title", "splits", "source": embedded | prepared | plugin, ...}}."""
    found = {name: entry for name, entry in catalogue.datasets.items() if name not in host.datasets.removed}
    for name in host.datasets.names():
        provider = host.datasets[name]
        splits = list(getattr(provider, "splits", ()) or ())
        if not splits or not all(isinstance(split, str) for split in splits):
            owner = host.datasets.owner(name)
            raise OccbenchError(f"dataset {name} of plugin {owner.name} ({owner.distribution}) names no splits: give "
                                "its provider a `splits` list, e.g. ['xsub', 'xview']")
        found[name] = {"title": getattr(provider, "title", name), "splits": splits, "source": "plugin",
                       "provider": provider}
    return found


def _provided_folder(name: str, provider) -> str:
    """The prepared folder a plugin's dataset provider returns, checked to be one."""
    try:
        folder = Path(provider.folder()).expanduser()
    except OccbenchError:
        raise
    except Exception as err:  # a plugin's failure, not occbench's: name it
        raise OccbenchError(f"dataset {name}: its provider failed: {type(err).__name__}: {brief(err)}") from None
    if not (folder / "meta.json").is_file():
        raise OccbenchError(f"dataset {name}: its provider returned {folder}, which is not a prepared dataset (no "
                            f"meta.json); prepare it with `occbench data prepare`, or pass --data {name}=DIR")
    return str(folder)


def resolve_grid(catalogue: Catalogue, host, suite: str = "quick", **options) -> Grid:
    """The suite's grid with any command-line option (methods, imputers, ...) replacing its entry."""
    base = catalogue.suite(suite)

    def pick(name: str):
        value = options.get(name)
        return base[name] if value in (None, [], "") else value

    def names(kind: str) -> list[str]:
        value = pick(kind)
        registry = host.registries[kind]
        if value == "all" or value == ["all"]:  # every installed one, in the order tables show them
            return sorted(registry.names(), key=lambda name: (getattr(registry[name], "order", math.inf), name))
        for name in value:
            registry[name]  # unknown names fail here, with the list of known ones
        return list(value)

    datasets = []
    known = available_datasets(catalogue, host)
    for item in pick("datasets"):
        dataset, _, split = str(item).partition("/")
        if dataset not in known:
            raise OccbenchError(f"unknown dataset {dataset!r}: choose from {', '.join(known)}")
        splits = known[dataset]["splits"]
        for one in [split] if split else splits:
            if one not in splits:
                raise OccbenchError(f"dataset {dataset} has no split {one!r}: choose from {', '.join(splits)}")
            datasets.append((dataset, one))
    # the command line's occlusions replace the suite's whole (its transfer pairs too)
    given = any(options.get(name) not in (None, [], "") for name in ("occlusion", "pretrain_occlusion"))

    def specs(name: str, option: str) -> list[str]:  # a suite's may be one spec or a list
        if options.get(name) not in (None, [], ""):
            value, where = options[name], option
        else:
            value, where = base.get(name), f"suites.{suite}.{name}"
        items = [] if value is None else [value] if isinstance(value, str) else value
        return [occlusion_spec(item, where, catalogue) for item in items]

    occlusion = list(dict.fromkeys(specs("occlusion", "--occlusion")))
    pretrain = specs("pretrain_occlusion", "--pretrain-occlusion")
    transfer = [] if given else [
        (occlusion_spec(pair.get("pretrain"), f"suites.{suite}.transfer[{index}].pretrain", catalogue),
         occlusion_spec(pair.get("evaluate"), f"suites.{suite}.transfer[{index}].evaluate", catalogue))
        for index, pair in enumerate(base.get("transfer") or [])]
    profile = pick("profile")
    catalogue.profile(profile)
    world_size = int(options.get("world_size") or 1)
    if world_size < 1:
        raise OccbenchError(f"--gpus-per-cell {world_size}: use 1 or more")
    methods = names("methods")
    for method in methods:  # how it is named and drawn is checked before anything runs, not at its record
        try:
            host.labels({"method": method})
        except OccbenchError as err:
            raise OccbenchError(f"method {method}: {err}") from None
    return Grid(datasets, occlusion, methods, names("imputers"), names("protocols"),
                [int(s) for s in pick("seeds")], profile, list(options.get("overrides") or []), world_size,
                pretrain[0] if pretrain else None, transfer)


def build_stages(grid: Grid, catalogue: Catalogue, host, sources: dict[str, str]) -> list[Stage]:
    """Every stage of the grid, each once, dependencies before dependents."""
    from occbench.impute import identity_imputer, registered_imputer

    profile = resolved_profile(catalogue, host, grid.profile, grid.overrides)
    check_profile(profile, catalogue, host)
    stages: dict[str, Stage] = {}
    unimputed = identity_imputer(host.imputers, grid.imputers) or "unimputed"  # names the data in labels

    def add(stage: Stage) -> Stage:
        return stages.setdefault(stage.key, stage)

    known = available_datasets(catalogue, host)

    several = grid.several_occlusions()

    def level(spec: str) -> str:  # a label's occlusion, where the grid has more than one
        return f" {spec}" if several else ""

    def data_stage(dataset: str, occlusion: str) -> Stage:
        entry = known[dataset]
        source = "embedded" if entry["source"] == "embedded" else sources.get(dataset)
        if source is None and entry["source"] == "plugin":
            source = _provided_folder(dataset, entry["provider"])
        if source is None:
            raise OccbenchError(
                f"dataset {dataset} needs its prepared folder: pass --data {dataset}=DIR "
                f"(made by `occbench data prepare --benchmark {dataset}`)"
            )
        settings = {"dataset": dataset, "source": source, "occlusion": occlusion,
                    "frames": profile["data"]["frames"], "synth": entry.get("synth", {})}
        # the default pipeline is left out, so a data stage keeps the key it had before there was a choice
        pipeline = profile["data"].get("pipeline", DEFAULT_PIPELINE)
        if pipeline != DEFAULT_PIPELINE:
            settings["pipeline"] = pipeline
        return add(Stage("data", f"data {dataset} {occlusion}", settings))

    def pretrain_stage(method: str, input_stage: Stage, data: Stage, split: str, seed: int) -> Stage:
        method_settings, schedule = pretrain_settings(host.methods[method], method, profile)
        owner = host.methods.owner(method)
        settings = {
            "method": method, "plugin": f"{owner.distribution} {owner.version}",
            "method_settings": method_settings,
            "pretrain": schedule, "batch_size": profile["data"]["batch_size"], "split": split, "seed": seed,
        }
        if grid.world_size > 1:  # per-rank BatchNorm statistics: not the same computation as one process
            settings["world_size"] = grid.world_size
        imputer = input_stage.settings["imputer"] if input_stage is not data else unimputed
        needs = (input_stage,) if input_stage is data else (input_stage, data)
        return add(Stage("pretrain", f"pretrain {method} {imputer} {data.settings['dataset']}/{split}"
                         f"{level(data.settings['occlusion'])} seed{seed}", settings, needs))

    def impute_stage(name: str, data: Stage, split: str, seed: int) -> Stage:
        imputer = registered_imputer(host.imputers, name)
        if imputer.identity:  # the methods pretrain on the occluded data itself
            return data
        settings = {"imputer": name, "settings": profile.get("imputers", {}).get(name, {}), "split": split,
                    "seed": seed}
        needs: tuple[Stage, ...] = (data,)
        stage1 = imputer.stage1_method(settings["settings"])
        if stage1 is not None:
            if stage1 not in host.methods:
                raise OccbenchError(f"imputer {name} asks for the stage-1 encoder of method {stage1!r}, which is not "
                                    f"installed (imputers.{name} in the profile); choose from "
                                    f"{', '.join(host.methods.names())}")
            needs = (data, pretrain_stage(stage1, data, data, split, seed))
        # The cell of its imputation-quality records (not part of the key: identical stages still collapse).
        occlusion = data.settings["occlusion"]
        cell = Cell(None, name, data.settings["dataset"], split, occlusion, QUALITY_PROTOCOL, seed, grid.profile)
        return add(Stage("impute", f"impute {name} {data.settings['dataset']}/{split}{level(occlusion)} seed{seed}",
                         settings, needs, cell))

    def side(name: str, data: Stage, split: str, seed: int) -> Stage:
        """What one side of a cell whose two occlusions differ reads: its data imputed, or as it is when
        that data has no occlusion (nothing to fill)."""
        return data if data.settings["occlusion"] == "none" else impute_stage(name, data, split, seed)

    for dataset, split in grid.datasets:
        for pretrain_occlusion, occlusion in grid.occlusion_pairs():
            data = data_stage(dataset, occlusion)
            apart = pretrain_occlusion != occlusion
            pretrain_data = data_stage(dataset, pretrain_occlusion) if apart else data
            for seed in grid.seeds:
                for imputer in grid.imputers:
                    if apart:
                        source, evaluated = (side(imputer, pretrain_data, split, seed),
                                             side(imputer, data, split, seed))
                    else:  # one imputation, read by the pretraining and the evaluation
                        source = evaluated = impute_stage(imputer, data, split, seed)
                    on = f"{level(occlusion)}" + (f" (pretrained on {pretrain_occlusion})" if apart else "")
                    for method in grid.methods:
                        pretrain = pretrain_stage(method, source, pretrain_data, split, seed)
                        for protocol in grid.protocols:
                            recipe = protocol_settings(profile, catalogue, method, protocol, host)
                            settings = {"protocol": protocol, "settings": recipe,
                                        "split": split, "seed": seed}
                            cell = Cell(method, imputer, dataset, split, occlusion, protocol, seed, grid.profile,
                                        pretrain_occlusion)
                            add(Stage("evaluate", f"evaluate {protocol} {method} {imputer} {dataset}/{split}{on} "
                                      f"seed{seed}", settings, (pretrain, evaluated), cell))
    planned = list(stages.values())  # insertion order: every stage is added after the stages it needs
    if grid.overrides:
        _mark_overridden(planned, grid, catalogue, host, sources)
    return planned


def _mark_overridden(stages: list[Stage], grid: Grid, catalogue: Catalogue, host, sources: dict) -> None:
    """A cell whose stage the overrides changed names them in its profile, `quick (pretrain.epochs=0)`,
    so that no table mixes it with the named profile's own results; a cell they leave unchanged (same
    key as without them) keeps the profile's name, as its record is the same file either way."""
    try:
        plain = {stage.label: stage.key for stage in build_stages(replace(grid, overrides=[]), catalogue, host,
                                                                  sources)}
    except OccbenchError:  # only valid with the overrides: every cell is theirs
        plain = {}
    profile = f"{grid.profile} ({', '.join(grid.overrides)})"
    for stage in stages:
        if stage.cell is not None and plain.get(stage.label) != stage.key:
            stage.cell = replace(stage.cell, profile=profile)


def resolved_profile(catalogue: Catalogue, host, name: str, overrides=()) -> dict:
    """The named profile as a grid runs it: the catalogue's chain, every installed method's own
    settings, then the command line's overrides."""
    methods = {method: host.methods[method] for method in host.methods.names()}
    return apply_overrides(catalogue.profile(name, methods), list(overrides))


def pretrain_settings(cls, method: str, profile: dict) -> tuple[dict, dict]:
    """(the method's settings, its pretraining schedule) in a resolved profile: its own section, its
    encoder's settings over the shared ST-GCN ones where it is an ST-GCN method, its own schedule over
    the profile's."""
    section = dict(profile.get("methods", {}).get(method, {}))
    section.pop("protocols", None)  # its evaluation settings (protocol_settings), not its pretraining's
    schedule = merge(profile["pretrain"], section.pop("pretrain", {}))
    encoder = merge(shared_encoder(cls, profile), section.pop("encoder", {}))
    if "frames" in _encoder_schema(cls):  # a transformer's tokens depend on the frame count
        encoder.setdefault("frames", profile["data"]["frames"])
    own_check = getattr(_encoder_type(cls), "check_settings", None)
    if own_check is not None:
        try:
            own_check(encoder)
        except OccbenchError as err:
            raise OccbenchError(f"methods.{method}.encoder: {err}") from None
    return {**section, "encoder": encoder}, schedule


def _encoder_schema(cls) -> dict:
    return getattr(_encoder_type(cls), "schema", {})


def _encoder_type(cls) -> type:
    """The class of a method's encoder (a class that does not say: the ST-GCN of every published method)."""
    from occbench.nn.stgcn import STGCN

    return cls.encoder_type() if hasattr(cls, "encoder_type") else STGCN


def shared_encoder(cls, profile: dict) -> dict:
    """The profile's `encoder` section: the ST-GCN settings every ST-GCN method inherits (a method with
    another encoder neither reads nor keys on them)."""
    from occbench.nn.stgcn import STGCN

    return dict(profile.get("encoder", {})) if issubclass(_encoder_type(cls), STGCN) else {}


def protocol_settings(profile: dict, catalogue: Catalogue, method: str, protocol: str, host) -> dict:
    """A protocol's settings for one method: the profile's (for linear, the recipe the method's paper
    used), under the method's own `methods.<method>.protocols.<protocol>` (a masked transformer's
    published finetuning differs from ST-GCN's)."""
    settings = profile.get("protocols", {}).get(protocol, {})
    variant = recipe_of(method, protocol, host)
    if variant is not None:
        if variant not in settings:
            raise OccbenchError(f"method {method} asks for the {protocol} recipe {variant!r}, which the profile does "
                                f"not have (protocols.{protocol} has {', '.join(settings) or 'none'})")
        settings = {**settings[variant], "variant": variant}
    own = profile.get("methods", {}).get(method, {}).get("protocols", {}).get(protocol, {})
    settings = merge(settings, own)
    decay = settings.get("layer_decay", 1)
    if decay != 1 and method in host.methods:
        encoder = _encoder_type(host.methods[method])
        if "layers" not in getattr(encoder, "capabilities", ()):
            raise OccbenchError(f"protocols.{protocol}.layer_decay={decay} for method {method}: its encoder "
                                f"{encoder.__name__} has no layers() to decay; set methods.{method}.protocols."
                                f"{protocol}.layer_decay=1")
    return settings


def recipe_of(method: str, protocol: str, host) -> str | None:
    """The named recipe a method takes of a protocol whose profile entry holds several (a protocol with a
    `default_recipe`, as the linear probe has one per published paper): the method's `recipes`, else the
    protocol's default; None for a protocol with one set of settings."""
    fn = host.protocols[protocol] if protocol in host.protocols else None
    default = getattr(fn, "default_recipe", None)
    if default is None:
        return None
    cls = host.methods[method] if method in host.methods else None
    return getattr(cls, "recipes", {}).get(protocol, default)


def check_profile(profile: dict, catalogue: Catalogue, host) -> None:
    """Every key of the resolved profile (the catalogue's, with --cfg-options) is a setting that some code
    reads, with a value it allows; else a one-line error naming it, before any stage is planned.

    A method, protocol or imputer section is checked against the plugin's own declaration when the
    plugin is installed; a name the catalogue lists but no installed plugin registers is left alone
    (its plugin may be disabled), any other name is a typo.
    """
    from occbench.engine import PRETRAIN
    from occbench.nn.stgcn import STGCN

    # data.pipeline is declared here, beside the preprocessing's list of pipelines, not in settings.DATA
    data = DATA | {"pipeline": one_of(*PIPELINES)}
    sections = {"data": data, "encoder": STGCN.schema, "pretrain": PRETRAIN,
                "methods": None, "protocols": None, "imputers": None}
    for key in profile:
        if key not in sections:
            raise OccbenchError(unknown(key, key, sections))
    for key in ("data", "encoder", "pretrain"):
        check(sections[key], profile.get(key, {}), key)
    for kind in ("protocols", "imputers", "methods"):  # a method's own protocol settings are checked merged
        entries = profile.get(kind) or {}
        for name, section in entries.items():
            where = f"{kind}.{name}"
            if name not in host.registries[kind]:
                if name in catalogue.mentioned(kind):
                    continue
                known = dict.fromkeys([*catalogue.mentioned(kind), *host.registries[kind].names()])
                raise OccbenchError(unknown(where, name, known, what=kind.removesuffix("s")))
            if not isinstance(section, dict):
                raise OccbenchError(f"{where}={section!r}: expected a mapping of settings")
            CHECKS[kind](host.registries[kind][name], section, where, profile, catalogue, host)


def _check_method(cls, section: dict, where: str, profile: dict, catalogue: Catalogue, host) -> None:
    schema = cls.settings_schema() if hasattr(cls, "settings_schema") else typed_like(cls.defaults)
    # encoder: the method's own, over the profile's shared ST-GCN section; pretrain, protocols: below
    check(schema | {"pretrain": ANY, "protocols": ANY}, section, where)
    if hasattr(cls, "check_settings"):  # what a schema cannot say (settings that must fit together)
        cls.check_settings({key: value for key, value in section.items() if key not in ("pretrain", "protocols")},
                           where.removeprefix("methods."))
    own = section.get("protocols", {})
    if not isinstance(own, dict):
        raise OccbenchError(f"{where}.protocols={own!r}: expected a mapping of protocol names to settings")
    for protocol, settings in own.items():  # checked merged over the profile's, as they run
        if protocol not in host.protocols:
            known = dict.fromkeys(host.protocols.names())
            raise OccbenchError(unknown(f"{where}.protocols.{protocol}", protocol, known, what="protocol"))
        if not isinstance(settings, dict):
            raise OccbenchError(f"{where}.protocols.{protocol}={settings!r}: expected a mapping of settings")
        schema = _protocol_schema(host.protocols[protocol])
        if schema is not None:
            merged = protocol_settings(profile, catalogue, where.removeprefix("methods."), protocol, host)
            method = where.removeprefix("methods.")
            variant = {"variant": ANY} if recipe_of(method, protocol, host) is not None else {}  # the recipe's name
            check(schema | variant, merged, f"{where}.protocols.{protocol}")
    if "pretrain" in section:  # the method's own schedule, over the profile's
        from occbench.engine import PRETRAIN

        check(PRETRAIN, merge(profile["pretrain"], section["pretrain"]), f"{where}.pretrain")


def _protocol_schema(fn) -> dict | None:
    """A protocol's declared settings (`schema`, or the names in `settings`); None: it declares none."""
    schema = getattr(fn, "schema", None)
    if schema is None and getattr(fn, "settings", None) is not None:
        schema = dict.fromkeys(fn.settings, ANY)
    return schema


def _check_protocol(fn, section: dict, where: str, profile: dict, catalogue: Catalogue, host) -> None:
    schema = _protocol_schema(fn)
    if schema is None:
        return
    protocol = where.removeprefix("protocols.")
    if getattr(fn, "default_recipe", None) is not None:  # one recipe per published probe a method names
        variants = {recipe_of(name, protocol, host) for name in host.methods.names()}
        # and those the catalogue file itself holds (for methods whose plugin is not installed or disabled)
        variants |= {recipe for link in catalogue.profiles.values()
                     for recipe in (link.get("protocols") or {}).get(protocol) or {}}
        for variant, recipe in section.items():
            if variant not in variants:
                raise OccbenchError(unknown(f"{where}.{variant}", variant, dict.fromkeys(sorted(variants))))
            check(schema, recipe, f"{where}.{variant}")
        return
    check(schema, section, where)


def _check_imputer(imputer, section: dict, where: str, profile: dict, catalogue: Catalogue, host) -> None:
    from occbench.impute import registered_imputer

    registered_imputer(host.imputers, where.removeprefix("imputers.")).check_settings(section, where)


CHECKS = {"methods": _check_method, "protocols": _check_protocol, "imputers": _check_imputer}
