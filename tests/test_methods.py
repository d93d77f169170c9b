import pytest
import torch

from occbench.engine import seed_everything
from occbench.errors import OccbenchError
from occbench.methods import MoCoMethod
from occbench.plugins import load_plugins
from tests.plugins.stand_ins import make_batch

SMALL = {"queue_size": 64, "encoder": {"hidden_channels": 4, "hidden_dim": 16}}


def head_weight_std(init: str) -> float:
    torch.manual_seed(0)
    return MoCoMethod({**SMALL, "init": init}).heads["joint"][0].weight.std().item()


def test_moco_init_is_the_published_one_unless_pytorch_is_asked_for():
    assert head_weight_std("published") == pytest.approx(0.02, rel=0.1)
    assert head_weight_std("pytorch") == pytest.approx(1 / 16**0.5 / 3**0.5, rel=0.1)  # kaiming-uniform bound 1/4
    with pytest.raises(OccbenchError, match="methods.MoCoMethod.init='xavier': use published or pytorch"):
        MoCoMethod({**SMALL, "init": "xavier"})


@pytest.mark.parametrize("name", ["skeletonclr", "crossclr", "aimclr", "pstl", "opstl"])
def test_every_method_trains_under_bfloat16_autocast(name):
    cls = load_plugins().methods[name]
    settings = {"encoder": {"hidden_channels": 4, "hidden_dim": 16}}
    if name in ("pstl", "opstl"):
        settings = {**settings, "projector_dim": 32, "mask_frame": 2}
    else:
        settings = {**settings, "queue_size": 32, "init": "pytorch"}
    method = cls(settings)
    generator = seed_everything(0)
    queues = {n: b.clone() for n, b in method.named_buffers() if n.startswith("queue_")}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = method.training_step(make_batch(8, t=16), epoch=10, generator=generator)
    assert losses["loss"].isfinite()
    losses["loss"].backward()
    grads = [p.grad for p in method.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and g.isfinite().all() for g in grads)
    for n, b in method.named_buffers():  # the queues took the keys, in float32
        if n in queues and b.dtype.is_floating_point:
            assert b.dtype == torch.float32 and not torch.equal(b, queues[n])
