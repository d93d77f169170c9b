"""Data parallelism inside a cell: two gloo ranks on CPU compute what one process computes on the whole batch."""

from dataclasses import dataclass

import torch

from occbench import distributed
from occbench.methods import barlow_twins_loss

BATCH, FEATURES = 8, 6


@dataclass
class Rows:
    x: torch.Tensor
    index: torch.Tensor


def whole_batch():
    generator = torch.Generator().manual_seed(0)
    return Rows(torch.randn(BATCH, FEATURES, generator=generator), torch.arange(BATCH))


def model():
    torch.manual_seed(1)
    return torch.nn.Linear(FEATURES, 4)


def barlow_gradient():
    """Barlow Twins on two 'views' of this rank's rows, gradients averaged over the ranks."""
    net = model()
    rows = distributed.shard(whole_batch())
    loss = barlow_twins_loss(net(rows.x), net(rows.x.flip(1)), lambd=0.1)
    loss.backward()
    distributed.average_gradients(net.parameters())
    return [p.grad.clone() for p in net.parameters()], loss.detach(), distributed.gather(rows.index)


def test_two_ranks_give_the_single_process_barlow_twins_gradient():
    grads, loss, _ = barlow_gradient()
    ranked_grads, ranked_loss, gathered = distributed.launch(barlow_gradient, 2)
    assert torch.allclose(ranked_loss, loss, atol=1e-5)
    for ranked, single in zip(ranked_grads, grads, strict=True):
        assert torch.allclose(ranked, single, atol=1e-5)
    assert gathered.tolist() == [0, 2, 4, 6, 1, 3, 5, 7]  # rank 0's rows, then rank 1's


def test_outside_a_process_group_everything_is_the_identity():
    rows = whole_batch()
    assert distributed.shard(rows) is rows and distributed.gather(rows.x) is rows.x
    assert distributed.world_size() == 1 and distributed.rank() == 0
