"""MAMP (Mao et al., ICCV 2023): masked motion prediction with motion-aware masking, on the skeleton
transformer shared with SkeletonMAE (facts: maoyunyao/MAMP ``model_mamp``, reference/new-methods.md §2).

* Target: each masked token's motion, frame t + 1 minus frame t over its segment (the clip's last
  frame: 0), standardised over its own values (``norm_skes_loss``); MSE on the masked tokens.
* Motion-aware masking: a token's motion intensity is the mean absolute difference between its patch
  and the previous segment's patch of the same joint (the first segment takes the second's); divided
  by `temperature` x the sample's largest intensity, a softmax over the tokens gives each token's
  probability; Gumbel noise is added to the log-probabilities and the highest-scoring tokens are
  masked, so high-motion tokens are masked preferentially. Mask ratio 0.9; temperature 0.80 for NTU-60
  (0.75 for NTU-120, a profile setting).
* Pretraining as published: AdamW (0.9, 0.95), weight decay 0.05, lr 1e-3, 20 warm-up epochs then
  cosine, 400 epochs, batch 128 (`MAE_PAPER` of skeletonmae.py, with its stated differences).

Occlusion, occbench's addition: a token that is not visible is masked and never a target, and a
motion target exists only where the joint is visible in both frames of every difference it holds, so
no target is the jump to or from an occluded joint's fake zero (the last segment, whose last frame's
motion is 0 by definition, has none).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from occbench.data.preprocess import motion
from occbench.hookspecs import hookimpl
from occbench.methods import MaskedAutoencoder, uniform
from occbench.settings import number
from occbench_plugins.skeletonmae import MAE_PAPER, MAE_QUICK


class MAMP(MaskedAutoencoder):
    name = "mamp"
    title = "MAMP"
    citation = "Mao et al., ICCV 2023"
    order = 80
    colour = "#882255"
    recipes: ClassVar[dict] = {"linear": "mae"}
    defaults: ClassVar[dict] = {**MaskedAutoencoder.defaults, "temperature": 0.8}
    schema: ClassVar[dict] = {**MaskedAutoencoder.schema, "temperature": number(0, above=True)}
    profiles: ClassVar[dict] = {"paper": {**MAE_PAPER, "temperature": 0.8}, "quick": MAE_QUICK}

    def motion_probabilities(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, L) the published masking probability of each token, from its raw (B, L, P) patches."""
        joints = self.encoders["joint"].joints
        b, length, p = patches.shape
        by_segment = patches.view(b, length // joints, joints, p)
        previous = torch.cat([by_segment[:, 1:2], by_segment[:, :-1]], dim=1)  # segment 0 takes segment 1
        intensity = (by_segment - previous).abs().mean(dim=-1).view(b, length)
        scale = self.settings["temperature"] * intensity.amax(dim=1, keepdim=True).clamp_min(1e-12)
        return (intensity / scale).softmax(dim=1)

    def masking_noise(self, patches, visible, generator):
        gumbel = -torch.log(-torch.log(uniform(visible.shape, generator, patches.device).clamp_min(1e-20)))
        return self.motion_probabilities(patches).log() + gumbel  # the highest are masked, the lowest kept

    def target(self, x, mask):
        encoder = self.encoders["joint"]
        moved, known = motion(x, mask)
        return encoder.tokens(moved), encoder.token_visibility(known)


@hookimpl
def occbench_register_methods(registry):
    registry.add("mamp", MAMP)
