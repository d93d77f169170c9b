"""SkeletonMAE (Wu et al., arXiv 2209.02399, ICME 2023 workshop): a masked autoencoder over skeleton
tokens with spatial-temporal masking at the joint level and the frame level; positions as the target.

Published (reference/new-methods.md §1.1): an encoder-decoder transformer reconstructs masked skeleton
sequences, with joint-level and frame-level spatial-temporal masking. Nothing else is published and no
code exists, so everything below is occbench's choice, after MAMP's public MAE baseline
(maoyunyao/MAMP ``model_mae``, new-methods.md §2-3): the shared skeleton transformer
(occbench/nn/transformer.py) and decoder (`MaskedAutoencoder`), mask ratio 0.9, the position target
standardised per token, MSE on the masked tokens. The two levels: `frame_share` of the masked tokens
are whole segments (every joint of a segment: frame-level masking), the rest single (joint, segment)
tokens drawn uniformly (joint-level masking); 0.5 is occbench's choice. Occluded joints are masked and
never targets (`MaskedAutoencoder`).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from occbench.hookspecs import hookimpl
from occbench.methods import MaskedAutoencoder, uniform
from occbench.settings import number

# MAMP's published pretraining (new-methods.md §2.5): AdamW (0.9, 0.95), weight decay 0.05, lr 1e-3,
# 20 warm-up epochs then cosine, 400 epochs, batch 128. Differences: the cosine goes to 0 per epoch
# (MAMP: to 5e-4, per iteration), and weight decay applies to every parameter (MAMP: not to norms and biases).
MAE_PAPER = {
    "mask_ratio": 0.9, "decoder_width": 256, "decoder_depth": 3, "decoder_heads": 8,
    "encoder": {"segment": 2, "width": 256, "depth": 8, "heads": 8, "mlp_ratio": 4.0},
    "pretrain": {"epochs": 400, "optimizer": {"type": "AdamW", "lr": 1e-3, "betas": [0.9, 0.95], "weight_decay": 0.05},
                 "schedule": {"type": "cosine", "warmup_epochs": 20}},
}
# MAMP's published finetuning (new-methods.md §2.6), used for the semi-supervised protocols too (MAMP's
# semi configs are its finetune config on a subset): AdamW lr 3e-4, weight decay 0.05, layer-wise lr decay
# 0.8, 5 warm-up epochs then cosine, 100 epochs, batch 48 (24 on each of 2 GPUs). Not implemented: its
# 2048-wide MLP head (occbench: one linear layer, as for every method), drop-path 0.3, label smoothing
# 0.1, the cosine's floor of 1e-5.
MAE_FINETUNE = {"epochs": 100, "batch_size": 48, "layer_decay": 0.8,
                "optimizer": {"type": "AdamW", "lr": 3e-4, "weight_decay": 0.05},
                "schedule": {"type": "cosine", "warmup_epochs": 5}}
MAE_PAPER["protocols"] = dict.fromkeys(("finetune", "semi1", "semi10"), MAE_FINETUNE)
# quick: a transformer small enough for the quick grid on 2 CPU cores, and the quick profile's finetuning
# budget (occbench's choices)
MAE_QUICK = {
    "decoder_width": 64, "decoder_depth": 1, "decoder_heads": 4,
    "encoder": {"width": 64, "depth": 2, "heads": 4},
    "pretrain": {"epochs": 10, "schedule": {"type": "cosine", "warmup_epochs": 1}},
    # lr 1e-2: with MAMP's 3e-4, 6 epochs leave a finetuned MAE below its own random weights (docs/results.md)
    "protocols": dict.fromkeys(("finetune", "semi1", "semi10"),
                               {"epochs": 6, "batch_size": 32, "eval_every": 2, "optimizer": {"lr": 1e-2},
                                "schedule": {"warmup_epochs": 1}}),
}


class SkeletonMAE(MaskedAutoencoder):
    name = "skeletonmae"
    title = "SkeletonMAE"
    citation = "Wu et al., ICME workshops 2023"
    order = 70
    colour = "#000000"
    recipes: ClassVar[dict] = {"linear": "mae"}  # MAMP's probe (the catalogue's protocols.linear.mae)
    defaults: ClassVar[dict] = {**MaskedAutoencoder.defaults, "frame_share": 0.5}
    schema: ClassVar[dict] = {**MaskedAutoencoder.schema, "frame_share": number(0, 1)}
    # quick: the raw position target (normalize_target false): standardised per token, one seed of three without
    # occlusion learned less than its random weights in the quick budget (docs/results.md)
    profiles: ClassVar[dict] = {"paper": {**MAE_PAPER, "frame_share": 0.5},
                                "quick": {**MAE_QUICK, "normalize_target": False}}

    def masking_noise(self, patches, visible, generator):
        """Whole segments first (frame level), then uniform single tokens (joint level)."""
        encoder = self.encoders["joint"]
        b, length, _ = patches.shape
        segments = length // encoder.joints
        whole = round(self.settings["frame_share"] * self.settings["mask_ratio"] * segments)
        noise = uniform((b, length), generator, patches.device)
        if whole:
            chosen = uniform((b, segments), generator, patches.device).argsort(dim=1)[:, :whole]
            frame_masked = torch.zeros(b, segments, dtype=torch.bool, device=patches.device)
            frame_masked.scatter_(1, chosen, True)
            noise = noise + 2.0 * frame_masked.repeat_interleave(encoder.joints, dim=1)
        return noise

    def target(self, x, mask):
        encoder = self.encoders["joint"]
        return encoder.tokens(x), encoder.token_visibility(mask)  # positions, where they are known


@hookimpl
def occbench_register_methods(registry):
    registry.add("skeletonmae", SkeletonMAE)
