"""The evaluation protocols: each a plain function (encoder, data, settings) -> metrics dict.

Metrics are top-1/top-5 accuracy in percent at the best evaluation (what the published code reports)
and at the last epoch, with the best epoch.

The frozen-encoder protocols (linear, knn) take `batch_norm`: "encoder" evaluates with the BatchNorm
statistics the encoder holds, as the published code does; after pretraining those are the statistics of
its augmented views (sheared, cropped, masked). "recompute" first sets them to those of the un-augmented
training data (PreciseBN, Wu & Johnson 2021), on a copy; the weights are the encoder's either way. With
a long pretraining the two hardly differ; after a few epochs they do (docs/results.md), and an encoder
with random weights needs data statistics to be a baseline at all, so comparing trained with random
weights is only fair with "recompute".

The linear probe also takes `features`: "raw" (published) trains the classifier on the features as they
come; "standardized" on features shifted and scaled by the training set's per-dimension mean and
standard deviation, i.e. a BatchNorm without affine parameters before the classifier (the linear probe
of MoCo v3 and MAE). The published learning rates were tuned on the features of fully pretrained
encoders; a few-epoch encoder and its random weights give features of other, and different, scales,
and standardized the probe compares what the features separate rather than their scale (docs/results.md
has the quick profile measured both ways).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from occbench.data.batches import DeviceData, EvalData
from occbench.engine import OPTIMIZER, SCHEDULE, calibrate_batch_norm, fit
from occbench.errors import OccbenchError
from occbench.hookspecs import hookimpl
from occbench.settings import integer, number, one_of, text

# The values of the settings that choose; the first is the default (the published behaviour).
CHOICES = {"batch_norm": ("encoder", "recompute"), "features": ("raw", "standardized")}


def _choice(settings: dict, name: str) -> str:
    value = settings.get(name, CHOICES[name][0])
    if value not in CHOICES[name]:
        raise OccbenchError(f"protocol setting {name}={value!r}: use {' or '.join(CHOICES[name])}")
    return value


def topk_accuracy(logits: torch.Tensor, label: torch.Tensor, k: int) -> float:
    k = min(k, logits.shape[1])
    hits = (logits.topk(k, dim=1).indices == label[:, None]).any(dim=1)
    return 100.0 * hits.float().mean().item()


@torch.no_grad()
def predict(model: nn.Module, data: DeviceData, batch_size: int = 256) -> torch.Tensor:
    model.eval()
    out = torch.cat([model(x, mask=mask) for x, mask in data.inputs(batch_size)])
    if not torch.isfinite(out).all():
        raise OccbenchError("the encoder gives NaN or infinite features: its pretraining diverged, or its "
                            "input holds NaN; nothing is recorded")
    return out


def summarise(history: list[dict]) -> dict:
    evaluated = [h for h in history if "top1" in h]
    best = max(evaluated, key=lambda h: h["top1"])
    last = evaluated[-1]
    return {
        "top1": best["top1"], "top5": best["top5"], "best_epoch": best["epoch"],
        "top1_last": last["top1"], "top5_last": last["top5"], "epochs": len(history),
    }


def _train_classifier(model: nn.Module, trainable, train: DeviceData, data: EvalData, settings: dict,
                      encoder_train_mode: bool, subset: torch.Tensor | None = None) -> dict:
    """The loop shared by every trained protocol; evaluates `model` on data.val."""

    def batches(epoch, generator):
        return train.batches(settings["batch_size"], generator, drop_last=True, subset=subset)

    def step(batch, epoch):
        return {"loss": F.cross_entropy(model(batch.x, mask=batch.mask), batch.label)}

    def evaluate(epoch):
        logits = predict(model, data.val)
        return {"top1": topk_accuracy(logits, data.val.label, 1), "top5": topk_accuracy(logits, data.val.label, 5)}

    history = fit(model, step, batches, settings["epochs"], settings["optimizer"], settings.get("schedule", {}),
                  data.generator, evaluate=evaluate, eval_every=settings.get("eval_every", 1), params=trainable,
                  progress=data.progress, train_mode=encoder_train_mode)
    return summarise(history)


class _Frozen(nn.Module):
    """Precomputed features: a frozen encoder in eval mode without augmentation gives the same
    features every epoch, so computing them once is exact and removes the encoder from the loop."""

    def __init__(self, classifier: nn.Linear):
        super().__init__()
        self.classifier = classifier

    def forward(self, features, mask=None):  # the features of masked skeletons: the mask is in them
        return self.classifier(features)


class Classifier(nn.Module):
    """An encoder and a linear classifier on its features, called like the encoder (x, mask)."""

    def __init__(self, encoder: nn.Module, num_class: int):
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(encoder.feature_dim, num_class)

    def forward(self, x, mask=None):
        return self.head(self.encoder(x, mask=mask))


def frozen(encoder: nn.Module, data: EvalData, settings: dict) -> nn.Module:
    """The encoder in eval mode with the BatchNorm statistics `settings["batch_norm"]` asks for."""
    if _choice(settings, "batch_norm") == "recompute":
        encoder = copy.deepcopy(encoder)
        calibrate_batch_norm(encoder, data.train.inputs())
    return encoder.eval()


@torch.no_grad()
def _features(encoder: nn.Module, data: DeviceData) -> DeviceData:
    out = copy.copy(data)
    out.x = predict(encoder, data)
    return out


def linear(encoder: nn.Module, data: EvalData, settings: dict) -> dict:
    """Frozen encoder (eval mode: BN statistics fixed, no dropout), a linear classifier on its features."""
    standardized = _choice(settings, "features") == "standardized"
    encoder = frozen(encoder, data, settings)
    train, val = _features(encoder, data.train), _features(encoder, data.val)
    if standardized:
        mean, std = train.x.mean(dim=0), train.x.std(dim=0).clamp_min(1e-6)
        train.x, val.x = (train.x - mean) / std, (val.x - mean) / std
    classifier = nn.Linear(encoder.feature_dim, data.num_class).to(val.x.device)
    nn.init.xavier_normal_(classifier.weight)
    nn.init.zeros_(classifier.bias)
    model = _Frozen(classifier)
    features = EvalData(train, val, data.num_class, data.generator, data.progress)
    return _train_classifier(model, classifier.parameters(), train, features, settings, encoder_train_mode=True)


def finetune(encoder: nn.Module, data: EvalData, settings: dict, subset: torch.Tensor | None = None) -> dict:
    """The whole network (encoder in train mode) and a linear classifier, trained on the labels."""
    device = data.train.x.device
    model = Classifier(copy.deepcopy(encoder), data.num_class).to(device)
    return _train_classifier(model, layer_groups(model, settings), data.train, data, settings,
                             encoder_train_mode=True, subset=subset)


def layer_groups(model: Classifier, settings: dict):
    """The parameters to finetune, with layer-wise learning-rate decay (BEiT; MAE's and MAMP's finetuning)
    when `layer_decay` < 1: the encoder's layer i of L (its `layers()`, input first) trains at
    lr * layer_decay ** (L - 1 - i), its last layer and the classifier at lr. 1 (the default, the ST-GCN
    methods' published finetuning): one learning rate for all."""
    decay = settings.get("layer_decay", 1.0)
    if decay == 1:
        return model.parameters()
    encoder = model.encoder
    if "layers" not in getattr(encoder, "capabilities", ()):
        raise OccbenchError(f"layer_decay={decay}: the encoder ({type(encoder).__name__}) has no layers() to decay; "
                            "set layer_decay to 1 for this method")
    layers = encoder.layers()
    listed = [id(p) for layer in layers for p in layer]
    if sorted(listed) != sorted(id(p) for p in encoder.parameters()):
        raise OccbenchError(f"layer_decay: {type(encoder).__name__}.layers() does not list each of its parameters "
                            "exactly once; fix its layers() or set layer_decay to 1")
    lr = settings["optimizer"]["lr"]
    groups = [{"params": layer, "lr": lr * decay ** (len(layers) - 1 - i)} for i, layer in enumerate(layers)]
    return [*groups, {"params": list(model.head.parameters()), "lr": lr}]


def per_class_subset(label: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """round(fraction * n_c) samples of each class c (at least one), drawn with the generator, sorted."""
    chosen = []
    for c in torch.unique(label).tolist():
        members = torch.nonzero(label == c).flatten().cpu()
        count = max(1, round(fraction * len(members)))
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.sort(torch.cat(chosen)).values


def semi(encoder: nn.Module, data: EvalData, settings: dict) -> dict:
    """Finetuning on a per-class sample of `label_fraction` of the labelled training set."""
    subset = per_class_subset(data.train.label, settings["label_fraction"], data.generator)
    metrics = finetune(encoder, data, settings, subset=subset)
    return {**metrics, "labelled": len(subset)}


@torch.no_grad()
def knn(encoder: nn.Module, data: EvalData, settings: dict) -> dict:
    """Weighted kNN on L2-normalised features (SimSiam's monitor): votes exp(similarity / t) of the k
    nearest training samples. No training."""
    encoder = frozen(encoder, data, settings)
    train = F.normalize(predict(encoder, data.train), dim=1)
    val = F.normalize(predict(encoder, data.val), dim=1)
    k = min(settings.get("k", 20), len(train))
    similarity, index = (val @ train.T).topk(k, dim=1)
    votes = torch.zeros(len(val), data.num_class, device=val.device)
    votes.scatter_add_(1, data.train.label[index], (similarity / settings.get("temperature", 0.1)).exp())
    top1, top5 = topk_accuracy(votes, data.val.label, 1), topk_accuracy(votes, data.val.label, 5)
    return {"top1": top1, "top5": top5, "top1_last": top1, "top5_last": top5, "best_epoch": 0, "epochs": 0}


# The settings each protocol reads, with their types and ranges (checked when a grid is planned).
TRAINING = {"epochs": integer(1), "batch_size": integer(1), "optimizer": OPTIMIZER, "schedule": SCHEDULE,
            "eval_every": integer(1)}
FROZEN = {"batch_norm": one_of(*CHOICES["batch_norm"])}
linear.schema = {**TRAINING, **FROZEN, "variant": text(), "features": one_of(*CHOICES["features"])}
finetune.schema = {**TRAINING, "layer_decay": number(0, 1, above=True)}
semi.schema = {**finetune.schema, "label_fraction": number(0, 1, above=True)}
knn.schema = {**FROZEN, "k": integer(1), "temperature": number(0, above=True)}


# Its profile entry holds one recipe per published probe (protocols.linear.<recipe>); a method names the one
# of its paper in its `recipes`, the others take SkeletonCLR's (torchlight).
linear.default_recipe = "torchlight"
linear.headline = True  # the protocol of the paper's main tables (I-III): tables show it when none is chosen


def labelled(fn, title: str, label: str, order: float):
    """`fn` under its own labels in tables: semi1 and semi10 are one protocol with two label fractions."""

    def protocol(encoder, data, settings):
        return fn(encoder, data, settings)

    protocol.__dict__.update(fn.__dict__, title=title, label=label, order=order)
    protocol.__name__ = protocol.__qualname__ = fn.__name__
    protocol.__doc__ = fn.__doc__
    return protocol


@hookimpl
def occbench_register_protocols(registry):
    # the order of the paper's Table IV: finetune, semi 1%, semi 10%, then linear
    registry.add("linear", labelled(linear, "linear evaluation", "linear", 40))
    registry.add("semi1", labelled(semi, "semi-supervised, 1% labels", "semi 1%", 20))
    registry.add("semi10", labelled(semi, "semi-supervised, 10% labels", "semi 10%", 30))
    registry.add("finetune", labelled(finetune, "finetuning on all labels", "finetune", 10))
    registry.add("knn", labelled(knn, "kNN on features (monitor, no training)", "kNN", 50))
