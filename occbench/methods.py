"""What method plugins share: the base class, momentum pairs, MoCo queues, the Barlow Twins loss.

A method file (plugins/<method>.py) subclasses `Method` (or `MoCoMethod`) and adds only its own views
and loss, in the manner of solo-learn. The base class owns the encoders, the optimiser's parameter
groups, momentum updates and feature extraction for the evaluation protocols.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from occbench import distributed
from occbench.data.batches import Batch
from occbench.encoders import FeatureEncoder, require, spec_of, to_stream
from occbench.errors import OccbenchError
from occbench.settings import check, integer, number, one_of, typed_like


def mlp_head(dims: tuple[int, ...]) -> nn.Sequential:
    """Linear-ReLU-...-Linear, e.g. (256, 256, 128) for MoCo v2's projection head."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Method(nn.Module):
    """Base of every pretraining method.

    settings: the resolved method settings (the class's `defaults` overridden by the profile and the
    command line); settings["encoder"] holds its encoder's constructor settings.

    `encoder_class` is the class of each stream's encoder (the ST-GCN of every published method unless
    a method names another); it follows the encoder contract (occbench/encoders.py) and `requires` names
    the optional capabilities the method uses.
    """

    name: ClassVar[str] = ""
    # How tables name it (each record carries these, so `occbench table` needs no plugin): its title, the
    # paper it comes from, and its place in a table (ascending; ties by title; the built-ins: the paper's
    # order, 10, 20, ...). `imputed_titles`: {imputer: title} where the method on that imputer's data is
    # a method of its own (OPSTL with the KNN imputer is IosPSTL); the summary layout (Table I) then shows
    # it with that imputer only, under that title. `colour` (#rrggbb): its colour in every picture of
    # `occbench plot`, whichever other methods a picture shows; without one it takes a palette colour no
    # method of the picture declares, which can differ between pictures of different methods.
    title: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    order: ClassVar[float] = 1000
    imputed_titles: ClassVar[dict[str, str]] = {}
    colour: ClassVar[str] = ""
    # The named recipe it takes of a protocol with several ({protocol: recipe}; the profile's
    # protocols.<protocol>.<recipe>): the probe of the method's own paper. A protocol it leaves out gives its
    # `default_recipe`.
    recipes: ClassVar[dict[str, str]] = {}
    streams: ClassVar[tuple[str, ...]] = ("joint",)
    defaults: ClassVar[dict] = {}
    # Types and ranges of the settings in `defaults` (occbench.settings); one left out is typed like its default.
    schema: ClassVar[dict] = {}
    # The method's settings in each named profile of the catalogue (at least "paper", its published ones,
    # and "quick"), over `defaults`; a profile inherits its base's (quick: paper's) and the catalogue's
    # own `profiles.<name>.methods.<method>` go over these.
    profiles: ClassVar[dict[str, dict]] = {}
    encoder_class: ClassVar[type | None] = None  # None: occbench.nn.stgcn.STGCN
    requires: ClassVar[tuple[str, ...]] = ()  # encoder capabilities (occbench.encoders.CAPABILITIES)

    def __init__(self, settings: dict | None = None):
        super().__init__()
        self.check_settings(settings or {})
        self.settings = {**self.defaults, **(settings or {})}
        self.encoders = nn.ModuleDict({stream: self.build_encoder() for stream in self.streams})
        for encoder in self.encoders.values():
            require(encoder, self.requires, self.name or type(self).__name__)

    @classmethod
    def encoder_type(cls) -> type:
        from occbench.nn.stgcn import STGCN

        return cls.encoder_class or STGCN

    @classmethod
    def settings_schema(cls) -> dict:
        """Every setting the method reads; `encoder` holds its encoder's (its class's `schema`)."""
        return typed_like(cls.defaults, cls.schema) | {"encoder": getattr(cls.encoder_type(), "schema", {})}

    @classmethod
    def check_settings(cls, settings: dict, name: str = "") -> None:
        """A setting the method does not have is a typo that would silently change nothing; a value of the
        wrong type or out of range would fail (or quietly misbehave) deep in training."""
        check(cls.settings_schema(), settings, f"methods.{name or cls.name or cls.__name__}")

    def build_encoder(self) -> nn.Module:
        """One stream's encoder: `encoder_class` built from settings["encoder"]."""
        return self.encoder_type()(**self.settings.get("encoder", {}))

    def training_step(self, batch: Batch, epoch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The losses of one batch; "loss" is what the optimiser minimises."""
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        return [{"name": "all", "params": [p for p in self.parameters() if p.requires_grad]}]

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) modules whose target follows the online one by exponential moving average."""
        return []

    @torch.no_grad()
    def after_step(self) -> None:
        momentum = self.settings.get("momentum")
        for online, target in self.momentum_pairs():
            for p_online, p_target in zip(online.parameters(), target.parameters(), strict=True):
                p_target.mul_(momentum).add_(p_online.detach(), alpha=1 - momentum)

    def feature_encoder(self) -> FeatureEncoder:
        """The streams' encoders, with the spec that builds them again without the method."""
        built = {type(encoder) for encoder in self.encoders.values()}
        spec = spec_of(self.encoder_type(), self.settings.get("encoder", {}), self.streams)
        return FeatureEncoder(self.encoders, spec if built == {self.encoder_type()} else None)


class MoCoMethod(Method):
    """MoCo v2 per stream (SkeletonCLR and its descendants): query encoder + MLP head, momentum key
    encoder, a queue of normalised keys, InfoNCE against the queue."""

    defaults: ClassVar[dict] = {"queue_size": 32768, "momentum": 0.999, "temperature": 0.07, "feature_dim": 128,
                                "init": "published"}
    # paper: MoCo v2 as published by SkeletonCLR. quick: a queue the embedded data can fill, and
    # init pytorch: from the published N(0, 0.02) initialisation MoCo's embeddings all point one way and
    # the loss sits at log(K + 1) for far more steps than the quick profile has (docs/results.md).
    profiles: ClassVar[dict] = {
        "paper": {"queue_size": 32768, "momentum": 0.999, "temperature": 0.07, "feature_dim": 128},
        "quick": {"queue_size": 512, "init": "pytorch"},
    }
    schema: ClassVar[dict] = {"queue_size": integer(1), "momentum": number(0, 1), "temperature": number(0, above=True),
                              "feature_dim": integer(1), "init": one_of("published", "pytorch")}

    def __init__(self, settings: dict | None = None):
        super().__init__(settings)
        dim = self.settings["feature_dim"]
        hidden = next(iter(self.encoders.values())).feature_dim
        self.heads = nn.ModuleDict({s: mlp_head((hidden, hidden, dim)) for s in self.streams})
        # The published MoCo code bases initialise every conv/linear N(0, 0.02) and BN weights N(1, 0.02).
        # From there a short run collapses (every embedding ends up pointing one way and the loss sits at
        # log(K + 1); docs/results.md), while from torch's default initialisation the same run spreads the
        # embeddings and learns. init "pytorch" is that.
        if self.settings["init"] not in ("published", "pytorch"):
            raise OccbenchError(f"init {self.settings['init']!r}: use published or pytorch")
        if self.settings["init"] == "published":
            from occbench.nn.stgcn import init_weights

            self.apply(init_weights)
        self.key_encoders = copy.deepcopy(self.encoders).requires_grad_(False)
        self.key_heads = copy.deepcopy(self.heads).requires_grad_(False)
        for stream in self.streams:
            queue = F.normalize(torch.randn(self.settings["queue_size"], dim), dim=1)
            self.register_buffer(f"queue_{stream}", queue)
            self.register_buffer(f"queue_ptr_{stream}", torch.zeros((), dtype=torch.long))

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoders, self.key_encoders), (self.heads, self.key_heads)]

    def query(self, x: torch.Tensor, stream: str, mask: torch.Tensor | None = None) -> torch.Tensor:
        values, visible = to_stream(x, stream, mask)
        return F.normalize(self.heads[stream](self.encoders[stream](values, mask=visible)), dim=1)

    @torch.no_grad()
    def key(self, x: torch.Tensor, stream: str, mask: torch.Tensor | None = None) -> torch.Tensor:
        values, visible = to_stream(x, stream, mask)
        return F.normalize(self.key_heads[stream](self.key_encoders[stream](values, mask=visible)), dim=1)

    def queue(self, stream: str) -> torch.Tensor:
        return getattr(self, f"queue_{stream}")

    def logits(self, q: torch.Tensor, k: torch.Tensor, stream: str) -> torch.Tensor:
        """[q.k+, q.queue] / T: column 0 is the positive."""
        positive = (q * k).sum(dim=1, keepdim=True)
        # A copy: backward needs the queue as it was, and enqueue() overwrites rows in place.
        negatives = q @ self.queue(stream).clone().T
        return torch.cat([positive, negatives], dim=1) / self.settings["temperature"]

    @torch.no_grad()
    def enqueue(self, k: torch.Tensor, stream: str) -> None:
        k = distributed.gather(k)  # data-parallel ranks share one queue of the global batch's keys
        queue, ptr = self.queue(stream), getattr(self, f"queue_ptr_{stream}")
        size = len(queue)
        rows = (ptr + torch.arange(len(k), device=k.device)) % size
        queue[rows] = k.to(queue.dtype)  # keys are bfloat16 under autocast; the queue stays float32
        ptr.copy_((ptr + len(k)) % size)


def mining_started(epoch: int, start: int) -> bool:
    """True from 0-based epoch `start` on: the published code bases count epochs from 1 and switch when
    `epoch <= start` fails, i.e. at their epoch start + 1, which is occbench's epoch `start`."""
    return epoch + 1 > start


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def multi_positive_nce(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """-mean over the positive set of log softmax(logits); positives: bool (N, K) (column 0 included)."""
    log_prob = F.log_softmax(logits, dim=1)
    return -((log_prob * positives).sum(1) / positives.sum(1)).mean()


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float) -> torch.Tensor:
    """sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2 with C the batch-normalised cross-correlation.

    Under data parallelism C is taken over the global batch, as in a single process.
    """
    z1, z2 = distributed.gather_with_grad(z1), distributed.gather_with_grad(z2)
    n = len(z1)
    c = F.batch_norm(z1, None, None, training=True).T @ F.batch_norm(z2, None, None, training=True) / n
    on_diagonal = (torch.diagonal(c) - 1).pow(2).sum()
    off_diagonal = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diagonal + lambd * off_diagonal


class MaskedAutoencoder(Method):
    """A masked autoencoder over the skeleton transformer's (joint, segment) tokens (SkeletonMAE, MAMP).

    Per sequence a `mask_ratio` share of the tokens is masked; the encoder sees the kept tokens only
    (that is what makes an MAE cheap), a light decoder puts a learned mask token in every other place,
    adds its own position embeddings and predicts each token's target; the loss is the mean squared
    error over the masked tokens that have a target, each target standardised over its own values when
    `normalize_target` (MAMP's ``norm_skes_loss``). A subclass gives its masking (`masking_noise`) and
    its target (`target`).

    Occlusion, which no published MAE models: a token that is not visible (its joint occluded in a frame
    of its segment) is always masked and never a target, so the encoder never sees an occluded joint's
    fake zero and the decoder is never asked to reconstruct one.
    """

    defaults: ClassVar[dict] = {"mask_ratio": 0.9, "decoder_width": 256, "decoder_depth": 3, "decoder_heads": 8,
                                "normalize_target": True}
    schema: ClassVar[dict] = {"mask_ratio": number(0, 1, below=True), "decoder_width": integer(1),
                              "decoder_depth": integer(0), "decoder_heads": integer(1)}

    @classmethod
    def encoder_type(cls) -> type:
        from occbench.nn.transformer import SkeletonTransformer

        return cls.encoder_class or SkeletonTransformer

    @classmethod
    def check_settings(cls, settings: dict, name: str = "") -> None:
        super().check_settings(settings, name)
        merged = {**cls.defaults, **settings}
        if merged["decoder_width"] % merged["decoder_heads"]:
            raise OccbenchError(f"methods.{name or cls.name}: decoder_width={merged['decoder_width']} is not a "
                                f"multiple of decoder_heads={merged['decoder_heads']}")

    def __init__(self, settings: dict | None = None):
        from occbench.nn.transformer import Block

        super().__init__(settings)
        s, encoder = self.settings, self.encoders[self.streams[0]]
        width = s["decoder_width"]
        self.decoder_embed = nn.Linear(encoder.feature_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(width))
        self.decoder_temporal = nn.Parameter(torch.zeros(encoder.temporal_position.shape[0], 1, width))
        self.decoder_spatial = nn.Parameter(torch.zeros(1, encoder.joints, width))
        self.decoder = nn.ModuleList(Block(width, s["decoder_heads"], 4.0) for _ in range(s["decoder_depth"]))
        self.decoder_norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, encoder.segment * 3)
        for parameter in (self.mask_token, self.decoder_temporal, self.decoder_spatial):
            nn.init.trunc_normal_(parameter, std=0.02)

    def masking_noise(self, patches: torch.Tensor, visible: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, L) scores: the lowest are kept; invisible tokens are masked whatever their score."""
        raise NotImplementedError

    def target(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, P) what the decoder predicts for each token, and (B, L) which tokens have one (none
        that involves an invisible joint)."""
        raise NotImplementedError

    def training_step(self, batch, epoch, generator):
        encoder = self.encoders[self.streams[0]]
        patches, visible = encoder.tokens(batch.x), encoder.token_visibility(batch.mask)
        b, length, _ = patches.shape
        count = max(1, round(length * (1 - self.settings["mask_ratio"])))
        noise = self.masking_noise(patches, visible, generator).masked_fill(~visible, float("inf"))
        kept = noise.argsort(dim=1)[:, :count]  # (B, K)
        kept_visible = visible.gather(1, kept)
        tokens = encoder.embed_tokens(patches)
        encoded = encoder.encode(tokens.gather(1, kept[..., None].expand(-1, -1, tokens.shape[-1])), kept_visible)
        fill = torch.where(kept_visible[..., None], self.decoder_embed(encoded), self.mask_token)
        full = self.mask_token.expand(b, length, -1).scatter(1, kept[..., None].expand_as(fill), fill)
        full = full + (self.decoder_temporal + self.decoder_spatial).reshape(length, -1)
        for block in self.decoder:
            full = block(full)
        prediction = self.head(self.decoder_norm(full))
        target, has_target = self.target(batch.x, batch.mask)
        if self.settings["normalize_target"]:
            target = (target - target.mean(dim=-1, keepdim=True)) / (target.var(dim=-1, keepdim=True) + 1e-6).sqrt()
        masked = torch.ones_like(visible).scatter(1, kept, False) & has_target  # masked tokens with a target
        error = (prediction - target).pow(2).mean(dim=-1)
        loss = (error * masked).sum() / masked.sum().clamp_min(1)
        return {"loss": loss, "masked_targets": masked.sum(dim=1).float().mean().detach()}


def uniform(shape: tuple, generator: torch.Generator | None, device) -> torch.Tensor:
    """U[0, 1) drawn with the engine's generator, on `device`."""
    where = generator.device if generator is not None else "cpu"
    return torch.rand(shape, generator=generator, device=where).to(device)
