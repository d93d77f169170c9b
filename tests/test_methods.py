import pytest
import torch

from occbench.errors import OccbenchError
from occbench.methods import MoCoMethod

SMALL = {"queue_size": 64, "encoder": {"hidden_channels": 4, "hidden_dim": 16}}


def head_weight_std(init: str) -> float:
    torch.manual_seed(0)
    return MoCoMethod({**SMALL, "init": init}).heads["joint"][0].weight.std().item()


def test_moco_init_is_the_published_one_unless_pytorch_is_asked_for():
    assert head_weight_std("published") == pytest.approx(0.02, rel=0.1)
    assert head_weight_std("pytorch") == pytest.approx(1 / 16**0.5 / 3**0.5, rel=0.1)  # kaiming-uniform bound 1/4
    with pytest.raises(OccbenchError, match="init 'xavier': use published or pytorch"):
        MoCoMethod({**SMALL, "init": "xavier"})
