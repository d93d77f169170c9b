"""The skeleton transformer: its tokens, its visibility rules, and the identity that makes an MAE cheap."""

import pytest
import torch

from occbench.errors import OccbenchError
from occbench.nn.transformer import SkeletonTransformer


def small(**settings):
    torch.manual_seed(0)
    return SkeletonTransformer(**{"frames": 8, "segment": 2, "width": 16, "depth": 2, "heads": 4, **settings}).eval()


def skeletons(n=3, t=8, m=2, seed=0):
    return torch.randn(n, 3, t, 25, m, generator=torch.Generator().manual_seed(seed))


def test_a_token_is_one_joint_over_one_segment_of_one_person():
    model, x = small(), skeletons()
    tokens = model.tokens(x)
    assert tokens.shape == (3 * 2, 4 * 25, 2 * 3)
    n, m, s, v = 1, 1, 2, 7  # sample 1, person 1, segment 2, joint 7
    expected = x[n, :, 2 * s:2 * s + 2, v, m].T.reshape(-1)  # (frame, coordinate)
    assert torch.equal(tokens[n * 2 + m, s * 25 + v], expected)
    assert model(x).shape == (3, 16) and model(x, mask=torch.ones(3, 8, 25, 2, dtype=torch.bool)).shape == (3, 16)


def test_an_occluded_joint_never_reaches_the_features():
    model, x = small(), skeletons()
    mask = torch.ones(3, 8, 25, 2, dtype=torch.bool)
    mask[:, 3, 5] = False  # joint 5 in frame 3: its segment's token is not visible
    moved = x.clone()
    moved[:, :, 3, 5] += 100.0
    assert torch.allclose(model(moved, mask=mask), model(x, mask=mask), atol=1e-6)
    assert not torch.allclose(model(moved, mask=torch.ones_like(mask)), model(x, mask=torch.ones_like(mask)))


def test_an_absent_person_is_left_out_of_the_mean_over_persons():
    model, x = small(), skeletons()
    mask = torch.ones(3, 8, 25, 2, dtype=torch.bool)
    mask[..., 1] = False  # nobody in the second body slot
    torch.testing.assert_close(model(x, mask=mask), model(x[..., :1], mask=mask[..., :1]))


def test_encoding_the_visible_tokens_alone_equals_attending_to_them_only():
    """Why an MAE encoder may run on its visible tokens only."""
    model = small()
    tokens = model.embed_tokens(model.tokens(skeletons()))
    keep = torch.randperm(tokens.shape[1], generator=torch.Generator().manual_seed(1))[:10].sort().values
    valid = torch.zeros(tokens.shape[:2], dtype=torch.bool)
    valid[:, keep] = True
    alone = model.encode(tokens[:, keep])
    torch.testing.assert_close(model.encode(tokens, valid)[:, keep], alone, atol=1e-5, rtol=1e-5)


def test_it_trains():
    model = small().train()
    model(skeletons(), mask=torch.rand(3, 8, 25, 2) > 0.2).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_shapes_it_cannot_take_are_one_line_errors():
    with pytest.raises(OccbenchError, match="frames=9 is not a multiple of segment=2"):
        SkeletonTransformer(frames=9, segment=2)
    with pytest.raises(OccbenchError, match="expected \\(N, 3, 8, 25, M\\) skeletons"):
        small()(skeletons(t=10))


def test_its_layers_run_from_the_embeddings_to_the_norm_and_cover_every_parameter_once():
    from torch import nn

    from occbench.encoders import FeatureEncoder

    model = small()
    layers = model.layers()
    assert len(layers) == len(model.blocks) + 2
    assert any(p is model.temporal_position for p in layers[0])
    assert [id(p) for p in layers[-1]] == [id(p) for p in model.norm.parameters()]
    assert sorted(id(p) for layer in layers for p in layer) == sorted(id(p) for p in model.parameters())
    two = FeatureEncoder(nn.ModuleDict({"joint": small(), "motion": small()}))
    assert "layers" in two.capabilities and len(two.layers()) == len(layers)
    assert sum(len(layer) for layer in two.layers()) == 2 * sum(len(layer) for layer in layers)
