"""AimCLR (Guo et al., AAAI 2022): extreme augmentations, attention-guided drop and distribution divergence.

Single-stream MoCo v2 (joint; queue 32768, momentum 0.999, temperature 0.07, MLP head). Per sample three
inputs: x_q and x_k, normal views (temporal crop + shear 0.5), and x_e, the extreme view (the normal view,
then AimCLR's augmentations '12345': flip, rotation, noise, blur, axis mask). The key of x_k is enqueued.

* EADM (energy-based attention-guided drop, `attention_drop`) acts on the final ST-GCN feature map of x_e:
  SimAM energy y = (x - mu)^2 / (4 (var + lambda)) + 0.5 per channel over T' x V (var unbiased, lambda 1e-4),
  attention a = sigmoid(y); joints whose mean attention over channels and time is >= 0.7 are zeroed,
  then every (channel, time, joint) entry with a >= 0.7; after each of the two drops the map is rescaled
  by numel / kept, counted over the whole batch as the reference does. The plain and the dropped map are
  pooled and go through the same query head: q_e and q_ed.
* D3M: p = softmax([q.k+, q.queue] / T) of the normal query, detached; L_e = -sum p log p_e and
  L_ed = -sum p log p_ed (batch means), with p_e, p_ed the same softmax for q_e and q_ed (computed with
  log_softmax, the reference takes log(softmax)).
* Loss = InfoNCE(q) + (L_e + L_ed) / 2. From epoch `mining_epoch` on (0-based; the reference's 1-based
  `epoch <= mining_epoch` test, see `mining_started`), nearest-neighbour mining: the top-k queue entries of
  each of q, q_e and q_ed (by their queue similarities) join q's positive set (up to 3 extra positives for
  topk 1) and InfoNCE becomes the multi-positive -mean log softmax over that set; D3M is unchanged.

Fixed on purpose: the reference's drop is a no-op. Its DropBlock modules first set mask entries >= 0.7 to 0
and then every entry < 0.7 (which now includes those zeros) to 1, so the mask is all ones and q_ed equals
q_e exactly. Here the drop does what the paper describes; `published_quirks: true` makes it the identity
again (the reference's behaviour).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from occbench.augment import extreme_view, normal_view
from occbench.hookspecs import hookimpl
from occbench.methods import MoCoMethod, info_nce, mining_started, multi_positive_nce
from occbench.settings import integer, number


@torch.no_grad()
def simam_attention(feature_map: torch.Tensor, energy_lambda: float = 1e-4) -> torch.Tensor:
    """sigmoid of SimAM's inverse energy for (N, C, T, V): per channel, mean and unbiased variance over T x V."""
    square = (feature_map - feature_map.mean((2, 3), keepdim=True)).pow(2)
    variance = square.sum((2, 3), keepdim=True) / (feature_map.shape[2] * feature_map.shape[3] - 1)
    return torch.sigmoid(square / (4 * (variance + energy_lambda)) + 0.5)


def attention_drop(feature_map: torch.Tensor, threshold: float = 0.7, energy_lambda: float = 1e-4) -> torch.Tensor:
    """EADM on a (N, C, T, V) feature map: drop the most attended joints, then the most attended entries.

    Each drop rescales by numel / kept of its mask, counted over the whole batch; both masks come from the
    attention of the input map, so the two drops commute and are applied as one product. The attention is
    a constant for autograd (a 0/1 mask), as in the reference.
    """
    attention = simam_attention(feature_map, energy_lambda)
    joints_kept = attention.mean((1, 2), keepdim=True) < threshold  # (N, 1, 1, V): spatial drop
    entries_kept = attention < threshold  # (N, C, T, V): the reference's temporal drop per (C*V, T)
    spatial_scale = joints_kept.numel() / joints_kept.sum().clamp_min(1)
    temporal_scale = entries_kept.numel() / entries_kept.sum().clamp_min(1)
    return feature_map * (joints_kept & entries_kept) * (spatial_scale * temporal_scale)


def d3m_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-sum_j target_j log softmax(logits)_j, mean over the batch (logits already divided by T)."""
    return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()


def mined_positives(*logits: torch.Tensor, topk: int = 1) -> torch.Tensor:
    """Positive set over the [pos, queue] columns of (N, 1+K) logits: column 0 and, for each logits given,
    its top-k queue columns."""
    positives = torch.zeros_like(logits[0], dtype=torch.bool)
    positives[:, 0] = True
    for scores in logits:
        positives.scatter_(1, scores[:, 1:].topk(topk, dim=1).indices + 1, True)
    return positives


class AimCLR(MoCoMethod):
    name = "aimclr"
    title = "AimCLR"
    citation = "Guo et al., AAAI 2022"
    order = 30
    colour = "#009E73"
    requires = ("feature_map",)  # EADM drops from the feature map before pooling
    defaults = {
        **MoCoMethod.defaults,
        "shear_amplitude": 0.5,
        "extreme_augmentations": "12345",
        "mining_epoch": 150,
        "topk": 1,
        "keep_threshold": 0.7,
        "energy_lambda": 1e-4,
        "published_quirks": False,
    }
    schema = {**MoCoMethod.schema, "shear_amplitude": number(0), "mining_epoch": integer(0), "topk": integer(1),
              "keep_threshold": number(0, 1), "energy_lambda": number(0)}
    # quick: mining from epoch 2 of its 4, so that both phases run
    profiles = {"paper": {**MoCoMethod.profiles["paper"], "mining_epoch": 150, "topk": 1},
                "quick": {**MoCoMethod.profiles["quick"], "mining_epoch": 2}}

    def extreme_queries(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """q_e and q_ed: the extreme view's plain and EADM-dropped feature map, pooled, through the query head."""
        encoder, head = self.encoders["joint"], self.heads["joint"]
        feature_map = encoder.feature_map(x, mask=mask)
        dropped = feature_map
        if not self.settings["published_quirks"]:
            dropped = attention_drop(feature_map, self.settings["keep_threshold"], self.settings["energy_lambda"])
        persons = x.shape[-1]
        q_e, q_ed = (F.normalize(head(encoder.pool(m, persons)), dim=1) for m in (feature_map, dropped))
        return q_e, q_ed

    def training_step(self, batch, epoch, generator):
        s = self.settings
        x_q, mask_q = normal_view(batch.x, batch.mask, s["shear_amplitude"], generator=generator)
        x_k, mask_k = normal_view(batch.x, batch.mask, s["shear_amplitude"], generator=generator)
        x_e, mask_e = extreme_view(
            batch.x, batch.mask, s["shear_amplitude"], methods=s["extreme_augmentations"], generator=generator
        )
        q, k = self.query(x_q, "joint", mask_q), self.key(x_k, "joint", mask_k)
        q_e, q_ed = self.extreme_queries(x_e, mask_e)
        logits, logits_e, logits_ed = (self.logits(z, k, "joint") for z in (q, q_e, q_ed))

        if mining_started(epoch, s["mining_epoch"]):
            loss_nce = multi_positive_nce(logits, mined_positives(logits, logits_e, logits_ed, topk=s["topk"]))
        else:
            loss_nce = info_nce(logits)
        target = logits.detach().softmax(dim=1)
        loss_e, loss_ed = d3m_loss(logits_e, target), d3m_loss(logits_ed, target)
        self.enqueue(k, "joint")
        return {
            "loss": loss_nce + (loss_e + loss_ed) / 2,
            "loss_nce": loss_nce.detach(),
            "loss_e": loss_e.detach(),
            "loss_ed": loss_ed.detach(),
        }


@hookimpl
def occbench_register_methods(registry):
    registry.add("aimclr", AimCLR)
