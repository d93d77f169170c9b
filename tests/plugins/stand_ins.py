"""A small stand-in for the ST-GCN encoder, with its contract, so method tests run in milliseconds."""

import torch
from torch import nn

from occbench.data.batches import Batch


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


def make_batch(n=8, t=12, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, t, 25, 2, generator=g)
    mask = torch.ones(n, t, 25, 2, dtype=torch.bool)
    mask[:, :, 7] = False  # one occluded joint
    x = x * mask[:, None]
    return Batch(x, mask, torch.zeros(n, dtype=torch.long), torch.zeros(n, 25, dtype=torch.bool), torch.arange(n))


def train_on_one_batch(model, epoch, steps=20, lr=0.05):
    """SGD on one fixed batch and fixed views. The queues are put back after every step: otherwise the
    batch's own keys fill them and, as negatives identical to the positives, drive the loss up."""
    batch = make_batch(16)
    queues = {name: buffer.clone() for name, buffer in model.named_buffers() if name.startswith("queue")}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    history = []
    for _ in range(steps):
        losses = model.training_step(batch, epoch, torch.Generator().manual_seed(1))
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        model.after_step()
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                if name in queues:
                    buffer.copy_(queues[name])
        history.append(losses["loss"].item())
    return history
