"""CrosSCLR (Li et al., CVPR 2021): cross-view contrastive learning, here as 2s-CrosSCLR (joint + motion).

One MoCo v2 branch per stream (own query/key encoders, MLP heads and queue of 32768 keys, momentum
0.999, temperature 0.07). Both streams see the same two normal views (temporal crop + shear 0.5, per
sample); motion (and bone for `CrosSCLR3s`) is derived from the augmented joint views.

* Phase 1, the first `cross_epoch` (150) epochs: the sum of the streams' InfoNCE losses.
* Phase 2, cross-view consistent knowledge mining (`topk` 1, `context` True): for stream u and each
  partner v, the positives of u's query are its own key and the top-k queue entries ranked by v's
  similarities (the streams enqueue in lockstep, so queue slot i holds the same sample in every
  stream); with context, the element-wise product of u's and v's queue similarities is appended as
  K more logits whose same top-k positions are positive too. Pair loss = -mean over the positives of
  log softmax(logits / T); a stream's loss is the mean over its partners; the total is the sum over
  the streams. The context product is not detached (as in the reference), so each pair's loss also
  trains the partner's query encoder.

Epochs: occbench counts from 0, the reference from 1 and mines when its `epoch <= cross_epoch` test
fails, so occbench epoch e (the reference's e + 1) mines from e == cross_epoch on (`mining_started`).

Fixed on purpose (the reference's quirks, methods.md §3; `published_quirks: true` brings them back):

* in phase 2 the reference momentum-updates only the motion key encoder, so the joint (and bone) key
  encoders freeze at epoch 150; here every key encoder keeps following its query encoder;
* the reference's motion/bone MLP heads end in the joint's whole head (its Linear-ReLU-Linear, put
  behind their own Linear-ReLU; the key heads likewise), so the streams share a projector; here every
  stream has its own Linear-ReLU-Linear head. Under the quirks the shared tail is momentum-updated
  once per stream and step, as in the reference.

Evaluation features (`Method.feature_encoder`): the streams' 256-d encoder features concatenated (512-d
for J+M); a linear classifier on them equals the reference's "all" evaluation, which averages one
linear head per stream.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from occbench.augment import normal_view
from occbench.hookspecs import hookimpl
from occbench.methods import MoCoMethod, info_nce, mining_started, multi_positive_nce
from occbench.settings import integer, number


def cross_view_loss(
    pos: torch.Tensor,
    neg: torch.Tensor,
    partner_neg: torch.Tensor,
    temperature: float,
    topk: int = 1,
    context: bool = True,
) -> torch.Tensor:
    """One (stream, partner) pair of the knowledge mining.

    pos (N, 1): the stream's query-key similarities; neg (N, K): its query against its own queue;
    partner_neg (N, K): the partner's query against the partner's queue (same slots, same samples).
    """
    mined = torch.zeros_like(neg, dtype=torch.bool).scatter_(1, partner_neg.topk(topk, dim=1).indices, True)
    own = torch.ones_like(pos, dtype=torch.bool)
    if context:
        logits, positives = torch.cat([pos, neg, neg * partner_neg], 1), torch.cat([own, mined, mined], 1)
    else:
        logits, positives = torch.cat([pos, neg], 1), torch.cat([own, mined], 1)
    return multi_positive_nce(logits / temperature, positives)


class CrosSCLR(MoCoMethod):
    name = "crossclr"
    title = "CrosSCLR"
    citation = "Li et al., CVPR 2021"
    order = 20
    colour = "#D55E00"
    streams = ("joint", "motion")
    defaults = {
        **MoCoMethod.defaults,
        "shear_amplitude": 0.5,
        "cross_epoch": 150,
        "topk": 1,
        "context": True,
        "published_quirks": False,
    }
    schema = {**MoCoMethod.schema, "shear_amplitude": number(0), "cross_epoch": integer(0), "topk": integer(1)}
    # quick: mining from epoch 2 of its 4, so that both phases run
    profiles = {"paper": {**MoCoMethod.profiles["paper"], "cross_epoch": 150, "topk": 1},
                "quick": {**MoCoMethod.profiles["quick"], "cross_epoch": 2}}

    def __init__(self, settings: dict | None = None):
        super().__init__(settings)
        self.mining = False  # the phase of the last training step (the reference's quirks depend on it)
        if self.settings["published_quirks"]:
            hidden, shared = self.encoders["joint"].feature_dim, self.heads["joint"]
            for stream in self.streams[1:]:
                self.heads[stream] = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(inplace=True), shared)
            self.key_heads = copy.deepcopy(self.heads).requires_grad_(False)  # deepcopy keeps the sharing

    def training_step(self, batch, epoch, generator):
        s = self.settings
        query_view, query_mask = normal_view(batch.x, batch.mask, s["shear_amplitude"], generator=generator)
        key_view, key_mask = normal_view(batch.x, batch.mask, s["shear_amplitude"], generator=generator)
        self.mining = mining_started(epoch, s["cross_epoch"])
        pos, neg, keys = {}, {}, {}
        for stream in self.streams:
            q, keys[stream] = self.query(query_view, stream, query_mask), self.key(key_view, stream, key_mask)
            # a copy of the queue: enqueue below overwrites rows that backward still needs
            pos[stream], neg[stream] = (q * keys[stream]).sum(1, keepdim=True), q @ self.queue(stream).clone().T

        losses = {}
        for u in self.streams:
            if not self.mining:
                losses[u] = info_nce(torch.cat([pos[u], neg[u]], 1) / s["temperature"])
                continue
            partners = [v for v in self.streams if v != u]
            pairs = [
                cross_view_loss(pos[u], neg[u], neg[v], s["temperature"], s["topk"], s["context"]) for v in partners
            ]
            losses[u] = sum(pairs) / len(pairs)
        for stream in self.streams:
            self.enqueue(keys[stream], stream)
        return {"loss": sum(losses.values()), **{f"loss_{u}": loss.detach() for u, loss in losses.items()}}

    def momentum_pairs(self):
        if not self.settings["published_quirks"]:
            return super().momentum_pairs()
        updated = ("motion",) if self.mining else self.streams
        online = [nn.ModuleList([self.encoders[u], self.heads[u]]) for u in updated]
        target = [nn.ModuleList([self.key_encoders[u], self.key_heads[u]]) for u in updated]
        return list(zip(online, target, strict=True))


class CrosSCLR3s(CrosSCLR):
    """3s-CrosSCLR: joint, motion and bone; each stream mines with both partners."""

    name = "crossclr3s"
    order = 25  # after the 2-stream model of the paper
    streams = ("joint", "motion", "bone")


@hookimpl
def occbench_register_methods(registry):
    registry.add("crossclr", CrosSCLR)
    registry.add("crossclr3s", CrosSCLR3s)
