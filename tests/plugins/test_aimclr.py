"""AimCLR plugin: EADM, D3M, nearest-neighbour mining and its start epoch, queue, training, registration."""

import math

import pytest
import torch

from occbench.augment import normal_view
from occbench.methods import mining_started
from occbench_plugins.aimclr import (
    AimCLR,
    attention_drop,
    d3m_loss,
    mined_positives,
    simam_attention,
)
from occbench_plugins.aimclr import occbench_register_methods as register_aimclr
from tests.plugins.stand_ins import make_batch, train_on_one_batch, with_double

Tiny = with_double(AimCLR)


def _log_softmax(values):
    top = max(values)
    log_total = top + math.log(sum(math.exp(v - top) for v in values))
    return [v - log_total for v in values]


# -------------------------------------------------------------------------------------------- EADM


def _hand_attention(fmap, lam=1e-4):
    """SimAM attention with python loops: per (sample, channel), mean and unbiased variance over T x V."""
    n, c, t, v = fmap.shape
    out = torch.empty_like(fmap)
    for i in range(n):
        for ch in range(c):
            values = fmap[i, ch].flatten().tolist()
            mu = sum(values) / len(values)
            var = sum((x - mu) ** 2 for x in values) / (len(values) - 1)
            for tt in range(t):
                for vv in range(v):
                    y = (fmap[i, ch, tt, vv].item() - mu) ** 2 / (4 * (var + lam)) + 0.5
                    out[i, ch, tt, vv] = 1 / (1 + math.exp(-y))
    return out


def test_eadm_worked_example():
    # sample 0 (C=2, T=3, V=4): joint 3 stands out strongly in channel 0 and mildly in channel 1 (its mean
    # attention passes 0.7, its channel-1 entries do not); entry (c=1, t=1, v=0) stands out on its own
    first = torch.tensor([[[1.0, 2, 1, 9], [2, 1, 2, 9], [1, 2, 1, 9]], [[1.0, 2, 1, 5], [9, 1, 2, 5], [1, 2, 1, 5]]])
    second = torch.full((2, 3, 4), 3.0)  # a constant map: attention sigmoid(0.5) = 0.62 everywhere, no drop
    fmap = torch.stack([first, second])

    attention = simam_attention(fmap)
    assert torch.allclose(attention, _hand_attention(fmap), atol=1e-6)
    assert torch.allclose(attention[1], torch.full((2, 3, 4), 1 / (1 + math.exp(-0.5))))
    spatial = attention.mean((1, 2))  # (N, V): mean over channels and time
    assert (spatial >= 0.7).nonzero().tolist() == [[0, 3]]
    assert spatial[0, 3] == pytest.approx(0.7127, abs=1e-4)
    entries = {tuple(i) for i in (attention >= 0.7).nonzero().tolist()}
    assert entries == {(0, 0, t, 3) for t in range(3)} | {(0, 1, 1, 0)}

    # spatial drop: joint 3 of sample 0, 1 of the batch's 8 joints -> x 8/7;
    # temporal drop: 4 of the batch's 48 entries -> x 48/44; (0, 1, t, 3) falls to the spatial drop only
    expected = fmap.clone()
    expected[0, :, :, 3] = 0
    expected[0, 1, 1, 0] = 0
    expected = expected * (8 / 7) * (48 / 44)
    assert torch.allclose(attention_drop(fmap), expected)
    # the threshold is on the attention (>= drops): at 0.95 nothing is dropped, the map is unchanged
    assert torch.allclose(attention_drop(fmap, threshold=0.95), fmap)


def test_eadm_attention_is_a_constant_for_autograd():
    fmap = torch.randn(2, 4, 3, 5, requires_grad=True)
    dropped = attention_drop(fmap)
    dropped.sum().backward()
    kept = (dropped != 0).float()
    scale = dropped.detach()[dropped != 0] / fmap.detach()[dropped != 0]
    assert torch.allclose(fmap.grad, kept * scale[0])  # one batch-wide scale, gradient 0 where dropped


# --------------------------------------------------------------------------------------------- D3M


def test_d3m_against_a_hand_computation():
    normal = [0.6, 1.0, 0.0, -0.8, 0.0]
    extreme = [0.8, 0.0, 1.0, 0.6, -1.0]
    p = [math.exp(v) for v in _log_softmax(normal)]
    expected = -sum(pi * li for pi, li in zip(p, _log_softmax(extreme), strict=True))
    target = torch.tensor([normal]).softmax(1)
    assert d3m_loss(torch.tensor([extreme]), target).item() == pytest.approx(expected, rel=1e-6)
    # batch mean
    both = d3m_loss(torch.tensor([extreme, normal]), torch.tensor([normal, normal]).softmax(1))
    entropy = -sum(pi * math.log(pi) for pi in p)
    assert both.item() == pytest.approx((expected + entropy) / 2, rel=1e-6)


def test_mined_positives():
    logits = torch.tensor([[9.0, 5, 1, 2, 0]])  # column 0 is the positive key, never mined from
    extreme = torch.tensor([[0.0, 1, 5, 2, 0]])
    drop = torch.tensor([[0.0, 5, 1, 2, 0]])  # same top-1 as logits: only 2 extra positives
    assert mined_positives(logits, extreme, drop).tolist() == [[True, True, True, False, False]]
    assert mined_positives(logits, topk=2).tolist() == [[True, True, False, True, False]]


# ----------------------------------------------------------------------- wiring and the phase switch


class Fixed(Tiny):
    """Queries, extreme queries and key set by hand (dimension 2)."""

    def query(self, x, stream, mask=None):
        return torch.tensor([[1.0, 0.0]])

    def extreme_queries(self, x, mask=None):
        return torch.tensor([[0.0, 1.0]]), torch.tensor([[-0.6, 0.8]])

    def key(self, x, stream, mask=None):
        return torch.tensor([[0.6, 0.8]])


def _fixed_model(mining_epoch):
    model = Fixed({"queue_size": 4, "feature_dim": 2, "temperature": 0.5, "mining_epoch": mining_epoch})
    with torch.no_grad():
        model.queue("joint").copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-0.8, 0.6], [0.0, -1.0]]))
    return model


def _hand_losses(t=0.5):
    # similarities [pos, queue]: q top-1 slot 0, q_e slot 1, q_ed slot 2 -> positive columns 0, 1, 2, 3
    normal = [v / t for v in [0.6, 1.0, 0.0, -0.8, 0.0]]
    extreme = [v / t for v in [0.8, 0.0, 1.0, 0.6, -1.0]]
    dropped = [v / t for v in [0.28, -0.6, 0.8, 0.96, -0.8]]
    p = [math.exp(v) for v in _log_softmax(normal)]
    d3m = sum(-sum(pi * li for pi, li in zip(p, _log_softmax(x), strict=True)) for x in (extreme, dropped)) / 2
    plain = -_log_softmax(normal)[0] + d3m
    mined = -sum(_log_softmax(normal)[:4]) / 4 + d3m
    return plain, mined


def test_mining_starts_at_the_published_epoch():
    # Reference: 1-based epochs, no mining while epoch <= mining_epoch; occbench epoch e is its e + 1.
    assert [mining_started(e, 150) for e in (0, 149, 150, 151)] == [False, False, True, True]
    plain, mined = _hand_losses()
    assert plain != pytest.approx(mined)
    batch = make_batch(1, t=6)
    for epoch, expected in [(0, plain), (2, plain), (3, mined), (9, mined)]:
        loss = _fixed_model(mining_epoch=3).training_step(batch, epoch, torch.Generator().manual_seed(0))["loss"]
        assert loss.item() == pytest.approx(expected, rel=1e-5), epoch


def test_the_normal_key_is_enqueued():
    model = Tiny({"queue_size": 16})
    batch = make_batch(4)
    model.training_step(batch, 0, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # the same draws: x_q, then x_k
    normal_view(batch.x, batch.mask, 0.5, generator=g)
    x_k, _ = normal_view(batch.x, batch.mask, 0.5, generator=g)
    assert torch.allclose(model.queue("joint")[:4], model.key(x_k, "joint"), atol=1e-6)
    assert model.queue_ptr_joint.item() == 4


def test_momentum_update():
    model = Tiny({"queue_size": 8, "momentum": 0.9})
    with torch.no_grad():
        for p in [*model.encoders.parameters(), *model.heads.parameters()]:
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in [*model.key_encoders.parameters(), *model.key_heads.parameters()]]
    model.after_step()
    online = [*model.encoders.parameters(), *model.heads.parameters()]
    target = [*model.key_encoders.parameters(), *model.key_heads.parameters()]
    for q, k, k0 in zip(online, target, before, strict=True):
        assert torch.allclose(k, 0.9 * k0 + 0.1 * q, atol=1e-6)


def test_drop_changes_q_ed_and_published_quirks_make_it_the_identity():
    torch.manual_seed(0)
    x = make_batch(4).x
    q_e, q_ed = Tiny({"queue_size": 8}).extreme_queries(x)
    assert q_e.shape == q_ed.shape == (4, 128) and not torch.allclose(q_e, q_ed)
    torch.manual_seed(0)
    q_e, q_ed = Tiny({"queue_size": 8, "published_quirks": True}).extreme_queries(x)
    assert torch.equal(q_e, q_ed)


# ---------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("epoch", [0, 5])
def test_training_steps_lower_the_loss(epoch):
    torch.manual_seed(0)
    model = Tiny({"queue_size": 256, "feature_dim": 16, "mining_epoch": 5, "momentum": 0.99})
    history = train_on_one_batch(model, epoch)
    assert all(math.isfinite(v) for v in history)
    assert sum(history[-3:]) < 0.9 * sum(history[:3]), history


def test_feature_encoder_is_the_joint_encoder():
    encoder = Tiny({"queue_size": 8}).feature_encoder()
    assert encoder.feature_dim == 16 and encoder(make_batch(3).x).shape == (3, 16)


def test_registration_hook():
    class Registry:
        def __init__(self):
            self.added = {}

        def add(self, name, cls):
            self.added[name] = cls

    registry = Registry()
    register_aimclr(registry)
    assert registry.added == {"aimclr": AimCLR}
    assert AimCLR.name == "aimclr" and AimCLR.streams == ("joint",)


# ----------------------------------------------------------------------------------- real encoder


def test_with_the_real_stgcn():
    pytest.importorskip("occbench.nn.stgcn")
    torch.manual_seed(0)
    model = AimCLR({"queue_size": 64, "mining_epoch": 1})
    batch = make_batch(8, t=20)
    fmap = model.encoders["joint"].feature_map(batch.x)
    assert fmap.shape == (16, 256, 5, 25)
    dropped = attention_drop(fmap)
    assert 0 < (dropped == 0).float().mean() - (fmap == 0).float().mean() < 0.5  # it drops some entries
    assert model.feature_encoder()(batch.x).shape == (8, 256)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    for epoch in (0, 1):  # one step of each phase
        losses = model.training_step(batch, epoch, torch.Generator().manual_seed(epoch))
        assert all(torch.isfinite(v) for v in losses.values())
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        model.after_step()
    assert model.queue_ptr_joint.item() == 16
