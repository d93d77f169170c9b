import pytest
import torch

from occbench.errors import OccbenchError
from occbench.nn.stgcn import STGCN, ReferenceSTGCN, _keep_mask, init_weights

# The published network's blocks: (in, out, temporal stride, residual), hidden 16, hidden_dim 256.
LAYERS = [(3, 16, 1, None), (16, 16, 1, "id"), (16, 16, 1, "id"), (16, 16, 1, "id"), (16, 32, 2, "conv"),
          (32, 32, 1, "id"), (32, 32, 1, "id"), (32, 64, 2, "conv"), (64, 64, 1, "id"), (64, 256, 1, "conv")]
K, V, TK = 3, 25, 9


def published_parameter_count(edge_importance=True) -> int:
    total = 2 * 3 * V  # data_bn (75 channels): weight + bias
    for cin, cout, _, residual in LAYERS:
        total += cin * K * cout + K * cout  # gcn: 1x1 conv to K*C channels
        total += 2 * cout + cout * cout * TK + cout + 2 * cout  # tcn: BN, 9x1 conv, BN
        if residual == "conv":
            total += cin * cout + cout + 2 * cout  # 1x1 conv + BN
    return total + (len(LAYERS) * K * V * V if edge_importance else 0)


def published_keys() -> set[str]:
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"A"} | {f"data_bn.{p}" for p in bn}
    for i, (_, _, _, residual) in enumerate(LAYERS):
        block = f"st_gcn_networks.{i}"
        keys |= {f"{block}.gcn.conv.weight", f"{block}.gcn.conv.bias"}
        keys |= {f"{block}.tcn.{j}.{p}" for j in (0, 3) for p in bn} | {f"{block}.tcn.2.weight", f"{block}.tcn.2.bias"}
        if residual == "conv":
            keys |= {f"{block}.residual.0.weight", f"{block}.residual.0.bias"}
            keys |= {f"{block}.residual.1.{p}" for p in bn}
        keys.add(f"edge_importance.{i}")
    return keys


def trained_like(seed=0, **kwargs) -> STGCN:
    """An encoder with non-trivial weights, BN statistics and edge importances."""
    torch.manual_seed(seed)
    model = STGCN(**kwargs)
    model.apply(init_weights)
    with torch.no_grad():
        for mask in model.edge_importance or []:
            mask.mul_(1 + 0.3 * torch.rand_like(mask))
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return model


def skeletons(n=2, t=20, seed=1, dtype=torch.float32):
    return torch.randn(n, 3, t, V, 2, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_parameter_count_and_layout_match_the_published_network():
    model = STGCN()
    assert published_parameter_count() == 821_380  # 802,630 + 18,750 edge importance
    assert sum(p.numel() for p in model.parameters()) == published_parameter_count()
    plain = STGCN(edge_importance=False).eval()
    assert sum(p.numel() for p in plain.parameters()) == published_parameter_count(edge_importance=False) == 802_630
    assert plain(skeletons()).shape == (2, 256)
    assert set(model.state_dict()) == published_keys()
    blocks = model.st_gcn_networks
    assert [b.tcn[4].p for b in blocks] == [0.0] + [0.5] * 9  # block 1: no dropout (published **kwargs0)
    assert [b.residual_mode for b in blocks] == ["none"] + ["identity"] * 3 + ["conv"] + ["identity"] * 2 + [
        "conv", "identity", "conv"]
    assert model.feature_dim == 256 and STGCN.feature_dim == 256


@pytest.mark.parametrize(("t", "t_out"), [(50, 13), (30, 8), (21, 6)])
def test_output_shapes(t, t_out):
    model = STGCN().eval()
    x = skeletons(t=t)
    fmap = model.feature_map(x)
    assert fmap.shape == (4, 256, t_out, 25)
    assert model(x).shape == (2, 256)
    torch.testing.assert_close(model.pool(fmap, 2), model(x))


def test_eval_is_deterministic_and_train_dropout_follows_the_seed():
    model = trained_like()
    x = skeletons()
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(3)
    a = model(x)
    torch.manual_seed(3)
    b = model(x)
    torch.manual_seed(4)
    c = model(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_keep_mask_frequency():
    for p in (0.5, 0.2):
        mask = _keep_mask((400, 500), p, torch.zeros(()))
        assert mask.dtype == torch.float32 and set(mask.unique().tolist()) == {0, 1}
        assert abs(mask.float().mean().item() - (1 - p)) < 0.005


def test_gradients_reach_every_parameter():
    model = trained_like().train()
    model(skeletons()).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if not name.endswith(("tcn.2.bias", "residual.0.bias")):  # biases right before a BatchNorm
            assert p.grad.abs().max() > 0, name


def run_pstl_style(model: STGCN, x: torch.Tensor, ignore) -> torch.Tensor:
    """PSTL's forward written out: BN over all joints, drop the joints, slice A * importance."""
    n, c, t, v, m = x.shape
    keep = sorted(set(range(v)) - set(ignore))
    h = model.data_bn(x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t))
    h = h.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)[..., keep]
    for block, mask in zip(model.st_gcn_networks, model.edge_importance, strict=True):
        a = (model.A * mask)[:, keep][:, :, keep]
        h = block.reference(h, a)
    return h.mean(dim=(2, 3)).view(n, m, -1).mean(dim=1)


@pytest.mark.parametrize("ignore", [[3, 7, 7, 20], torch.tensor([0, 24, 11])])
def test_ignore_joints_removes_them_from_the_graph(ignore):
    model = trained_like().eval()
    x = skeletons()
    ignored = sorted({int(j) for j in ignore})
    out = model(x, ignore_joints=ignore)
    assert out.shape == (2, 256)
    assert model.feature_map(x, ignore).shape == (4, 256, 5, 25 - len(ignored))
    torch.testing.assert_close(out, run_pstl_style(model, x, ignored), rtol=1e-5, atol=1e-6)
    # what the removed joints hold does not matter (the input BatchNorm is per joint and coordinate)
    y = x.clone()
    y[:, :, :, ignored] = 100 * torch.randn_like(y[:, :, :, ignored])
    torch.testing.assert_close(model(y, ignore), out, rtol=0, atol=1e-6)
    model.train()
    torch.manual_seed(0)
    a = model(x, ignore)
    torch.manual_seed(0)
    torch.testing.assert_close(model(y, ignore), a, rtol=0, atol=1e-5)
    assert not torch.allclose(model.eval()(x), out)  # and they do matter when kept


def test_input_checks():
    model = STGCN()
    with pytest.raises(OccbenchError, match="expected"):
        model(torch.zeros(2, 3, 20, 24, 2))
    with pytest.raises(OccbenchError, match="0..24"):
        model(skeletons(), ignore_joints=[25])
    with pytest.raises(OccbenchError, match="every joint"):
        model(skeletons(), ignore_joints=range(25))
    with pytest.raises(OccbenchError, match="25-joint"):
        STGCN(num_joints=18)


def test_init_weights_is_the_published_initialisation():
    torch.manual_seed(0)
    model = STGCN()
    model.apply(init_weights)
    conv = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(conv.std().item() - 0.02) < 0.001 and abs(conv.mean().item()) < 0.001
    bn = torch.cat([m.weight for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)])
    assert abs(bn.mean().item() - 1) < 0.01 and abs(bn.std().item() - 0.02) < 0.005
    assert all(not m.bias.any() for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d)))
    assert all((e == 1).all() for e in model.edge_importance)


def compare(fast: STGCN, ref: STGCN, x, ignore, rtol, out_atol):
    """Outputs, gradients (parameters and input) and updated BatchNorm statistics of both."""
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a, b = fast(xa, ignore), ref(xb, ignore)
    torch.testing.assert_close(a, b, rtol=0, atol=out_atol)
    weights = torch.linspace(-1, 1, a.shape[1], dtype=a.dtype)
    (a * weights).sum().backward()
    (b * weights).sum().backward()
    grads = [(n, p.grad, q.grad) for (n, p), q in zip(fast.named_parameters(), ref.parameters(), strict=True)]
    for name, g, h in grads + [("input", xa.grad, xb.grad)]:
        if name.endswith(("tcn.2.bias", "residual.0.bias")):
            continue  # exactly 0 in theory (a BatchNorm follows): only rounding noise to compare
        torch.testing.assert_close(g, h, rtol=0, atol=rtol * h.abs().max().item() + 1e-30, msg=name)
    for (name, s), t in zip(fast.state_dict().items(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(s, t, rtol=0, atol=out_atol, msg=name)


@pytest.mark.parametrize("ignore", [None, [3, 7, 7, 20]])
def test_fast_and_reference_formulations_agree(ignore):
    for dtype, rtol, out_atol, modes in [
        (torch.float32, 1e-5, 1e-5, ("eval",)),
        # train-mode (batch-statistics) gradients of a deep ReLU network are only float32-exact up to the
        # ReLU kinks that rounding can flip, so train mode is compared where rounding cannot flip them
        (torch.float64, 1e-10, 1e-12, ("eval", "train")),
    ]:
        for mode in modes:
            fast = trained_like(dropout=0.0).to(dtype)
            ref = ReferenceSTGCN(dropout=0.0).to(dtype)
            ref.load_state_dict(fast.state_dict())
            fast.train(mode == "train")
            ref.train(mode == "train")
            compare(fast, ref, skeletons(dtype=dtype), ignore, rtol, out_atol)
    # and in float32 train mode the outputs agree to 1e-5
    fast, ref = trained_like(dropout=0.0).train(), ReferenceSTGCN(dropout=0.0).train()
    ref.load_state_dict(fast.state_dict())
    x = skeletons()
    torch.testing.assert_close(fast(x, ignore), ref(x, ignore), rtol=0, atol=1e-5)


def test_dropout_matches_the_reference_in_distribution():
    torch.manual_seed(0)
    fast = STGCN()
    ref = ReferenceSTGCN()
    ref.load_state_dict(fast.state_dict())
    block, ref_block = fast.st_gcn_networks[1].train(), ref.st_gcn_networks[1].train()
    h = torch.randn(64, 16, 20, 25)
    a = block(h.permute(2, 1, 3, 0).contiguous(), fast.A).permute(3, 1, 0, 2)  # time-outer (T, C, V, N)
    b = ref_block.reference(h.clone(), ref.A)
    assert abs(a.mean().item() - b.mean().item()) < 0.01 and abs(a.std().item() - b.std().item()) < 0.01
    assert abs((a == 0).float().mean().item() - (b == 0).float().mean().item()) < 0.01
