"""Load ST-GCN encoder weights saved by occbench or by the published code bases.

Supported key layouts (the encoder's own names are the published ``net/st_gcn.py`` ones:
``A``, ``data_bn.*``, ``st_gcn_networks.{i}.gcn.conv.*``, ``st_gcn_networks.{i}.tcn.{0,2,3}.*``,
``st_gcn_networks.{i}.residual.{0,1}.*``, ``edge_importance.{i}``):

* plain, no prefix: occbench's own state dicts and PSTL/OPSTL (``torch.save(encoder.state_dict())``);
* ``encoder_q.``: SkeletonCLR / CrosSCLR / AimCLR checkpoints (pretraining and linear evaluation),
  which also hold ``encoder_q.fc.*`` (the projection or classification head), ``encoder_k.*``,
  ``queue``/``queue_ptr`` and, for 3-view CrosSCLR, ``encoder_q_motion.`` / ``encoder_q_bone.``
  encoders: everything but the chosen encoder is ignored and listed in the report;
* the same behind ``module.`` (``nn.DataParallel``) or another prefix, which is detected;
* a checkpoint dict wrapping the state dict under ``state_dict`` (mmengine, with ``meta``),
  ``model`` or ``model_state_dict``.

The widths (input channels, hidden channels, output dimension) and the presence of edge-importance
masks are read from the weights, so a full-width (hidden 64) checkpoint loads as such.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from occbench.errors import OccbenchError, brief
from occbench.nn.graph import ntu_adjacency
from occbench.nn.stgcn import STGCN

log = logging.getLogger(__name__)

# keys every ST-GCN state dict holds, used to find where the encoder sits in a larger state dict
_ANCHORS = ("data_bn.running_mean", "data_bn.weight", "st_gcn_networks.0.gcn.conv.weight")
# preferred encoder prefixes, best first (the MoCo *query* encoder, not the momentum key encoder)
_PREFERRED = ("encoder_q.", "", "module.encoder_q.", "module.", "encoder.", "backbone.", "model.")
_LAYOUTS = {
    "": "plain (occbench, PSTL/OPSTL)",
    "encoder_q.": "encoder_q (SkeletonCLR/CrosSCLR/AimCLR)",
    "module.encoder_q.": "encoder_q behind DataParallel (SkeletonCLR/CrosSCLR/AimCLR)",
    "module.": "plain behind DataParallel",
}
# parts of a published model that are not the encoder: reported as ignored, never as unexpected
_HEAD = re.compile(r"^fc(\.|$)")
_WRAPPERS = ("state_dict", "model", "model_state_dict", "net", "encoder")
# not reported as missing: the graph is fixed, and old BatchNorms had no batch counter
_OPTIONAL = re.compile(r"(^A$|num_batches_tracked$)")


@dataclass
class LoadReport:
    """What :func:`convert_state_dict` / :func:`load_encoder` did with a checkpoint's keys."""

    source: str
    layout: str
    prefix: str
    missing: list[str] = field(default_factory=list)  # encoder keys the checkpoint lacks (left as initialised)
    unexpected: list[str] = field(default_factory=list)  # keys under the encoder prefix the encoder lacks
    ignored: list[str] = field(default_factory=list)  # heads (fc), key encoders, queues, other streams
    other_encoders: list[str] = field(default_factory=list)  # prefixes of further encoders in the file
    architecture: dict = field(default_factory=dict)  # STGCN arguments read from the weights
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.missing and not self.unexpected

    def __str__(self) -> str:
        parts = [f"{self.source}: {self.layout} layout (prefix {self.prefix!r})"]
        for name in ("missing", "unexpected", "ignored"):
            keys = getattr(self, name)
            if keys:
                shown = ", ".join(keys[:6]) + (f", ... ({len(keys)} in all)" if len(keys) > 6 else "")
                parts.append(f"{name}: {shown}")
        parts += self.notes
        return "; ".join(parts)


def _describe(source) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<state dict>"


def read_checkpoint(path) -> Mapping:
    """``torch.load`` a file on CPU, weights only; arbitrary pickles only as a logged fallback."""
    path = Path(path)
    if not path.is_file():
        raise OccbenchError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only load failed" not in str(error).lower():
            raise _unreadable(path, error) from None
        # a readable pickle with more than tensors, e.g. an mmengine checkpoint whose meta holds
        # numpy or config objects: only here fall back to full unpickling
        log.warning(
            "%s holds Python objects besides tensors; loading it with weights_only=False "
            "(only do this with files you trust)",
            path,
        )
    except Exception as error:  # torch raises RuntimeError, EOFError, zipfile errors, ...
        raise _unreadable(path, error) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise _unreadable(path, error) from None


def _unreadable(path: Path, error: BaseException) -> OccbenchError:
    return OccbenchError(f"{path}: cannot read the checkpoint ({brief(error)}); is it a torch.save file?")


def _tensor_dict(obj, where: str) -> dict[str, torch.Tensor]:
    """The flat name -> tensor mapping inside a checkpoint object (unwrapping state_dict/model/...)."""
    if not isinstance(obj, Mapping):
        raise OccbenchError(f"{where}: the checkpoint is a {type(obj).__name__}, not a state dict")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if any(k.endswith(a) for k in tensors for a in _ANCHORS):
        return tensors
    for key in _WRAPPERS:
        inner = obj.get(key)
        if isinstance(inner, Mapping):
            found = _tensor_dict(inner, where)
            if found:
                return found
    return tensors


def _choose_prefix(keys, prefix: str | None, where: str) -> tuple[str, list[str]]:
    candidates = sorted({k[: -len(a)] for k in keys for a in _ANCHORS if k.endswith(a)}, key=lambda p: (len(p), p))
    if prefix is not None:
        if prefix not in candidates:
            found = ", ".join(repr(c) for c in candidates) or "none"
            raise OccbenchError(f"{where}: no encoder under prefix {prefix!r} (encoders found under: {found})")
        return prefix, [c for c in candidates if c != prefix]
    if not candidates:
        raise OccbenchError(
            f"{where}: no ST-GCN encoder weights in this checkpoint (no key ending in "
            f"{' / '.join(_ANCHORS)}); expected a state dict saved by occbench, PSTL/OPSTL or "
            "SkeletonCLR/CrosSCLR/AimCLR (encoder_q.*)"
        )
    ranked = sorted(candidates, key=lambda p: (_PREFERRED.index(p) if p in _PREFERRED else len(_PREFERRED), len(p), p))
    return ranked[0], [c for c in candidates if c != ranked[0]]


def _architecture(state: Mapping[str, torch.Tensor], num_joints: int) -> dict:
    arch = {"edge_importance": any(k.startswith("edge_importance.") for k in state)}
    if "data_bn.running_mean" in state and state["data_bn.running_mean"].numel() % num_joints == 0:
        arch["in_channels"] = state["data_bn.running_mean"].numel() // num_joints
    first = state.get("st_gcn_networks.0.gcn.conv.weight")
    if first is not None and first.dim() == 4:
        arch["hidden_channels"] = first.shape[0] // 3
    last = state.get("st_gcn_networks.9.tcn.2.weight")
    if last is not None and last.dim() == 4:
        arch["hidden_dim"] = last.shape[0]
    return arch


def convert_state_dict(source, prefix: str | None = None) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Extract the encoder from a checkpoint (path or mapping) as an occbench-layout state dict.

    ``prefix`` picks the encoder when a file holds several (e.g. ``"encoder_q_motion."``); by default
    the query encoder ``encoder_q.`` or the unprefixed one. Returns the state dict (keys as in
    :class:`~occbench.nn.stgcn.STGCN`, not yet checked against a model) and a :class:`LoadReport`
    whose ``ignored`` lists every key left out.
    """
    where = _describe(source)
    obj = read_checkpoint(source) if isinstance(source, (str, os.PathLike)) else source
    tensors = _tensor_dict(obj, where)
    chosen, others = _choose_prefix(tensors, prefix, where)
    state, ignored = {}, []
    for key, value in tensors.items():
        if not key.startswith(chosen) or any(key.startswith(o) and len(o) > len(chosen) for o in others):
            ignored.append(key)
            continue
        name = key[len(chosen):]
        if _HEAD.match(name):
            ignored.append(key)
        else:
            state[name] = value
    report = LoadReport(
        source=where,
        layout=_LAYOUTS.get(chosen, f"prefixed {chosen!r}"),
        prefix=chosen,
        ignored=sorted(ignored),
        other_encoders=others,
    )
    return state, report


def _saved_spec(source) -> dict | None:
    """The encoder spec an occbench encoder file holds (`occbench.encoders.save`), if it is one."""
    if isinstance(source, Mapping):
        saved = source
    else:
        try:
            saved = torch.load(source, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 (not a torch file of ours: convert_state_dict says what it is)
            return None
    spec = saved.get("spec") if isinstance(saved, Mapping) else None
    return spec if isinstance(spec, dict) and "class" in spec else None


def load_encoder(source, strict: bool = False, *, prefix: str | None = None) -> STGCN:
    """An :class:`~occbench.nn.stgcn.STGCN` holding the encoder weights of ``source``, in eval mode.

    ``source`` is a checkpoint path or a state dict, in occbench's layout or a published one (see the
    module docstring), with or without the ``encoder_q.`` prefix. An occbench encoder file of another
    encoder class (a plugin's) gives its `occbench.encoders.FeatureEncoder`, rebuilt from the class and
    settings saved in it. The encoder's widths follow the
    weights. Shape mismatches, unreadable files and checkpoints without encoder weights raise
    :class:`~occbench.errors.OccbenchError`; missing or unexpected keys are logged as a warning and,
    with ``strict=True``, raise. The :class:`LoadReport` is attached as ``encoder.load_report``.
    """
    spec = _saved_spec(source)
    if spec is not None and not spec["class"].startswith(f"{STGCN.__module__}:"):
        from occbench import encoders

        return encoders.load(source).eval()  # a plugin's encoder, rebuilt from its spec
    state, report = convert_state_dict(source, prefix)
    where = report.source
    arch = _architecture(state, num_joints=25)
    report.architecture = dict(arch)
    encoder = STGCN(**arch)
    own = encoder.state_dict()
    for key, value in state.items():
        if key in own and tuple(value.shape) != tuple(own[key].shape):
            raise OccbenchError(
                f"{where}: {report.prefix}{key} has shape {tuple(value.shape)} but the ST-GCN encoder "
                f"({', '.join(f'{k}={v}' for k, v in arch.items())}) expects {tuple(own[key].shape)}; "
                "this is not a checkpoint of the published ST-GCN encoder (or the file is damaged)"
            )
    report.unexpected = sorted(report.prefix + k for k in state if k not in own)
    report.missing = sorted(report.prefix + k for k in own if k not in state and not _OPTIONAL.search(k))
    loaded = {k: v for k, v in state.items() if k in own}
    encoder.load_state_dict(loaded, strict=False)
    if "A" in loaded and not torch.allclose(loaded["A"].float(), ntu_adjacency(), atol=1e-6):
        report.notes.append("its adjacency A differs from the NTU RGB+D spatial graph (loaded as saved)")
    if report.missing or report.unexpected or report.notes:
        log.warning("loading encoder weights: %s", report)
    if strict and not report.clean:
        raise OccbenchError(
            f"{where}: {len(report.missing)} missing and {len(report.unexpected)} unexpected encoder keys "
            f"({', '.join((report.missing + report.unexpected)[:4])}, ...); pass strict=False to load anyway"
        )
    encoder.load_report = report
    return encoder.eval()
