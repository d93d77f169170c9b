"""The skeleton transformer shared by the masked-autoencoder methods (SkeletonMAE, MAMP).

After MAMP's published encoder (maoyunyao/MAMP ``model_mamp/transformer.py``; facts in
``reference/new-methods.md`` §2.2): each person is encoded on its own; a token is one joint over one
temporal segment of ``segment`` frames, embedded linearly from its ``segment x 3`` coordinates (MAMP's
convolution with kernel = stride = (4, 1) is that linear map); learned temporal and spatial position
embeddings are added; pre-LN transformer blocks (multi-head self-attention with qkv bias, MLP ratio 4,
GELU) attend over all tokens; a final LayerNorm. The features of a clip are the mean over its tokens
and persons.

occbench's choices (MAMP works on 120 frames and 4-frame segments, occbench on the profile's frame
count): ``segment`` 2 at 50 frames keeps MAMP's temporal resolution (a segment is 1/25 of the clip,
MAMP's 1/30), 625 tokens per person. Visibility, which no published MAE has: a token is visible when
its joint is visible in every frame of its segment; an invisible token never enters attention (its
coordinates are fake zeros), and a person with no visible token (the absent second body of most NTU
clips) is left out of the mean over persons.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from occbench.errors import OccbenchError
from occbench.settings import integer, number


class Block(nn.Module):
    """Pre-LN transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: Tensor, valid: Tensor | None = None) -> Tensor:
        """x (B, L, D); valid (B, L) bool: the tokens that may be attended to (None: all)."""
        b, length, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attend = None if valid is None else valid[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
        x = x + self.proj(out.transpose(1, 2).reshape(b, length, d))
        return x + self.mlp(self.norm2(x))


class SkeletonTransformer(nn.Module):
    """(N, 3, T, 25, M) skeletons and their mask -> (N, width) features; see the module docstring."""

    capabilities = frozenset({"layers"})  # occbench/encoders.py: no feature map, no joint removal
    schema = {"frames": integer(1), "segment": integer(1), "width": integer(1), "depth": integer(1),
              "heads": integer(1), "mlp_ratio": number(0, above=True)}

    def __init__(self, frames: int = 50, segment: int = 2, width: int = 256, depth: int = 8, heads: int = 8,
                 mlp_ratio: float = 4.0, joints: int = 25):
        super().__init__()
        self.check_settings({"frames": frames, "segment": segment, "width": width, "heads": heads})
        self.frames, self.segment, self.joints = frames, segment, joints
        self.feature_dim = width
        self.embed = nn.Linear(3 * segment, width)
        self.temporal_position = nn.Parameter(torch.zeros(frames // segment, 1, width))
        self.spatial_position = nn.Parameter(torch.zeros(1, joints, width))
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.apply(_init)
        nn.init.trunc_normal_(self.temporal_position, std=0.02)
        nn.init.trunc_normal_(self.spatial_position, std=0.02)

    @staticmethod
    def check_settings(settings: dict) -> None:
        """What the schema cannot say: the segments tile the frames, the heads split the width. Called
        by the planner on the resolved settings, before anything runs."""
        frames, segment = settings.get("frames", 50), settings.get("segment", 2)
        width, heads = settings.get("width", 256), settings.get("heads", 8)
        if frames % segment:
            raise OccbenchError(f"encoder frames={frames} is not a multiple of segment={segment}: choose a segment "
                                "that divides the profile's frame count (data.frames)")
        if width % heads:
            raise OccbenchError(f"encoder width={width} is not a multiple of heads={heads}")

    # ------------------------------------------------------------------------------------- tokens
    def tokens(self, x: Tensor) -> Tensor:
        """(N, 3, T, V, M) -> (N*M, S*V, segment*3) raw patches, segment-major (token s*V + v)."""
        n, c, t, v, m = x.shape
        if c != 3 or t != self.frames or v != self.joints:
            raise OccbenchError(f"encoder input of shape {tuple(x.shape)}: expected (N, 3, {self.frames}, "
                                f"{self.joints}, M) skeletons (set the encoder's frames to the profile's data.frames)")
        s = t // self.segment
        patches = x.permute(0, 4, 2, 3, 1).reshape(n * m, s, self.segment, v, c)  # (B, S, seg, V, 3)
        return patches.permute(0, 1, 3, 2, 4).reshape(n * m, s * v, self.segment * c)

    def token_visibility(self, mask: Tensor) -> Tensor:
        """(N, T, V, M) joint visibility -> (N*M, S*V): the joint is visible in every frame of the segment."""
        n, t, v, m = mask.shape
        s = t // self.segment
        return mask.permute(0, 3, 1, 2).reshape(n * m, s, self.segment, v).all(dim=2).reshape(n * m, s * v)

    def positions(self) -> Tensor:
        """(S*V, width) the position embedding of every token, in token order."""
        return (self.temporal_position + self.spatial_position).reshape(-1, self.feature_dim)

    def embed_tokens(self, patches: Tensor) -> Tensor:
        return self.embed(patches) + self.positions()

    def layers(self) -> list[list[nn.Parameter]]:
        """Embeddings, each block, the final norm: the depth order of layer-wise lr decay (BEiT, MAE)."""
        embeddings = [*self.embed.parameters(), self.temporal_position, self.spatial_position]
        return [embeddings, *(list(block.parameters()) for block in self.blocks), list(self.norm.parameters())]

    # ------------------------------------------------------------------------------------ encoding
    def encode(self, tokens: Tensor, valid: Tensor | None = None) -> Tensor:
        """Embedded tokens (B, L, D) -> (B, L, D) through the blocks and the final norm."""
        if valid is not None:
            valid = valid | ~valid.any(dim=1, keepdim=True)  # nothing visible: attend to all (left out later)
        for block in self.blocks:
            tokens = block(tokens, valid)
        return self.norm(tokens)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        n, m = x.shape[0], x.shape[-1]
        valid = None if mask is None else self.token_visibility(mask)
        encoded = self.encode(self.embed_tokens(self.tokens(x)), valid)  # (N*M, L, D)
        if valid is None:
            return encoded.mean(dim=1).view(n, m, -1).mean(dim=1)
        weight = valid.to(encoded.dtype)[..., None]
        per_person = (encoded * weight).sum(dim=1) / weight.sum(dim=1).clamp_min(1)  # (N*M, D)
        present = valid.any(dim=1).view(n, m, 1).to(encoded.dtype)
        return (per_person.view(n, m, -1) * present).sum(dim=1) / present.sum(dim=1).clamp_min(1)


def _init(module: nn.Module) -> None:
    """MAMP's: Xavier-uniform Linear weights, zero biases, LayerNorm weight 1 and bias 0."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
