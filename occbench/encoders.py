"""The encoder contract: what occbench asks of every method's encoder, built-in or a plugin's own.

An encoder is an ``nn.Module`` with

* ``feature_dim``: the width of its features;
* ``forward(x, mask=None)`` -> ``(N, feature_dim)``, where ``x`` is float ``(N, 3, T, 25, M)`` joint
  coordinates (0 where a joint is not visible) and ``mask`` bool ``(N, T, 25, M)``, True where the joint
  is visible (None: every joint is). occbench passes the mask everywhere it calls an encoder:
  pretraining, feature extraction, every protocol, the KNN imputer's embedding. An encoder may ignore
  it (the published ST-GCN sees the zeros) or use it (a masked transformer leaves occluded joints out);
* ``schema`` (optional): its constructor settings and their types (``occbench.settings``), which a
  profile's ``methods.<name>.encoder`` section may set; and ``check_settings(settings)`` (optional), for
  what a schema cannot say (a segment length that must divide the frame count), called on the resolved
  settings when the grid is planned.

A method may need more of its encoder; it names these capabilities in ``Method.requires`` and an
encoder declares what it offers in its class attribute ``capabilities``:

* ``"feature_map"``: ``feature_map(x, mask=None)`` -> ``(N*M, C, T', V')`` before pooling, and
  ``pool(feature_map, persons)`` -> ``(N, C)`` (AimCLR's attention drop works between the two);
* ``"ignore_joints"``: ``forward(x, mask=None, ignore_joints=[...])`` removes those joints from the
  computation (PSTL's and OPSTL's spatial view);
* ``"layers"``: ``layers()`` -> lists of its parameters from the input to the output, each parameter in
  exactly one (a transformer: the embeddings, each block, the final norm), which is what the finetune
  protocols' layer-wise learning-rate decay (``layer_decay``) scales by depth.

A method whose encoder lacks a capability it requires is a one-line error when the method is built.

What evaluation needs of a pretraining is its `FeatureEncoder`: the streams' encoders, rebuilt from the
``spec`` saved beside their weights (`save`, `load`), without the method around them (its queues,
key encoders, projectors).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from occbench.errors import OccbenchError, brief

CAPABILITIES = {
    "feature_map": "feature_map(x, mask=None) -> (N*M, C, T', V') and pool(feature_map, persons) -> (N, C)",
    "ignore_joints": "forward(x, mask=None, ignore_joints=[...]) without those joints",
    "layers": "layers() -> lists of its parameters from input to output",
}


def require(encoder: nn.Module, capabilities, method: str) -> None:
    """Raise a one-line error when `encoder` does not declare every capability `method` needs."""
    offered = set(getattr(encoder, "capabilities", ()))
    for capability in capabilities:
        if capability not in CAPABILITIES:
            raise OccbenchError(f"method {method} requires {capability!r}, which is no encoder capability; "
                                f"the capabilities are {', '.join(CAPABILITIES)}")
        if capability not in offered:
            raise OccbenchError(f"method {method} needs an encoder with {capability!r} ({CAPABILITIES[capability]}); "
                                f"{type(encoder).__name__} does not declare it in its `capabilities`")


def to_stream(x: torch.Tensor, stream: str, mask: torch.Tensor | None = None):
    """The joint, motion (frame difference) or bone (joint minus parent) stream of (N, 3, T, V, M) data,
    and its visibility: (values, mask).

    A motion or bone vector is visible when both of its joints are, and 0 otherwise, so an occluded
    joint's 0 does not turn into a spurious jump.
    """
    from occbench.data.preprocess import bone, motion

    if stream == "joint":
        return x, mask
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}: use one of {', '.join(STREAMS)}")
    derive = motion if stream == "motion" else bone
    return (derive(x), None) if mask is None else derive(x, mask)


STREAMS = ("joint", "motion", "bone")


class FeatureEncoder(nn.Module):
    """What the protocols see: (N, 3, T, 25, M) joint data and its mask -> (N, feature_dim), the streams'
    features concatenated."""

    def __init__(self, encoders: nn.ModuleDict, spec: dict | None = None):
        super().__init__()
        self.encoders = encoders
        self.spec = spec  # how to build it again (`save`, `load`); None: not rebuildable
        self.feature_dim = sum(encoder.feature_dim for encoder in encoders.values())
        # every stream's encoder is one class with one set of settings: what one offers, all do
        offered = getattr(next(iter(encoders.values())), "capabilities", ())
        self.capabilities = frozenset(offered) & {"layers"}  # the one FeatureEncoder passes on

    def layers(self) -> list[list[nn.Parameter]]:
        """The streams' layers side by side: layer i of every stream in group i."""
        per_stream = [encoder.layers() for encoder in self.encoders.values()]
        return [[p for layer in group for p in layer] for group in zip(*per_stream, strict=True)]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        features = []
        for stream, encoder in self.encoders.items():
            values, visible = to_stream(x, stream, mask)
            features.append(encoder(values, mask=visible))
        return torch.cat(features, dim=1)


def spec_of(encoder_class: type, settings: dict, streams) -> dict:
    """What `build` needs to make a FeatureEncoder again: the encoder class (importable), its constructor
    settings and the streams."""
    return {"class": f"{encoder_class.__module__}:{encoder_class.__qualname__}", "settings": dict(settings),
            "streams": list(streams)}


def build(spec: dict) -> FeatureEncoder:
    """A FeatureEncoder from its spec, with fresh weights."""
    module, _, name = spec["class"].partition(":")
    try:
        cls = importlib.import_module(module)
        for part in name.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError) as err:
        raise OccbenchError(f"encoder class {spec['class']}: cannot import it ({brief(err)}); install the plugin that "
                            "provides it") from None
    return FeatureEncoder(nn.ModuleDict({stream: cls(**spec["settings"]) for stream in spec["streams"]}), spec)


def save(encoder: FeatureEncoder, path: str | Path) -> None:
    """The weights and the spec in one file, so that `load` needs nothing else."""
    torch.save({"spec": encoder.spec, "state_dict": encoder.state_dict()}, path)


def load(path: str | Path, map_location="cpu") -> FeatureEncoder:
    """A FeatureEncoder saved by `save`."""
    saved = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(saved, dict) or not isinstance(saved.get("spec"), dict) or "state_dict" not in saved:
        raise OccbenchError(f"{path}: not an occbench encoder file (no spec and weights); pretrain it again")
    encoder = build(saved["spec"])
    encoder.load_state_dict(saved["state_dict"])
    return encoder
