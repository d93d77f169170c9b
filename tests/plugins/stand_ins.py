"""The test double of occbench's encoder contract (occbench/encoders.py), shared by every method test,
so method tests run in milliseconds; and small helpers."""

from dataclasses import dataclass

import torch
from torch import nn

from occbench.data.batches import Batch
from occbench.settings import integer


@dataclass
class Call:
    x: torch.Tensor
    mask: torch.Tensor | None
    ignore_joints: list | None


class ContractEncoder(nn.Module):
    """Every capability of the contract, in miniature: a per-joint temporal convolution as the feature
    map (N*M, D, T', V'), mean pooling, joints removed on request; each call recorded in `calls`."""

    capabilities = frozenset({"feature_map", "ignore_joints"})
    schema = {"feature_dim": integer(1)}

    def __init__(self, feature_dim: int = 16):
        super().__init__()
        self.feature_dim = feature_dim
        self.conv = nn.Conv2d(3, feature_dim, (3, 1), stride=(2, 1), padding=(1, 0))
        self.calls: list[Call] = []

    def feature_map(self, x, mask=None, ignore_joints=None):
        self.calls.append(Call(x.detach().clone(), mask, ignore_joints))
        if ignore_joints is not None:
            x = x[:, :, :, [j for j in range(x.shape[3]) if j not in set(ignore_joints)]]
        n, c, t, v, m = x.shape
        return torch.relu(self.conv(x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)))

    @staticmethod
    def pool(feature_map, persons):
        nm, c = feature_map.shape[:2]
        return feature_map.mean((2, 3)).view(nm // persons, persons, c).mean(1)

    def forward(self, x, mask=None, ignore_joints=None):
        return self.pool(self.feature_map(x, mask=mask, ignore_joints=ignore_joints), x.shape[-1])


def with_double(method: type) -> type:
    """`method` with the contract's test double as its encoder."""
    return type(f"Tiny{method.__name__}", (method,), {"encoder_class": ContractEncoder})


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


def loss_after_training(model, batch, steps=30, lr=3e-3) -> tuple[float, float]:
    """(loss before, loss after) `steps` AdamW steps on one batch, each with its own views; both losses
    measured on the same fixed views."""

    def loss():
        with torch.no_grad():
            return model.training_step(batch, 0, torch.Generator().manual_seed(10_000))["loss"].item()

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    before = loss()
    for step in range(steps):
        optimizer.zero_grad()
        model.training_step(batch, 0, torch.Generator().manual_seed(step))["loss"].backward()
        optimizer.step()
    return before, loss()


def swaying_batch(n=8, t=12) -> Batch:
    """make_batch's occlusion on one body swaying smoothly: a sequence a model can learn to predict."""
    batch = make_batch(n, t=t)
    pose = torch.randn(1, 3, 1, 25, 1, generator=torch.Generator().manual_seed(5))
    noise = torch.randn(n, 3, t, 25, 2, generator=torch.Generator().manual_seed(6))
    batch.x = (pose + 0.1 * noise.cumsum(dim=2)) * batch.mask[:, None]
    return batch
