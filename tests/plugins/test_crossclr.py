"""CrosSCLR plugin: MoCo queues and momentum, the phase switch, cross-view mining, training, registration."""

import copy
import math

import pytest
import torch

from occbench.methods import mining_started
from occbench_plugins.crossclr import CrosSCLR, CrosSCLR3s, cross_view_loss
from occbench_plugins.crossclr import occbench_register_methods as register_crossclr
from tests.plugins.stand_ins import make_batch, train_on_one_batch, with_double

Tiny, Tiny3s = with_double(CrosSCLR), with_double(CrosSCLR3s)


# ---------------------------------------------------------------------------------------- MoCo base


def test_enqueue_writes_rows_advances_and_wraps():
    model = Tiny({"queue_size": 8, "feature_dim": 4})
    before = model.queue("motion").clone()
    keys = [torch.full((3, 4), float(i)) for i in (1, 2, 3)]
    model.enqueue(keys[0], "joint")
    assert model.queue_ptr_joint.item() == 3 and torch.equal(model.queue("joint")[:3], keys[0])
    model.enqueue(keys[1], "joint")
    assert model.queue_ptr_joint.item() == 6 and torch.equal(model.queue("joint")[3:6], keys[1])
    model.enqueue(keys[2], "joint")  # rows 6, 7 and then 0
    assert model.queue_ptr_joint.item() == 1
    assert torch.equal(model.queue("joint")[[6, 7, 0]], keys[2])
    assert torch.equal(model.queue("joint")[1:3], keys[0][1:])
    assert torch.equal(model.queue("motion"), before) and model.queue_ptr_motion.item() == 0


def test_training_step_enqueues_every_stream_in_lockstep():
    model = Tiny({"queue_size": 32, "feature_dim": 4})
    model.training_step(make_batch(8), 0, torch.Generator().manual_seed(0))
    assert model.queue_ptr_joint.item() == model.queue_ptr_motion.item() == 8
    assert torch.allclose(model.queue("joint")[:8].norm(dim=1), torch.ones(8))


def _perturb(module):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p))


def test_momentum_update_of_every_key_encoder_and_head():
    model = Tiny({"queue_size": 8, "feature_dim": 4, "momentum": 0.9})
    _perturb(model.encoders), _perturb(model.heads)
    keys_before = [p.clone() for p in [*model.key_encoders.parameters(), *model.key_heads.parameters()]]
    model.mining = True  # the fix: phase 2 updates every stream too
    model.after_step()
    online = [*model.encoders.parameters(), *model.heads.parameters()]
    target = [*model.key_encoders.parameters(), *model.key_heads.parameters()]
    assert len(online) == len(target) == len(keys_before) > 0
    for q, k, k0 in zip(online, target, keys_before, strict=True):
        assert torch.allclose(k, 0.9 * k0 + 0.1 * q, atol=1e-6)
        assert not k.requires_grad


def test_heads_are_separate_by_default_and_shared_under_published_quirks():
    fixed = Tiny({"queue_size": 8, "feature_dim": 4})
    assert all(
        p.data_ptr() != r.data_ptr()
        for p in fixed.heads["motion"].parameters()
        for r in fixed.heads["joint"].parameters()
    )
    quirky = Tiny({"queue_size": 8, "feature_dim": 4, "published_quirks": True})
    assert quirky.heads["motion"][2] is quirky.heads["joint"]
    assert quirky.key_heads["motion"][2] is quirky.key_heads["joint"]
    assert quirky.key_heads["joint"] is not quirky.heads["joint"]
    assert quirky.query(make_batch(2).x, "motion").shape == (2, 4)


def test_published_quirks_momentum():
    m = 0.9
    model = Tiny({"queue_size": 8, "feature_dim": 4, "momentum": m, "published_quirks": True})
    _perturb(model.encoders), _perturb(model.heads)
    shared_q, shared_k = model.heads["joint"], model.key_heads["joint"]

    def snapshot():
        return {
            name: [p.clone() for p in module.parameters()]
            for name, module in {
                "kj": model.key_encoders["joint"],
                "km": model.key_encoders["motion"],
                "shared": shared_k,
            }.items()
        }

    # phase 1: every stream updated; the shared tail twice per step (once per stream), i.e. with m^2
    before = snapshot()
    model.mining = False
    model.after_step()
    for k, k0, q in zip(shared_k.parameters(), before["shared"], shared_q.parameters(), strict=True):
        assert torch.allclose(k, m * m * k0 + (1 - m * m) * q, atol=1e-6)
    assert not torch.equal(next(model.key_encoders["joint"].parameters()), before["kj"][0])

    # phase 2: only the motion key encoder (and through its head the shared tail, once)
    before = snapshot()
    model.mining = True
    model.after_step()
    for k, k0 in zip(model.key_encoders["joint"].parameters(), before["kj"], strict=True):
        assert torch.equal(k, k0)
    for k, k0, q in zip(
        model.key_encoders["motion"].parameters(), before["km"], model.encoders["motion"].parameters(), strict=True
    ):
        assert torch.allclose(k, m * k0 + (1 - m) * q, atol=1e-6)
    for k, k0, q in zip(shared_k.parameters(), before["shared"], shared_q.parameters(), strict=True):
        assert torch.allclose(k, m * k0 + (1 - m) * q, atol=1e-6)


# ------------------------------------------------------------------------------ cross-view mining


def _log_softmax(values):
    top = max(values)
    log_total = top + math.log(sum(math.exp(v - top) for v in values))
    return [v - log_total for v in values]


def test_cross_view_loss_worked_example():
    pos = torch.tensor([[0.8]])
    neg = torch.tensor([[0.1, 0.5, -0.2, 0.3]])  # own top-1 would be slot 1
    partner = torch.tensor([[0.4, -0.1, 0.2, 0.9]])  # the partner's top-1 is slot 3
    t = 0.5
    context = [a * b for a, b in zip(neg[0].tolist(), partner[0].tolist(), strict=True)]
    logits = [v / t for v in [0.8, *neg[0].tolist(), *context]]
    log_prob = _log_softmax(logits)
    expected = -(log_prob[0] + log_prob[1 + 3] + log_prob[1 + 4 + 3]) / 3  # own key, slot 3, context slot 3
    assert cross_view_loss(pos, neg, partner, t) == pytest.approx(expected, rel=1e-5)

    log_prob = _log_softmax([v / t for v in [0.8, *neg[0].tolist()]])
    expected = -(log_prob[0] + log_prob[1 + 3]) / 2
    assert cross_view_loss(pos, neg, partner, t, context=False) == pytest.approx(expected, rel=1e-5)

    log_prob = _log_softmax(logits)  # top-2 of the partner: slots 3 and 0
    expected = -sum(log_prob[i] for i in (0, 1 + 3, 1 + 0, 5 + 3, 5 + 0)) / 5
    assert cross_view_loss(pos, neg, partner, t, topk=2) == pytest.approx(expected, rel=1e-5)


class Fixed(Tiny):
    """Queries and keys set by hand (dimension 2) to check the wiring of training_step."""

    def query(self, x, stream, mask=None):
        return self.fixed_q[stream]

    def key(self, x, stream, mask=None):
        return self.fixed_k[stream]


def _fixed_model(cls=Fixed, cross_epoch=3):
    model = cls({"queue_size": 4, "feature_dim": 2, "temperature": 0.5, "cross_epoch": cross_epoch})
    model.fixed_q = {"joint": torch.tensor([[1.0, 0.0]]), "motion": torch.tensor([[0.0, 1.0]])}
    model.fixed_k = {"joint": torch.tensor([[0.6, 0.8]]), "motion": torch.tensor([[0.6, 0.8]])}
    with torch.no_grad():
        model.queue("joint").copy_(torch.tensor([[0.8, 0.6], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]))
        model.queue("motion").copy_(torch.tensor([[1.0, 0.0], [0.28, 0.96], [0.0, -1.0], [-1.0, 0.0]]))
    return model


def _hand_losses(t=0.5):
    # joint: pos 0.6, queue similarities [0.8, 0, -1, 0]; motion: pos 0.8, [0, 0.96, -1, 0].
    # Own top-1: joint slot 0, motion slot 1; so joint mines slot 1 (motion's choice), motion slot 0.
    pj, nj, pm, nm = 0.6, [0.8, 0.0, -1.0, 0.0], 0.8, [0.0, 0.96, -1.0, 0.0]
    ctx = [a * b for a, b in zip(nj, nm, strict=True)]
    phase1 = -_log_softmax([v / t for v in [pj, *nj]])[0] - _log_softmax([v / t for v in [pm, *nm]])[0]
    lj = _log_softmax([v / t for v in [pj, *nj, *ctx]])
    lm = _log_softmax([v / t for v in [pm, *nm, *ctx]])
    phase2 = -(lj[0] + lj[1 + 1] + lj[5 + 1]) / 3 - (lm[0] + lm[1 + 0] + lm[5 + 0]) / 3
    return phase1, phase2


def test_phase_switch_at_the_published_epoch():
    # Reference: 1-based epochs, phase 1 while epoch <= cross_epoch; occbench epoch e is its e + 1.
    assert [mining_started(e, 150) for e in (0, 148, 149, 150, 151)] == [False, False, False, True, True]
    assert not mining_started(0, 1) and mining_started(1, 1) and mining_started(0, 0)
    phase1, phase2 = _hand_losses()
    batch = make_batch(1, t=6)
    for epoch, expected in [(0, phase1), (2, phase1), (3, phase2), (7, phase2)]:
        model = _fixed_model(cross_epoch=3)
        loss = model.training_step(batch, epoch, torch.Generator().manual_seed(0))["loss"]
        assert loss.item() == pytest.approx(expected, rel=1e-5), epoch
        assert model.mining == (epoch >= 3)


def test_three_streams_average_the_two_partners():
    model = _fixed_model(type("Fixed3s", (Fixed,), {"streams": ("joint", "motion", "bone")}), cross_epoch=0)
    model.fixed_q["bone"] = torch.tensor([[0.6, -0.8]])
    model.fixed_k["bone"] = torch.tensor([[1.0, 0.0]])
    with torch.no_grad():
        model.queue("bone").copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-0.6, -0.8]]))
    t = 0.5
    sims = {
        s: ((model.fixed_q[s] * model.fixed_k[s]).sum(1, keepdim=True), model.fixed_q[s] @ model.queue(s).T)
        for s in model.streams
    }
    expected = {
        u: sum(cross_view_loss(*sims[u], sims[v][1], t) for v in model.streams if v != u) / 2 for u in model.streams
    }
    losses = model.training_step(make_batch(1, t=6), 0, torch.Generator().manual_seed(0))
    for u in model.streams:
        assert losses[f"loss_{u}"].item() == pytest.approx(expected[u].item(), rel=1e-5)
    assert losses["loss"].item() == pytest.approx(sum(e.item() for e in expected.values()), rel=1e-5)


# ---------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("epoch", [0, 5])
def test_training_steps_lower_the_loss(epoch):
    torch.manual_seed(0)
    model = Tiny({"queue_size": 256, "feature_dim": 16, "cross_epoch": 5, "momentum": 0.99})
    history = train_on_one_batch(model, epoch, steps=20)
    assert all(math.isfinite(v) for v in history)
    assert history[-1] < 0.95 * history[0], history  # N(0, 0.02) init: slow but steady


def test_feature_encoder_concatenates_the_streams():
    model = Tiny({"queue_size": 8, "encoder": {"feature_dim": 256}})
    encoder = model.feature_encoder()
    assert encoder.feature_dim == 512
    assert encoder(make_batch(3).x).shape == (3, 512)
    assert Tiny3s({"queue_size": 8, "encoder": {"feature_dim": 256}}).feature_encoder().feature_dim == 768


def test_registration_hook():
    class Registry:
        def __init__(self):
            self.added = {}

        def add(self, name, cls):
            self.added[name] = cls

    registry = Registry()
    register_crossclr(registry)
    assert registry.added == {"crossclr": CrosSCLR, "crossclr3s": CrosSCLR3s}
    assert CrosSCLR.streams == ("joint", "motion") and CrosSCLR3s.streams == ("joint", "motion", "bone")
    assert CrosSCLR.name == "crossclr" and CrosSCLR3s.name == "crossclr3s"


# ----------------------------------------------------------------------------------- real encoder


def test_with_the_real_stgcn():
    pytest.importorskip("occbench.nn.stgcn")
    torch.manual_seed(0)
    model = CrosSCLR({"queue_size": 64, "cross_epoch": 1})
    assert model.feature_encoder()(make_batch(2, t=20).x).shape == (2, 512)
    batch = make_batch(8, t=20)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    key_before = copy.deepcopy(model.key_encoders)
    for epoch in (0, 1):  # one step of each phase
        losses = model.training_step(batch, epoch, torch.Generator().manual_seed(epoch))
        assert torch.isfinite(losses["loss"])
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        model.after_step()
    assert model.queue_ptr_joint.item() == model.queue_ptr_motion.item() == 16
    for name in ("joint", "motion"):
        assert not torch.equal(next(model.key_encoders[name].parameters()), next(key_before[name].parameters()))
