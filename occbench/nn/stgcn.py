"""The ST-GCN encoder shared by every method (SkeletonCLR, CrosSCLR, AimCLR, PSTL, OPSTL).

Architecture, parameter shapes and state-dict key names follow the published network (the
``Model`` of CrosSCLR/AimCLR ``net/st_gcn.py`` and PSTL ``module/gcn/st_gcn.py``, without the ``fc``
head): an input BatchNorm over V*C channels per person, ten ST-GCN blocks
(16, 16, 16, 16, 32/2, 32, 32, 64/2, 64, 256; temporal kernel 9; block 1 without residual and without
dropout), one learnable 3x25x25 edge-importance mask per block, global average pooling over time and
joints, then the mean over persons.

Each block computes, on ``x`` of shape (N*M, C, T, V),

    gcn:  y[n, c, t, w] = sum_k sum_v (W_k x + b_k)[n, c, t, v] * (A * E)[k, v, w]
    tcn:  BN -> ReLU -> Conv(9x1, stride) -> BN -> Dropout
    out = ReLU(tcn(gcn(x)) + residual(x))

:class:`STGCN` computes exactly that with less memory traffic: activations stay time-outer,
(T, C, V, N*M), from the input BatchNorm to the pooling. Then every operation is a GEMM or a
BatchNorm on a plain view: the graph convolution is two batched GEMMs (the K adjacency products of
all (t, c) slices at once, then the channel mixing over (C, K)); the 9x1 temporal convolution is a
batched GEMM over overlapping windows of consecutive rows (no padding or im2col copy, taps that would
only read the zero padding skipped); the residual 1x1 convolutions are GEMMs. Everything after the
graph convolution is one autograd node (:class:`_TemporalUnit`) with a hand-written backward, so that
few large intermediates are allocated (on CPU each fresh one costs page faults). Dropout draws its
mask from packed random bits instead of one ``bernoulli_`` call per element: same distribution,
different random stream, so with dropout active the two formulations agree in law, not sample by
sample. :class:`ReferenceSTGCN` keeps the published formulation (1x1 convolution to K*C channels,
then an einsum, ``nn.Conv2d``, ``nn.Dropout``) with the same parameters, as the baseline of the
equality tests and benchmarks: in eval mode, or with ``dropout=0``, both give the same outputs and
gradients up to floating-point rounding. Both run under autocast.

The time-outer formulation reaches into BatchNorm's private kernels (``torch.batch_norm`` and its
backward), so it runs only on device types where its equality test against the reference has run
(`CHECKED_DEVICES`): CPU so far. Anywhere else (CUDA until a GPU measurement exists) :class:`STGCN`
computes the published formulation, cuDNN's convolutions, with the same parameters and state dict.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from occbench.errors import OccbenchError
from occbench.nn.graph import ntu_adjacency
from occbench.settings import flag, integer, number

TEMPORAL_KERNEL = 9
# Device types on which STGCN's own formulation has passed tests/nn/test_stgcn.py against the reference.
CHECKED_DEVICES = frozenset({"cpu"})


def init_weights(module: nn.Module) -> None:
    """The published pretraining initialisation (``weights_init``), for ``model.apply(init_weights)``.

    Conv and Linear weights ~ N(0, 0.02) with zero bias; BatchNorm weights ~ N(1, 0.02) with zero bias.
    Edge-importance masks are untouched (they start at 1).
    """
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
        module.weight.data.normal_(0.0, 0.02)
        if module.bias is not None:
            module.bias.data.fill_(0.0)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        module.weight.data.normal_(1.0, 0.02)
        module.bias.data.fill_(0.0)


class _Norm:
    """What one BatchNorm of a forward pass needs for its backward (the statistics it used)."""

    __slots__ = ("weight", "running_mean", "running_var", "mean", "invstd", "training", "eps", "scale")


def _bn_into(bn: nn.modules.batchnorm._BatchNorm, x: Tensor, out: Tensor, weight: Tensor | None,
             bias: Tensor | None, shift: Tensor | None = None, scale: float = 1.0) -> _Norm:
    """``out = bn(x + shift) * scale`` on (N, C, L) tensors, with ``_BatchNorm.forward``'s bookkeeping.

    ``shift`` is a per-channel constant left out of ``x`` (the bias of the convolution before the
    BatchNorm): the normalised output does not depend on it in training and it only moves the running
    mean, so it is folded into the statistics instead of being added to every element. ``scale``
    multiplies the affine weight and bias (how dropout's 1 / (1 - p) is folded in).
    """
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    track = not bn.training or bn.track_running_stats
    norm = _Norm()
    norm.training = bn.training or (bn.running_mean is None and bn.running_var is None)
    norm.eps, norm.scale = bn.eps, scale
    running_mean = bn.running_mean if track else None
    running_var = bn.running_var if track else None
    if scale != 1.0:
        weight = x.new_full((x.shape[1],), scale, dtype=torch.float32) if weight is None else weight * scale
        bias = None if bias is None else bias * scale
    if shift is not None and not norm.training and running_mean is not None:
        running_mean = running_mean - shift
    stats = torch.promote_types(x.dtype, torch.float32)
    _, norm.mean, norm.invstd = torch.ops.aten.native_batch_norm.out(
        x, weight, bias, running_mean, running_var, norm.training, factor, bn.eps,
        out=out, save_mean=x.new_empty(0, dtype=stats), save_invstd=x.new_empty(0, dtype=stats),
    )
    if shift is not None and norm.training and running_mean is not None:
        running_mean.add_(shift, alpha=factor)
    norm.weight = weight
    if not norm.training:  # the backward needs the statistics this forward used
        running_mean, running_var = running_mean.clone(), running_var.clone()
    norm.running_mean, norm.running_var = running_mean, running_var
    return norm


def _bn_backward(norm: _Norm, dout: Tensor, x: Tensor, need_weight: bool, need_bias: bool):
    """Gradients of :func:`_bn_into` w.r.t. x and (unscaled) weight and bias."""
    dx, dw, db = torch.ops.aten.native_batch_norm_backward(
        dout, x, norm.weight, norm.running_mean, norm.running_var, norm.mean, norm.invstd, norm.training,
        norm.eps, [True, need_weight, need_bias],
    )
    if norm.scale != 1.0:
        dw = None if dw is None else dw * norm.scale
        db = None if db is None else db * norm.scale
    return dx, dw, db


class GraphConv(nn.Module):
    """The spatial graph convolution: one 1x1 convolution to K*out channels, then the K adjacencies.

    The single parameter ``conv`` is laid out as the published ``ConvTemporalGraphical.conv``: output
    channel ``k * out_channels + c`` is channel ``c`` of subset ``k``.

    :meth:`forward` works on time-outer tensors (T, C, V, B). With the bodies B innermost, the K
    adjacency products of every (t, c) slice are one batched (K*V x V) @ (V x B) product whose result
    is laid out (T, C, K, V, B): the channel mixing then contracts (C, K) in one batched GEMM instead
    of K accumulated ones. The adjacency product is done on the narrower side of the channel mixing.
    """

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int):
        super().__init__()
        self.in_channels, self.out_channels, self.num_subsets = in_channels, out_channels, num_subsets
        self.conv = nn.Conv2d(in_channels, out_channels * num_subsets, kernel_size=1)

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        """x: (T, C_in, V, B) contiguous; adjacency: (K, V, V) -> (T, C_out, V * B) contiguous."""
        t, cin, v, b = x.shape
        kk, c = self.num_subsets, self.out_channels
        weight = self.conv.weight.view(kk, c, cin)
        bias = self.conv.bias
        if cin <= c:
            # adjacency first: z[t, i, k, w, b] = sum_v A_k[v, w] x[t, i, v, b]
            a = adjacency.transpose(1, 2).reshape(kk * v, v)
            z = torch.bmm(a.expand(t * cin, -1, -1), x.view(t * cin, v, b))
            mix = weight.permute(1, 2, 0).reshape(c, cin * kk)  # column i * K + k
            z = z.view(t, cin * kk, v * b)
            if bias is None:
                return torch.bmm(mix.expand(t, -1, -1), z)
            # the published order adds the bias before the adjacency product: sum_k b_k[c] colsum(A_k)[w]
            per_joint = bias.view(kk, c).t().mm(adjacency.sum(1))  # (C_out, V)
            start = per_joint.unsqueeze(2).expand(c, v, b).reshape(1, c, v * b)
            return torch.baddbmm(start, mix.expand(t, -1, -1), z)
        # channel mixing first, to K*C_out channels ordered (c, k), then
        # out[t, c, w, b] = sum_{k,v} A_k[v, w] y[t, c, k, v, b]
        mix = weight.transpose(0, 1).reshape(c * kk, cin)
        cols = x.view(t, cin, v * b)
        if bias is None:
            y = torch.bmm(mix.expand(t, -1, -1), cols)
        else:
            y = torch.baddbmm(bias.view(kk, c).t().reshape(1, c * kk, 1), mix.expand(t, -1, -1), cols)
        a = adjacency.permute(2, 0, 1).reshape(v, kk * v)
        return torch.bmm(a.expand(t * c, -1, -1), y.view(t * c, kk * v, b)).view(t, c, v * b)

    def reference(self, x: Tensor, adjacency: Tensor) -> Tensor:
        """The published formulation on (N, C, T, V): 1x1 conv to K*C channels, then an einsum."""
        x = self.conv(x)
        n, kc, t, v = x.size()
        x = x.view(n, self.num_subsets, kc // self.num_subsets, t, v)
        return torch.einsum("nkctv,kvw->nctw", (x, adjacency)).contiguous()


def _compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype that autocast gives matrix products of ``x`` (``x.dtype`` outside autocast)."""
    device = x.device.type
    if torch.is_autocast_enabled(device) and x.is_floating_point():
        return torch.get_autocast_dtype(device)
    return x.dtype


_MASK_BITS = 15


def _keep_mask(shape, p: float, like: Tensor, packed: bool | None = None) -> Tensor:
    """A 0/1 dropout mask of ``like``'s dtype and device, 1 (keep) with probability 1 - p.

    On CPU (``packed``), one ``bernoulli_`` draw per element (what ``nn.Dropout`` costs there) is
    replaced by packed random bits: for p = 0.5 each random byte picks one of the 256 rows of a table
    of its 8 bits (exact); otherwise 64-bit words are cut into four 15-bit lanes compared with
    (1 - p) * 2**15 (p rounded to a multiple of 2**-15). Elsewhere ``bernoulli_``.
    """
    device = like.device
    packed = device.type == "cpu" if packed is None else packed
    if not packed:
        return torch.empty(shape, dtype=like.dtype, device=device).bernoulli_(1 - p)
    n = math.prod(shape)
    if p == 0.5:
        # random_(-2**63, None) draws all 64 bits (plain random_() leaves the sign bit 0)
        words = torch.empty((n + 63) // 64, dtype=torch.int64, device=device).random_(-(2**63), None)
        rows = torch.arange(256, device=device).unsqueeze(1)
        table = rows.bitwise_right_shift(torch.arange(8, device=device)).bitwise_and_(1).to(like.dtype)
        mask = table.new_empty(((n + 7) // 8, 8))
        torch.index_select(table, 0, words.view(torch.uint8)[: mask.shape[0]].int(), out=mask)
        return mask.view(-1)[:n].view(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_()
    lanes = words.view(torch.int16)[:n].bitwise_and_((1 << _MASK_BITS) - 1)
    return torch.lt(lanes, round((1 - p) * (1 << _MASK_BITS))).to(like.dtype).view(shape)


def _tap_groups(t_in: int, t_out: int, taps: int, pad: int, stride: int) -> list[tuple[int, int, int, int, int]]:
    """Output steps of a zero-padded temporal convolution grouped by the taps that reach real input.

    Output step t reads input steps ``stride * t + j - pad`` for taps j < ``taps``; those outside
    0..t_in-1 are zero padding and are skipped rather than multiplied (on 13 steps with 9 taps, 17% of
    the work). Returns (first step, step count, first tap, end tap, first input step) per group of
    consecutive output steps with the same valid taps.
    """
    groups: list[list[int]] = []
    for t in range(t_out):
        start = stride * t - pad
        j0, j1 = max(0, -start), min(taps, t_in - start)
        if groups and groups[-1][2:4] == [j0, j1]:
            groups[-1][1] += 1
        else:
            groups.append([t, 1, j0, j1, start + j0])
    return [tuple(group) for group in groups]


def _batches_windows(x: Tensor) -> bool:
    """Whether bmm takes overlapping strided windows of x as they are: on CPU only float32 / float64
    do (the bfloat16 / float16 kernels copy each batch first), so the others loop over mm."""
    return x.device.type != "cpu" or x.dtype in (torch.float32, torch.float64)


def _windowed(x: Tensor, kernel: Tensor, taps: int, pad: int, stride: int, out: Tensor) -> Tensor:
    """``out[t] = sum_j kernel[:, j*C:(j+1)*C] @ x[stride*t + j - pad]`` over the input steps that exist.

    x: (T, C, L) contiguous, kernel: (C_out, taps * C), out: (T_out, C_out, L) with contiguous steps.
    Since time is outermost, the taps of one output step are ``(j1 - j0) * C`` consecutive rows of x:
    a group of output steps is one batched GEMM over overlapping strided views of x (no im2col copy).
    """
    x = x.contiguous()
    t_in, c, length = x.shape
    batched = out.is_contiguous() and _batches_windows(x)
    for first, count, j0, j1, row in _tap_groups(t_in, out.shape[0], taps, pad, stride):
        w = kernel[:, j0 * c:j1 * c]
        if j1 <= j0:
            out[first:first + count].zero_()
        elif count == 1 or not batched:
            for i in range(count):
                start = (row + i * stride) * c
                torch.mm(w, x.view(-1, length)[start:start + (j1 - j0) * c], out=out[first + i])
        else:
            windows = x.as_strided((count, (j1 - j0) * c, length), (stride * c * length, length, 1),
                                   x.storage_offset() + row * c * length)
            torch.bmm(w.expand(count, -1, -1), windows, out=out[first:first + count])
    return out


def _windowed_weight_grad(dy: Tensor, x: Tensor, taps: int, pad: int, stride: int) -> Tensor:
    """The gradient of :func:`_windowed`'s kernel: sum_t dy[t] @ window_t^T, (C_out, taps * C)."""
    x, dy = x.contiguous(), dy.contiguous()
    t_in, c, length = x.shape
    grad = dy.new_zeros((dy.shape[1], taps * c))
    for first, count, j0, j1, row in _tap_groups(t_in, dy.shape[0], taps, pad, stride):
        if j1 <= j0:
            continue
        windows = x.as_strided((count, (j1 - j0) * c, length), (stride * c * length, length, 1),
                               x.storage_offset() + row * c * length)
        if count == 1 or not _batches_windows(x):
            for i in range(count):
                grad[:, j0 * c:j1 * c].addmm_(dy[first + i], windows[i].t())
        else:
            grad[:, j0 * c:j1 * c] += torch.bmm(dy[first:first + count], windows.transpose(1, 2)).sum(0)
    return grad


def _conv_input_grad(dy: Tensor, weight: Tensor, stride: int, t_in: int) -> Tensor:
    """The input gradient of a K x 1 convolution (padding (K-1)/2, stride s) on time-outer tensors.

    dx[q] = sum over (t, j) with s*t + j - pad = q of W_j^T dy[t]. Output steps q of one residue
    rho = q mod s use the taps j = j_min + s*m, and read dy at consecutive steps: per residue, this is
    a windowed product of those taps (flipped) over dy, with no zero-interleaved copy of dy.
    """
    c_out, c_in, k, _ = weight.shape
    pad = (k - 1) // 2
    w = weight.squeeze(3).to(dy.dtype)
    dx = dy.new_empty((t_in, c_in, dy.shape[2]))
    for rho in range(min(stride, t_in)):
        j_min = (rho + pad) % stride
        count = -(-(k - j_min) // stride)
        base = (rho + pad - j_min) // stride
        # window position i holds dy[u + i - (count - 1 - base)], i.e. tap j_min + s * (count - 1 - i)
        kernel = torch.cat([w[:, :, j_min + stride * (count - 1 - i)].t() for i in range(count)], dim=1)
        _windowed(dy, kernel, count, count - 1 - base, 1, dx[rho::stride])
    return dx


class _TemporalUnit(torch.autograd.Function):
    """Everything of a block after the graph convolution, on time-outer (T, C, L) tensors (L = V*N*M):

        out = ReLU(residual(x) + Dropout(BN2(Conv9x1(ReLU(BN1(g))))))

    as one autograd node whose backward is written out, so that its intermediates are few, written in
    place and kept only when the backward needs them (the residual branch's convolution is recomputed).
    The convolution is :func:`_windowed` (its input gradient :func:`_conv_input_grad`, its weight
    gradient :func:`_windowed_weight_grad`); convolution biases are folded into the statistics of
    the BatchNorm that follows them (:func:`_bn_into`), and dropout's 1 / (1 - p) into BN2's affine.
    """

    @staticmethod
    def forward(ctx, g, x, conv_w, conv_b, w1, b1, w2, b2, res_w, res_b, res_bn_w, res_bn_b, block):
        bn1, _, _, bn2, drop = block.tcn
        stride, mode = block.stride, block.residual_mode
        t, c, length = g.shape
        t_out = (t - 1) // stride + 1
        dtype = _compute_dtype(g)
        h = g.new_empty(g.shape, dtype=dtype)
        norm1 = _bn_into(bn1, g, h, w1, b1)
        h.clamp_min_(0)
        kernel = conv_w.squeeze(3).permute(0, 2, 1).reshape(c, -1).to(dtype)  # column j * C + i
        pad = (TEMPORAL_KERNEL - 1) // 2
        y = _windowed(h, kernel, TEMPORAL_KERNEL, pad, stride, h.new_empty((t_out, c, length)))
        p = drop.p if block.training else 0.0
        keep = _keep_mask(y.shape, p, y) if p > 0.0 else None
        scale = 1.0 / (1.0 - p) if 0.0 < p < 1.0 else 1.0
        out4 = y.new_empty((t_out, c, *x.shape[2:]))  # returned as (T', C, V, B): no reshape in the graph
        out = out4.view(t_out, c, length)
        norm3 = None
        if mode == "conv":
            r = _residual_conv(x, res_w, stride, dtype)
            norm3 = _bn_into(block.residual[1], r, out, res_bn_w, res_bn_b, shift=res_b)
            norm2 = _bn_into(bn2, y, r, w2, b2, shift=conv_b, scale=scale)  # r is recomputed in the backward
            if keep is None:
                out.add_(r)
            else:
                torch.addcmul(out, r, keep, out=out)
        else:
            norm2 = _bn_into(bn2, y, out, w2, b2, shift=conv_b, scale=scale)
            if mode == "identity":
                residual = x.view(t, -1, length)
                out = out.add_(residual) if keep is None else torch.addcmul(residual, out, keep, out=out)
            elif keep is not None:
                out.mul_(keep)
        out.clamp_min_(0)
        ctx.save_for_backward(g, x, h, y, out4, keep, conv_w, res_w)
        ctx.norms, ctx.block, ctx.in_dtype = (norm1, norm2, norm3), block, g.dtype
        return out4

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout):
        g, x, h, y, out, keep, conv_w, res_w = ctx.saved_tensors
        norm1, norm2, norm3 = ctx.norms
        block = ctx.block
        stride, mode = block.stride, block.residual_mode
        need = ctx.needs_input_grad
        pad = (TEMPORAL_KERNEL - 1) // 2
        t, c, length = g.shape
        t_out = y.shape[0]
        if 0 in dout.stride():  # an expanded gradient (of a pooling): read its compacted varying part
            dout = dout[tuple(slice(0, 1) if step == 0 else slice(None) for step in dout.stride())]
        grad_out = torch.ops.aten.threshold_backward(dout.to(out.dtype).contiguous(), out, 0).view(t_out, c, length)
        dx = d_res_w = d_res_b = d_res_bn_w = d_res_bn_b = None
        if mode == "conv":
            r = _residual_conv(x, res_w, stride, h.dtype)
            dr, d_res_bn_w, d_res_bn_b = _bn_backward(norm3, grad_out, r, need[10], need[11])
            del r
            src = x[::stride].flatten(2).to(dr.dtype)
            if need[8]:
                d_res_w = torch.bmm(dr, src.transpose(1, 2)).sum(0, dtype=res_w.dtype).view(res_w.shape)
            if need[9]:
                d_res_b = dr.sum((0, 2), dtype=res_w.dtype)
            if need[1]:
                back = torch.bmm(res_w.view(c, -1).t().to(dr.dtype).expand(t_out, -1, -1), dr)
                if stride == 1:
                    dx = back.to(x.dtype).view(x.shape)
                else:
                    dx = x.new_zeros(x.shape)
                    dx[::stride] = back.view(-1, *x.shape[1:])
            del dr
            dz = grad_out if keep is None else grad_out.mul_(keep)
        elif mode == "identity":
            dx = grad_out.view(x.shape) if need[1] else None
            dz = grad_out if keep is None else grad_out * keep
        else:
            dz = grad_out if keep is None else grad_out.mul_(keep)
        del grad_out
        dy, d_w2, d_b2 = _bn_backward(norm2, dz, y, need[6], need[7])
        del dz
        d_conv_b = dy.sum((0, 2), dtype=conv_w.dtype) if need[3] else None
        d_conv_w = None
        if need[2]:
            d_conv_w = _windowed_weight_grad(dy, h, TEMPORAL_KERNEL, pad, stride).to(conv_w.dtype)
            d_conv_w = d_conv_w.view(c, TEMPORAL_KERNEL, c).transpose(1, 2).unsqueeze(3)
        dg = d_w1 = d_b1 = None
        if need[0] or need[4] or need[5]:
            dh = _conv_input_grad(dy, conv_w, stride, t)
            del dy
            # the ReLU's backward, in place: 0 where its output is 0
            torch.ops.aten.threshold_backward.grad_input(dh, h, 0, grad_input=dh)
            dg, d_w1, d_b1 = _bn_backward(norm1, dh, g, need[4], need[5])
            dg = dg.to(ctx.in_dtype)
        return (dg, dx, d_conv_w, d_conv_b, d_w1, d_b1, d_w2, d_b2, d_res_w, d_res_b, d_res_bn_w, d_res_bn_b,
                None)


def _residual_conv(x: Tensor, weight: Tensor, stride: int, dtype: torch.dtype) -> Tensor:
    """The 1x1 residual convolution (without its bias) of time-outer x: (T, C_in, V, B) -> (T', C_out, V*B)."""
    src = x[::stride].flatten(2).to(dtype)
    w = weight.view(weight.shape[0], -1).to(dtype)
    return torch.bmm(w.expand(src.shape[0], -1, -1), src)


class STGCNBlock(nn.Module):
    """One ST-GCN unit; submodule names match the published ``st_gcn`` (``gcn``, ``tcn``, ``residual``).

    :meth:`forward` takes and returns time-outer tensors (T, C, V, B) (B = N*M bodies) and never
    changes their layout; :meth:`reference` is the published ``st_gcn.forward`` on (N, C, T, V).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_subsets: int,
        stride: int = 1,
        dropout: float = 0.0,
        residual: bool = True,
    ):
        super().__init__()
        pad = (TEMPORAL_KERNEL - 1) // 2
        self.stride = stride
        self.gcn = GraphConv(in_channels, out_channels, num_subsets)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, (TEMPORAL_KERNEL, 1), (stride, 1), (pad, 0)),
            nn.BatchNorm2d(out_channels),
            nn.Dropout(dropout, inplace=True),
        )
        if not residual:
            self.residual_mode = "none"
        elif in_channels == out_channels and stride == 1:
            self.residual_mode = "identity"
        else:
            self.residual_mode = "conv"
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        """x: (T, C_in, V, B) contiguous -> (T', C_out, V, B) contiguous."""
        bn1, _, conv, bn2, _ = self.tcn
        res_conv, res_bn = self.residual if self.residual_mode == "conv" else (None, None)
        return _TemporalUnit.apply(
            self.gcn(x, adjacency), x, conv.weight, conv.bias, bn1.weight, bn1.bias, bn2.weight, bn2.bias,
            getattr(res_conv, "weight", None), getattr(res_conv, "bias", None), getattr(res_bn, "weight", None),
            getattr(res_bn, "bias", None), self,
        )

    def reference(self, x: Tensor, adjacency: Tensor) -> Tensor:
        """The published ``st_gcn.forward``: x (N, C_in, T, V) -> (N, C_out, T', V)."""
        if self.residual_mode == "none":
            res = 0
        elif self.residual_mode == "identity":
            res = x
        else:
            res = self.residual(x)
        x = self.gcn.reference(x, adjacency)
        x = self.tcn(x) + res
        return F.relu(x, inplace=True)


class STGCN(nn.Module):
    """ST-GCN encoder: (N, C, T, V, M) skeletons -> (N, hidden_dim) features.

    Args match the published ``Model`` (without ``num_class``/``fc``): ``hidden_channels`` is the
    width of blocks 1-4 (blocks 5-7 have twice, 8-9 four times that), ``hidden_dim`` the width of the
    last block and of the output. ``num_joints`` must be 25 (the NTU graph).
    """

    feature_dim = 256
    capabilities = frozenset({"feature_map", "ignore_joints"})  # occbench/encoders.py
    published = False  # True: always the published formulation (ReferenceSTGCN)
    # What a profile's `encoder` section may set (occbench.settings).
    schema = {"hidden_channels": integer(1), "hidden_dim": integer(1), "dropout": number(0, 1, below=True),
              "edge_importance": flag()}

    def __init__(
        self,
        in_channels: int = 3,
        hidden_channels: int = 16,
        hidden_dim: int = 256,
        dropout: float = 0.5,
        edge_importance: bool = True,
        num_joints: int = 25,
    ):
        super().__init__()
        adjacency = ntu_adjacency()
        if num_joints != adjacency.shape[1]:
            raise OccbenchError(f"num_joints={num_joints}: the ST-GCN graph is the 25-joint NTU RGB+D graph")
        self.in_channels, self.num_joints = in_channels, num_joints
        self.hidden_channels, self.hidden_dim = hidden_channels, hidden_dim
        self.feature_dim = hidden_dim
        self.register_buffer("A", adjacency)  # persistent: the published state dicts carry it too
        k, h = adjacency.shape[0], hidden_channels
        self.data_bn = nn.BatchNorm1d(in_channels * num_joints)
        layers = [  # (in, out, stride)
            (in_channels, h, 1), (h, h, 1), (h, h, 1), (h, h, 1), (h, 2 * h, 2),
            (2 * h, 2 * h, 1), (2 * h, 2 * h, 1), (2 * h, 4 * h, 2), (4 * h, 4 * h, 1), (4 * h, hidden_dim, 1),
        ]
        self.st_gcn_networks = nn.ModuleList(
            STGCNBlock(cin, cout, k, stride, dropout=0.0 if i == 0 else dropout, residual=i > 0)
            for i, (cin, cout, stride) in enumerate(layers)
        )
        if edge_importance:
            self.edge_importance = nn.ParameterList(
                nn.Parameter(torch.ones_like(adjacency)) for _ in self.st_gcn_networks
            )
        else:
            self.edge_importance = None

    # ------------------------------------------------------------------------------------------ API
    def forward(self, x: Tensor, ignore_joints=None, mask: Tensor | None = None) -> Tensor:
        """(N, C, T, V, M) -> (N, hidden_dim); ``ignore_joints`` are removed from the graph (PSTL). The
        visibility mask is not read: as published, ST-GCN sees an occluded joint as its zeros."""
        return self.pool(self.feature_map(x, ignore_joints), x.shape[-1])

    def feature_map(self, x: Tensor, ignore_joints=None, mask: Tensor | None = None) -> Tensor:
        """The last block's output (N*M, hidden_dim, T', V') before pooling, T' = ceil(T / 4).

        V' = 25 - len(set(ignore_joints)). On a checked device the result is a (non-contiguous) view of
        the time-outer (T', C, V', N*M) tensor the blocks compute on; call ``.contiguous()`` if a kernel
        needs it.
        """
        fast = x.device.type in CHECKED_DEVICES and not self.published
        x, keep = self._embed(x, ignore_joints, time_outer=fast)
        for block, adjacency in zip(self.st_gcn_networks, self._adjacencies(keep), strict=True):
            x = block(x, adjacency) if fast else block.reference(x, adjacency)
        return x.permute(3, 1, 0, 2) if fast else x

    @staticmethod
    def pool(feature_map: Tensor, persons: int) -> Tensor:
        """Global average over T' and V', then the mean over the ``persons`` bodies -> (N, C)."""
        nm, c, t, v = feature_map.shape
        time_outer = feature_map.permute(2, 1, 3, 0)
        if time_outer.is_contiguous():  # a view of the blocks' layout: sum whole (C, V, B) slices over T'
            pooled = time_outer.sum(dim=0).sum(dim=1).t()  # (about 10x faster than a sum over (T', V))
        else:
            pooled = feature_map.sum(dim=(2, 3))
        # a sum then a scalar on the small result: its backward is an expanded, not a materialised, gradient
        return (pooled * (1.0 / (t * v))).view(nm // persons, persons, c).mean(dim=1)

    # ------------------------------------------------------------------------------------- helpers
    def _embed(self, x: Tensor, ignore_joints, time_outer: bool) -> tuple[Tensor, Tensor | None]:
        """Input BatchNorm over V*C per person, then (N*M, C, T, V) or time-outer (T, C, V, N*M)."""
        if x.dim() != 5 or x.shape[1] != self.in_channels or x.shape[3] != self.num_joints:
            raise OccbenchError(
                f"encoder input of shape {tuple(x.shape)}: expected (N, {self.in_channels}, T, "
                f"{self.num_joints}, M) skeletons"
            )
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t)
        if time_outer:
            x = x.permute(4, 3, 2, 0, 1).contiguous().view(t, c, v, n * m)
        else:
            x = x.permute(0, 1, 3, 4, 2).contiguous().view(n * m, c, t, v)
        keep = self._kept_joints(ignore_joints, x.device)
        if keep is not None:  # PSTL: the joints leave the graph after the input BatchNorm
            x = x.index_select(2 if time_outer else 3, keep)
        return x, keep

    def _kept_joints(self, ignore_joints, device) -> Tensor | None:
        if ignore_joints is None:
            return None
        if isinstance(ignore_joints, Tensor):
            ignore_joints = ignore_joints.flatten().tolist()
        ignored = {int(j) for j in ignore_joints}
        if not ignored:
            return None
        if not ignored <= set(range(self.num_joints)):
            raise OccbenchError(f"ignore_joints {sorted(ignored)}: joint indices must be in 0..{self.num_joints - 1}")
        keep = [j for j in range(self.num_joints) if j not in ignored]
        if not keep:
            raise OccbenchError("ignore_joints removes every joint: keep at least one")
        return torch.tensor(keep, dtype=torch.long, device=device)

    def _adjacencies(self, keep: Tensor | None) -> list[Tensor]:
        masks = self.edge_importance if self.edge_importance is not None else [None] * len(self.st_gcn_networks)
        out = []
        for mask in masks:
            a = self.A if mask is None else self.A * mask
            if keep is not None:
                a = a.index_select(1, keep).index_select(2, keep)
            out.append(a)
        return out


class ReferenceSTGCN(STGCN):
    """The published formulation, block by block (conv to K*C channels, einsum, ``nn.Dropout``), on
    every device.

    Same parameters and state dict as :class:`STGCN`; the baseline of the equality tests and the speed
    benchmark, and what STGCN itself computes on a device outside `CHECKED_DEVICES`.
    """

    published = True

    @staticmethod
    def pool(feature_map: Tensor, persons: int) -> Tensor:
        nm = feature_map.shape[0]
        x = F.avg_pool2d(feature_map, feature_map.size()[2:])
        return x.view(nm // persons, persons, -1).mean(dim=1)
