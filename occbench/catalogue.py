"""The benchmark catalogue (occbench/registry.yaml, or a copy given with --registry): loaded, validated,
and resolved into mmengine Configs.

Validation is strict on purpose: a typo in a key would otherwise silently fall back to a default and
produce a number that is not what its record says.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass
from pathlib import Path

import yaml

from occbench import paths
from occbench.errors import OccbenchError

# section: (required fields, optional fields) of each entry
ENTRY_FIELDS = {
    "datasets": ({"title", "source", "splits"}, {"citation", "samples", "split_sizes", "synth"}),
    "occlusions": ({"title"}, {"citation"}),
    "suites": (
        {"title", "profile", "datasets", "occlusion", "methods", "imputers", "protocols", "seeds"},
        {"pretrain_occlusion", "transfer"},
    ),
}
PROFILE_FIELDS = {"_base_", "data", "encoder", "pretrain", "methods", "protocols", "imputers"}
DATASET_SOURCES = {"embedded", "prepared"}


@dataclass
class Catalogue:
    path: Path
    datasets: dict
    occlusions: dict
    profiles: dict
    suites: dict

    def mentioned(self, kind: str) -> list[str]:
        """The methods, imputers or protocols (`kind`) the file names, in its suites and its profiles, in
        order of first mention. They need not be installed: a plugin may be disabled, and its settings
        in a profile are then left alone; what they are is their plugins' to say (title, order, ...)."""
        found = [name for suite in self.suites.values() if suite[kind] != "all" for name in suite[kind]]
        found += [name for profile in self.profiles.values() for name in profile.get(kind) or {}]
        return list(dict.fromkeys(found))

    def chain(self, name: str) -> list[str]:
        """The profile's `_base_` chain, base first, the profile last (`quick`: paper, quick)."""
        if name not in self.profiles:
            raise OccbenchError(f"unknown profile {name!r}: choose from {', '.join(self.profiles)} ({self.path})")
        chain, current = [], name
        while current is not None:
            if current in chain:
                raise OccbenchError(f"{self.path}: profiles.{name}: _base_ chain loops through {current!r}")
            chain.append(current)
            current = self.profiles[current].get("_base_")
        return chain[::-1]

    def profile(self, name: str, methods: dict | None = None) -> dict:
        """The profile with its `_base_` chain merged in (base first). `methods`: {name: method class}
        whose own `profiles` (the settings a plugin ships for each named profile) go under the
        catalogue's: a method brings its settings with it, and a catalogue may still override them."""
        merged: dict = {}
        for link in self.chain(name):
            merged = merge(merged, {k: v for k, v in self.profiles[link].items() if k != "_base_"})
        for method, cls in (methods or {}).items():
            own: dict = {}
            for link in self.chain(name):
                own = merge(own, getattr(cls, "profiles", {}).get(link, {}))
            if own:
                merged.setdefault("methods", {})[method] = merge(own, merged.get("methods", {}).get(method, {}))
        return merged

    def suite(self, name: str) -> dict:
        if name not in self.suites:
            raise OccbenchError(f"unknown suite {name!r}: choose from {', '.join(self.suites)} ({self.path})")
        return self.suites[name]


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    path = Path(path).expanduser() if path else paths.CATALOGUE
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise OccbenchError(f"{path}: cannot read the registry ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise OccbenchError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    _validate(path, raw)
    return Catalogue(path=path, **raw)


def _validate(path: Path, raw) -> None:
    def fail(key: str, problem: str):
        raise OccbenchError(f"{path}: {key}: {problem}")

    if not isinstance(raw, dict):
        fail("(top)", "expected a mapping of sections")
    sections = set(ENTRY_FIELDS) | {"profiles"}
    for key in raw:
        if key not in sections:
            fail(key, f"unknown section; expected one of {', '.join(sorted(sections))}")
    for section in sections:
        if not isinstance(raw.get(section), dict) or not raw[section]:
            fail(section, "missing or empty section")
    for section, (required, optional) in ENTRY_FIELDS.items():
        for name, entry in raw[section].items():
            key = f"{section}.{name}"
            if not isinstance(entry, dict):
                fail(key, "expected a mapping")
            for field in entry:
                if field not in required | optional:
                    fail(f"{key}.{field}", f"unknown key; allowed: {', '.join(sorted(required | optional))}")
            for field in sorted(required - set(entry)):
                fail(f"{key}.{field}", "missing required field")
    for name, entry in raw["datasets"].items():
        if entry["source"] not in DATASET_SOURCES:
            fail(f"datasets.{name}.source", f"must be one of {', '.join(sorted(DATASET_SOURCES))}")
    for name, profile in raw["profiles"].items():
        _validate_profile(raw, f"profiles.{name}", profile, fail)
    for name, suite in raw["suites"].items():
        _validate_suite(raw, f"suites.{name}", suite, fail)


def _validate_profile(raw: dict, key: str, profile, fail) -> None:
    if not isinstance(profile, dict):
        fail(key, "expected a mapping")
    for field in profile:
        if field not in PROFILE_FIELDS:
            fail(f"{key}.{field}", f"unknown key; allowed: {', '.join(sorted(PROFILE_FIELDS))}")
    base = profile.get("_base_")
    if base is not None and base not in raw["profiles"]:
        fail(f"{key}._base_", f"unknown profile {base!r}")
    for section in ("methods", "protocols", "imputers"):  # their names are the plugins' (checked when planned)
        if not isinstance(profile.get(section) or {}, dict):
            fail(f"{key}.{section}", "expected a mapping of names to settings")


def _validate_suite(raw: dict, key: str, suite: dict, fail) -> None:
    if suite["profile"] not in raw["profiles"]:
        fail(f"{key}.profile", f"unknown profile {suite['profile']!r}")
    # Occlusion specs (`random@0.3`): their kind is checked here, their severity when the grid is planned
    # (occbench.plan.occlusion_spec), so that loading the catalogue needs no numeric code.
    occlusion = suite["occlusion"]
    if occlusion == []:
        fail(f"{key}.occlusion", "expected one occlusion spec or a list of them, e.g. [random@0.1, random@0.3]")
    for spec in occlusion if isinstance(occlusion, list) else [occlusion]:
        _check_occlusion_kind(raw, f"{key}.occlusion", spec, fail)
    if "pretrain_occlusion" in suite:
        _check_occlusion_kind(raw, f"{key}.pretrain_occlusion", suite["pretrain_occlusion"], fail)
    transfer = suite.get("transfer", [])
    if not isinstance(transfer, list):
        fail(f"{key}.transfer", "expected a list of {pretrain: SPEC, evaluate: SPEC}")
    for index, pair in enumerate(transfer):
        where = f"{key}.transfer[{index}]"
        if not isinstance(pair, dict) or set(pair) != {"pretrain", "evaluate"}:
            fail(where, f"{pair!r}: expected {{pretrain: SPEC, evaluate: SPEC}}, e.g. {{pretrain: none, "
                        "evaluate: realistic}")
        for side in ("pretrain", "evaluate"):
            _check_occlusion_kind(raw, f"{where}.{side}", pair[side], fail)
    for item in suite["datasets"]:
        dataset, _, split = str(item).partition("/")
        if dataset not in raw["datasets"] or split not in raw["datasets"][dataset]["splits"]:
            fail(f"{key}.datasets", f"{item!r} is not a known dataset/split")
    for section in ("methods", "imputers", "protocols"):  # names of plugins: checked against those installed
        names = suite[section]
        if names != "all" and (not isinstance(names, list) or not all(isinstance(name, str) for name in names)):
            fail(f"{key}.{section}", "expected a list of names, or all")


def _check_occlusion_kind(raw: dict, key: str, spec, fail) -> None:
    if not isinstance(spec, str):
        fail(key, f"{spec!r}: expected an occlusion spec (a name), e.g. realistic or random@0.3")
    kind = spec.partition("@")[0].strip()
    if kind not in raw["occlusions"]:
        fail(key, f"unknown occlusion {kind!r}: choose from {', '.join(raw['occlusions'])}")


def merge(base: dict, override: dict) -> dict:
    """Deep merge: mappings merge key by key, anything else in `override` replaces. A mapping whose
    `type` differs (an Adam optimizer over an SGD one) replaces the old one whole: keys of one type
    mean nothing to another (SGD's momentum is not an Adam argument)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and value.get("type", old.get("type")) == old.get("type"):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(config: dict, options: list[str] | None) -> dict:
    """`--cfg-options key.sub=value ...` onto a resolved config (values like 1e-3, [1, 2], true, adam)."""
    from mmengine.config import Config

    if not options:
        return config
    parsed = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise OccbenchError(f"--cfg-options {option!r}: expected key=value, e.g. pretrain.epochs=10")
        parsed[key] = _parse_value(option, value)
    resolved = Config(copy.deepcopy(config))
    resolved.merge_from_dict(parsed)
    return resolved.to_dict()


def _parse_value(option: str, value: str):
    try:
        return ast.literal_eval(value)  # numbers (1e-3 too), lists, tuples, dicts, True/None
    except (ValueError, SyntaxError):
        pass
    try:
        return yaml.safe_load(value)  # true/false/null and bare strings
    except yaml.YAMLError:
        raise OccbenchError(f"--cfg-options {option!r}: cannot read the value; quote strings, e.g. key='a b'") from None
