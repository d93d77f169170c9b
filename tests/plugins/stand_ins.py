"""A small stand-in for the ST-GCN encoder, with its contract, so method tests run in milliseconds."""

import torch
from torch import nn


class TinyEncoder(nn.Module):
    """forward, feature_map (N*M, D, T', V), pool and feature_dim, like occbench.nn.stgcn.STGCN."""

    def __init__(self, feature_dim: int = 16):
        super().__init__()
        self.feature_dim = feature_dim
        self.conv = nn.Conv2d(3, feature_dim, (3, 1), stride=(2, 1), padding=(1, 0))

    def feature_map(self, x, ignore_joints=None):
        n, c, t, v, m = x.shape
        return torch.relu(self.conv(x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)))

    @staticmethod
    def pool(feature_map, persons):
        nm, c = feature_map.shape[:2]
        return feature_map.mean((2, 3)).view(nm // persons, persons, c).mean(1)

    def forward(self, x, ignore_joints=None):
        return self.pool(self.feature_map(x), x.shape[-1])
