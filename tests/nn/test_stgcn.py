import functools

import pytest
import torch
import torch.nn.functional as F

import occbench.nn.stgcn as stgcn
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
    """An encoder with non-trivial weights, biases, BN statistics and edge importances."""
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
                module.bias.normal_(0, 0.1)
            elif isinstance(module, torch.nn.Conv2d):  # the fast model folds conv biases into BatchNorm
                module.bias.normal_(0, 0.1)
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
    weights = torch.linspace(-1, 1, a.shape[1], dtype=a.dtype, device=a.device)
    (a * weights).sum().backward()
    (b * weights).sum().backward()
    grads = [(n, p.grad, q.grad) for (n, p), q in zip(fast.named_parameters(), ref.parameters(), strict=True)]
    for name, g, h in grads + [("input", xa.grad, xb.grad)]:
        if fast.training and name.endswith(("tcn.2.bias", "residual.0.bias")):
            continue  # exactly 0 in theory (a BatchNorm in training mode follows): only rounding noise
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


def test_fast_and_reference_agree_when_the_graph_convolution_narrows_the_channels():
    """hidden_dim < 4 * hidden_channels: the last block mixes the channels before the adjacency product."""
    fast = trained_like(hidden_channels=8, hidden_dim=16, dropout=0.0).double()
    ref = ReferenceSTGCN(hidden_channels=8, hidden_dim=16, dropout=0.0).double()
    ref.load_state_dict(fast.state_dict())
    for mode in ("eval", "train"):
        fast.train(mode == "train")
        ref.train(mode == "train")
        compare(fast, ref, skeletons(dtype=torch.float64), None, 1e-10, 1e-12)


def test_running_statistics_with_cumulative_momentum_and_without_tracking():
    fast = trained_like(dropout=0.0).double()
    ref = ReferenceSTGCN(dropout=0.0).double()
    ref.load_state_dict(fast.state_dict())
    for model in (fast, ref):
        for i, module in enumerate(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            module.momentum = None  # cumulative moving average
            if i % 5 == 4:  # and a few without running statistics at all
                module.track_running_stats = False
                module.running_mean = module.running_var = module.num_batches_tracked = None
    x = skeletons(dtype=torch.float64)
    for _ in range(2):
        torch.testing.assert_close(fast.train()(x), ref.train()(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(fast.eval()(x), ref.eval()(x), rtol=0, atol=1e-12)
    for (name, s), t in zip(fast.state_dict().items(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(s, t, rtol=0, atol=1e-12, msg=name)


def test_train_mode_with_dropout_equals_the_reference_given_the_same_masks(monkeypatch):
    """The fast block's dropout (BN affine scaled by 2, times the mask) is nn.Dropout with that mask."""
    masks = []

    def recorded(shape, p, like, packed=None):
        masks.append(_keep_mask(shape, p, like, packed))
        return masks[-1]

    monkeypatch.setattr(stgcn, "_keep_mask", recorded)
    fast = trained_like().double().train()
    ref = ReferenceSTGCN().double().train()
    ref.load_state_dict(fast.state_dict())
    x = skeletons(dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a = fast(xa)
    assert len(masks) == 9  # blocks 2-10
    replay = iter(masks)
    for block in ref.st_gcn_networks[1:]:
        block.tcn[4] = _MaskedDropout(next(replay))
    b = ref(xb)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    weights = torch.linspace(-1, 1, a.shape[1], dtype=a.dtype, device=a.device)
    (a * weights).sum().backward()
    (b * weights).sum().backward()
    for (name, p), q in zip(fast.named_parameters(), ref.parameters(), strict=True):
        if not name.endswith(("tcn.2.bias", "residual.0.bias")):
            torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-10 * q.grad.abs().max().item(), msg=name)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=0, atol=1e-10 * xb.grad.abs().max().item())


class _MaskedDropout(torch.nn.Module):
    """Dropout with a given keep mask, laid out time-outer (T, C, V*N*M) as the fast model draws it."""

    def __init__(self, keep):
        super().__init__()
        self.keep = keep

    def forward(self, x):  # x: (N*M, C, T, V)
        nm, c, t, v = x.shape
        return x * self.keep.view(t, c, v, nm).permute(3, 1, 0, 2) * 2


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("p", [0.5, 0.2])
def test_keep_mask_formulations(packed, p):
    """The packed-bits masks (CPU) and the bernoulli_ ones (other devices), both run here on CPU."""
    torch.manual_seed(0)
    mask = _keep_mask((300, 1001), p, torch.zeros((), dtype=torch.float64), packed=packed)
    assert mask.shape == (300, 1001) and mask.dtype == torch.float64
    assert set(mask.unique().tolist()) == {0, 1}
    assert abs(mask.mean().item() - (1 - p)) < 0.005
    # neighbouring elements are independent (the packed masks spread each random word over 8 or 4 elements)
    flat = mask.flatten()
    assert abs((flat[1:] * flat[:-1]).mean().item() - (1 - p) ** 2) < 0.005


def test_the_generic_dropout_path_trains_like_the_packed_one(monkeypatch):
    x = skeletons(n=8, t=30)
    outputs = {}
    for packed in (True, False):
        monkeypatch.setattr(stgcn, "_keep_mask", functools.partial(_keep_mask, packed=packed))
        model = trained_like().train()
        torch.manual_seed(0)
        out = model(x)
        out.square().sum().backward()
        outputs[packed] = out
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    a, b = outputs[True], outputs[False]
    assert not torch.equal(a, b)  # different random streams
    assert abs(a.mean() - b.mean()) < 0.1 * a.abs().mean() and abs(a.std() - b.std()) < 0.2 * a.std()


@pytest.mark.parametrize(("t", "stride"), [(20, 1), (20, 2), (21, 2), (13, 1), (5, 1), (3, 2), (1, 1), (10, 3)])
def test_windowed_convolution_and_its_gradients_equal_conv2d(t, stride):
    torch.manual_seed(0)
    x = torch.randn(t, 3, 7, dtype=torch.float64, requires_grad=True)  # time-outer (T, C_in, L)
    weight = torch.randn(4, 3, 9, 1, dtype=torch.float64, requires_grad=True)
    ref = F.conv2d(x.permute(1, 0, 2).unsqueeze(0), weight, stride=(stride, 1), padding=(4, 0))[0].permute(1, 0, 2)
    kernel = weight.detach().squeeze(3).permute(0, 2, 1).reshape(4, -1)
    out = stgcn._windowed(x.detach(), kernel, 9, 4, stride, torch.empty(ref.shape, dtype=torch.float64))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    dy = torch.randn(ref.shape, dtype=torch.float64)
    ref.backward(dy)
    torch.testing.assert_close(stgcn._conv_input_grad(dy, weight.detach(), stride, t), x.grad, rtol=0, atol=1e-12)
    dk = stgcn._windowed_weight_grad(dy, x.detach(), 9, 4, stride)
    torch.testing.assert_close(dk.view(4, 9, 3).transpose(1, 2).unsqueeze(3), weight.grad, rtol=0, atol=1e-12)
    # bfloat16 on CPU takes the per-step mm path (its bmm would copy the overlapping windows)
    half = stgcn._windowed(x.detach().bfloat16(), kernel.bfloat16(), 9, 4, stride,
                           torch.empty(ref.shape, dtype=torch.bfloat16))
    torch.testing.assert_close(half.double(), ref, rtol=0.05, atol=0.1)
    dk = stgcn._windowed_weight_grad(dy.bfloat16(), x.detach().bfloat16(), 9, 4, stride)
    torch.testing.assert_close(dk.double().view(4, 9, 3).transpose(1, 2).unsqueeze(3), weight.grad, rtol=0.05, atol=0.2)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_bfloat16_autocast_is_as_close_to_float32_as_the_reference_is(mode):
    fast = trained_like(dropout=0.0).train(mode == "train")
    ref = ReferenceSTGCN(dropout=0.0).train(mode == "train")
    exact = ReferenceSTGCN(dropout=0.0).train(mode == "train")
    ref.load_state_dict(fast.state_dict())
    exact.load_state_dict(fast.state_dict())
    x = skeletons(n=4, t=30)
    results = []
    for model, autocast in ((fast, True), (ref, True), (exact, False)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(x)
        assert out.dtype == (torch.bfloat16 if autocast else torch.float32)
        out.float().square().sum().backward()
        assert all(p.grad.dtype == torch.float32 for p in model.parameters())
        results.append((out.float(), torch.cat([p.grad.flatten() for p in model.parameters()])))
    (fast_out, fast_grad), (ref_out, ref_grad), (out, grad) = results

    def error(a, b):
        return ((a - b).norm() / b.norm()).item()

    assert error(fast_out, out) < 2 * error(ref_out, out) + 1e-3
    assert error(fast_grad, grad) < 2 * error(ref_grad, grad) + 1e-3


def test_pool_reads_the_time_outer_view_and_any_other_layout():
    model = trained_like().eval()
    x = skeletons()
    fmap = model.feature_map(x)
    assert not fmap.is_contiguous() and fmap.permute(2, 1, 3, 0).is_contiguous()
    expected = fmap.contiguous().mean(dim=(2, 3)).view(2, 2, -1).mean(dim=1)
    torch.testing.assert_close(STGCN.pool(fmap, 2), expected)
    torch.testing.assert_close(STGCN.pool(fmap.contiguous(), 2), expected)


def test_a_device_whose_equality_test_has_not_run_gets_the_published_formulation(monkeypatch):
    from occbench.nn import stgcn

    fast = trained_like(dropout=0.0).eval()
    ref = ReferenceSTGCN(dropout=0.0).eval()
    ref.load_state_dict(fast.state_dict())
    x = skeletons()
    monkeypatch.setattr(stgcn, "CHECKED_DEVICES", frozenset())  # as CUDA is until a GPU run
    monkeypatch.setattr(stgcn._TemporalUnit, "apply", lambda *args: pytest.fail("the fast path ran"))
    for ignore in (None, [3, 7]):  # the same blocks; only the pooling's rounding differs
        torch.testing.assert_close(fast(x, ignore), ref(x, ignore), rtol=0, atol=1e-6)
    fast.train()
    fast(x).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in fast.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    fast = trained_like(dropout=0.0).eval()
    x = skeletons()
    expected = fast(x)
    torch.testing.assert_close(fast.cuda()(x.cuda()).cpu(), expected, rtol=1e-4, atol=1e-5)
    fast.train()
    fast(x.cuda()).square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in fast.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("ignore", [None, [3, 7, 7, 20]])
def test_the_fast_formulation_on_cuda_agrees_with_the_reference(monkeypatch, ignore):
    """The test that would add "cuda" to CHECKED_DEVICES: STGCN's own formulation, forced on CUDA."""
    from occbench.nn import stgcn

    monkeypatch.setattr(stgcn, "CHECKED_DEVICES", frozenset({"cpu", "cuda"}))
    for mode in ("eval", "train"):
        fast = trained_like(dropout=0.0).double().cuda().train(mode == "train")
        ref = ReferenceSTGCN(dropout=0.0).double().cuda().train(mode == "train")
        ref.load_state_dict(fast.state_dict())
        compare(fast, ref, skeletons(dtype=torch.float64).cuda(), ignore, 1e-10, 1e-12)
