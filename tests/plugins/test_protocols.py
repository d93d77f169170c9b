import numpy as np
import pytest
import torch
from torch import nn

from occbench.data.batches import DeviceData, EvalData
from occbench.data.dataset import Part
from occbench.engine import build_optimizer, build_schedulers
from occbench.errors import OccbenchError
from occbench_plugins.protocols import (
    Classifier,
    finetune,
    frozen,
    knn,
    layer_groups,
    linear,
    per_class_subset,
    semi,
    topk_accuracy,
)

SETTINGS = {"epochs": 12, "batch_size": 16, "optimizer": {"type": "Adam", "lr": 0.02}, "schedule": {"type": "cosine"},
            "eval_every": 3}


class TinyEncoder(nn.Module):
    """The encoder contract's core (feature_dim, forward(x, mask)) on flattened input, which a probe can
    separate; it refuses a call without the samples' own visibility mask."""

    feature_dim = 8

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(3 * 6 * 25 * 2)
        self.fc = nn.Linear(3 * 6 * 25 * 2, 8)

    def forward(self, x, mask=None):
        assert mask is not None and mask.dtype == torch.bool and mask.shape == (len(x), *x.shape[2:]), \
            "called without the visibility mask"
        return self.fc(self.bn(x.flatten(1)))


def part(n, seed, classes=4):
    rng = np.random.default_rng(seed)
    label = np.arange(n) % classes
    centres = np.random.default_rng(99).normal(0, 1, (classes, 3, 6, 25, 2)).astype(np.float32)
    data = centres[label] + rng.normal(0, 0.8, (n, 3, 6, 25, 2)).astype(np.float32)
    return Part(data, np.ones((n, 6, 25, 2), bool), np.ones((n, 6, 2), bool), np.full(n, 6), label,
                [f"s{i}" for i in range(n)], np.arange(n))


@pytest.fixture
def data():
    torch.manual_seed(0)
    return EvalData(DeviceData(part(96, 1)), DeviceData(part(48, 2)), 4, torch.Generator().manual_seed(0))


def test_linear_keeps_the_encoder_frozen_and_learns(data):
    encoder = TinyEncoder()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    metrics = linear(encoder, data, SETTINGS)
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())  # BN stats too
    assert metrics["top1"] > 80 and metrics["top5"] == 100.0
    assert metrics["epochs"] == 12 and metrics["best_epoch"] in {2, 5, 8, 11}
    assert metrics["top1"] >= metrics["top1_last"]


def test_recompute_takes_the_batch_norm_statistics_of_the_training_data_on_a_copy(data):
    encoder = TinyEncoder()
    encoder.bn.running_mean.fill_(50.0)  # as after pretraining on views unlike the data
    encoder.bn.running_var.fill_(1e-3)
    recomputed = frozen(encoder, data, {"batch_norm": "recompute"})
    x = data.train.x.flatten(1)
    assert torch.allclose(recomputed.bn.running_mean, x.mean(0), atol=1e-5)
    assert torch.allclose(recomputed.bn.running_var, x.var(0), atol=1e-4)
    assert not recomputed.training and torch.equal(recomputed.fc.weight, encoder.fc.weight)
    assert (encoder.bn.running_mean == 50.0).all()  # the caller's encoder keeps its statistics
    assert frozen(encoder, data, {}) is encoder and (encoder.bn.running_var == 1e-3).all()  # published default
    assert linear(encoder, data, {**SETTINGS, "batch_norm": "recompute"})["top1"] > 80
    with pytest.raises(OccbenchError, match="batch_norm='data'.*recompute"):
        knn(encoder, data, {"batch_norm": "data"})


class Rescaled(nn.Module):
    """`encoder` with each feature dimension scaled and shifted differently."""

    def __init__(self, encoder, scale, shift):
        super().__init__()
        self.encoder, self.feature_dim = encoder, encoder.feature_dim
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, x, mask=None):
        return self.encoder(x, mask=mask) * self.scale + self.shift


def test_standardized_features_make_the_probe_blind_to_the_scale_of_each_feature(data):
    torch.manual_seed(1)
    encoder = TinyEncoder().eval()
    rescaled = Rescaled(encoder, torch.logspace(-3, 3, 8), torch.linspace(-500, 500, 8))
    sgd = {**SETTINGS, "optimizer": {"type": "SGD", "lr": 3.0, "momentum": 0.9}, "schedule": {}}

    def top1(model, settings):
        data.generator.manual_seed(0)
        return linear(model, data, settings)["top1"]

    assert top1(encoder, {**sgd, "features": "raw"}) > 95
    assert top1(rescaled, {**sgd, "features": "raw"}) < 60  # lr 3.0 on features of scale 1e-3 to 1e3
    assert top1(rescaled, {**sgd, "features": "standardized"}) > 90
    adam = {**SETTINGS, "features": "standardized"}
    assert top1(rescaled, adam) == pytest.approx(top1(encoder, adam), abs=2.1)  # one clip of 48
    with pytest.raises(OccbenchError, match="features='white'.*standardized"):
        linear(encoder, data, {**SETTINGS, "features": "white"})


def test_finetune_trains_a_copy_of_the_encoder(data):
    encoder = TinyEncoder()
    before = encoder.fc.weight.clone()
    metrics = finetune(encoder, data, SETTINGS)
    assert torch.equal(encoder.fc.weight, before) and metrics["top1"] > 80


class Layered(TinyEncoder):
    """TinyEncoder with the contract's `layers` capability: its BatchNorm, then its linear layer."""

    capabilities = frozenset({"layers"})

    def layers(self):
        return [list(self.bn.parameters()), list(self.fc.parameters())]


@pytest.mark.filterwarnings("ignore:Detected call of `scheduler.step\\(\\)` before")  # no training here
def test_layer_decay_scales_each_layers_learning_rate_by_its_depth_through_the_schedule():
    model = Classifier(Layered(), 4)
    settings = {**SETTINGS, "optimizer": {"type": "AdamW", "lr": 0.1}, "layer_decay": 0.5}
    groups = layer_groups(model, settings)
    assert [group["lr"] for group in groups] == [0.05, 0.1, 0.1]  # bn (one below the top), fc, the head
    assert [p for group in groups for p in group["params"]] == list(model.parameters())
    wrapper = build_optimizer(groups, settings["optimizer"])
    schedulers = build_schedulers(wrapper, {"type": "cosine", "warmup_epochs": 2}, 10)
    for _ in range(6):  # warm-up and cosine keep the ratio of the groups' learning rates
        lrs = [group["lr"] for group in wrapper.optimizer.param_groups]
        assert lrs[0] == pytest.approx(0.5 * lrs[1]) and lrs[1] == pytest.approx(lrs[2])
        for scheduler in schedulers:
            scheduler.step()
    assert list(layer_groups(model, SETTINGS)) == list(model.parameters())  # no layer_decay: one lr


def test_finetune_with_layer_decay_learns_and_needs_layers(data):
    assert finetune(Layered(), data, {**SETTINGS, "layer_decay": 0.5})["top1"] > 80
    with pytest.raises(OccbenchError, match=r"layer_decay=0.5: the encoder \(TinyEncoder\) has no layers\(\)"):
        finetune(TinyEncoder(), data, {**SETTINGS, "layer_decay": 0.5})

    class Forgetful(Layered):
        def layers(self):
            return [list(self.fc.parameters())]

    with pytest.raises(OccbenchError, match=r"Forgetful.layers\(\) does not list each of its parameters exactly once"):
        finetune(Forgetful(), data, {**SETTINGS, "layer_decay": 0.5})


def test_semi_uses_a_per_class_sample(data):
    subset = per_class_subset(data.train.label, 0.25, torch.Generator().manual_seed(3))
    assert len(subset) == 24 and torch.bincount(data.train.label[subset]).tolist() == [6, 6, 6, 6]
    again = per_class_subset(data.train.label, 0.25, torch.Generator().manual_seed(3))
    assert torch.equal(subset, again)
    assert len(per_class_subset(data.train.label, 0.001, torch.Generator())) == 4  # at least one per class
    metrics = semi(TinyEncoder(), data, {**SETTINGS, "label_fraction": 0.25, "batch_size": 8})
    assert metrics["labelled"] == 24 and metrics["top1"] > 40


def test_knn_monitor(data):
    class Identity(nn.Flatten):
        feature_dim = 3 * 6 * 25 * 2

        def forward(self, x, mask=None):
            return super().forward(x)

    metrics = knn(Identity(), data, {"k": 5, "temperature": 0.1})
    assert metrics["top1"] > 90


def test_topk_accuracy():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.3], [0.2, 0.3, 0.5]])
    label = torch.tensor([1, 2, 0])
    assert topk_accuracy(logits, label, 1) == pytest.approx(100 / 3)
    assert topk_accuracy(logits, label, 2) == pytest.approx(200 / 3)
