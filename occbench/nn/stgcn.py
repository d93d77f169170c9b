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

:class:`STGCN` computes exactly that with less work on CPU: activations are kept channel-first,
(C, N*M, T, V), so that the graph convolution is a handful of large GEMMs (the adjacency product
on the narrower side of the channel mixing, the K subsets accumulated in place, no K*C-channel
tensor and no permuted copy), the 1x1 residual convolutions are GEMMs, BatchNorm runs on a
(1, C, L) view, and no in-place op touches a view (which would make autograd copy). Dropout draws
its Bernoulli mask from packed random bits instead of one ``bernoulli_`` call per element: same
distribution, different random stream, so with dropout active the two formulations agree in law,
not sample by sample. :class:`ReferenceSTGCN` keeps the published formulation (1x1 convolution to
K*C channels, then an einsum, ``nn.Dropout``) with the same parameters, for equality tests and
benchmarks: in eval mode, or with ``dropout=0``, both give the same outputs and gradients up to
floating-point rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from occbench.errors import OccbenchError
from occbench.nn.graph import ntu_adjacency

TEMPORAL_KERNEL = 9


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


def _batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: Tensor, scale: float = 1.0) -> Tensor:
    """``bn(x)`` with ``_BatchNorm.forward``'s bookkeeping; ``x`` is (N, C, ...) or a (1, C, L) view.

    A channel-first (C, N, T, V) tensor is normalised as its (1, C, N*T*V) view: the statistics are
    then taken over every element of a channel, exactly as BatchNorm2d does over (N, T, V). ``scale``
    multiplies the affine weight and bias, i.e. the output (how the dropout's 1 / (1 - p) is folded in).
    The result is a fresh tensor, so in-place ops on it stay cheap for autograd.
    """
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    track = not bn.training or bn.track_running_stats
    weight, bias = bn.weight, bn.bias
    if scale != 1.0:
        weight = None if weight is None else weight * scale
        bias = None if bias is None else bias * scale
    return F.batch_norm(
        x,
        bn.running_mean if track else None,
        bn.running_var if track else None,
        weight,
        bias,
        bn.training or (bn.running_mean is None and bn.running_var is None),
        factor,
        bn.eps,
    )


class GraphConv(nn.Module):
    """The spatial graph convolution: one 1x1 convolution to K*out channels, then the K adjacencies.

    The single parameter ``conv`` is laid out as the published ``ConvTemporalGraphical.conv``: output
    channel ``k * out_channels + c`` is channel ``c`` of subset ``k``.

    :meth:`forward` works on channel-first tensors (C, N, T, V), where both the channel mixing
    (``W_k @ X`` with X viewed as C x (N*T*V)) and the adjacency product (X viewed as (C*N*T) x V, times
    ``A_k``) are single large GEMMs, done on the narrower side (the adjacency first when the block
    widens the channels), and the K subsets are accumulated in place instead of being materialised as
    one K*C-channel tensor that must be permuted for an einsum.
    """

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int):
        super().__init__()
        self.in_channels, self.out_channels, self.num_subsets = in_channels, out_channels, num_subsets
        self.conv = nn.Conv2d(in_channels, out_channels * num_subsets, kernel_size=1)

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        """x: (C_in, N, T, V) contiguous; adjacency: (K, V, V) -> (C_out, N*T*V), i.e. (C_out, N, T, V) flat."""
        cin, n, t, v = x.shape
        kk, c = self.num_subsets, self.out_channels
        weight = self.conv.weight.view(kk, c, cin)
        bias = self.conv.bias
        if cin <= c:
            # adjacency first: out = sum_k W_k (X A_k) + sum_k b_k[c] * colsum(A_k)[w] (the published
            # order adds the bias before the adjacency product); the bias term is materialised as the
            # accumulator so that every GEMM accumulates into one fresh tensor
            rows = x.view(-1, v)
            if bias is None:
                out = x.new_zeros(c, n * t * v)
            else:
                per_joint = bias.view(kk, c).t().mm(adjacency.sum(1))  # (C_out, V)
                out = per_joint.unsqueeze(1).expand(c, n * t, v).reshape(c, n * t * v)
            for k in range(kk):
                out = out.addmm_(weight[k], rows.mm(adjacency[k]).view(cin, -1))
            return out
        # channel mixing first (to the narrower C_out): out = sum_k (W_k X + b_k) A_k
        cols = x.view(cin, -1)
        out = None
        for k in range(kk):
            if bias is None:
                mixed = weight[k].mm(cols)
            else:
                mixed = torch.addmm(bias[k * c:(k + 1) * c].unsqueeze(1), weight[k], cols)
            mixed = mixed.view(-1, v)
            out = mixed.mm(adjacency[k]) if out is None else out.addmm_(mixed, adjacency[k])
        return out.view(c, -1)

    def reference(self, x: Tensor, adjacency: Tensor) -> Tensor:
        """The published formulation on (N, C, T, V): 1x1 conv to K*C channels, then an einsum."""
        x = self.conv(x)
        n, kc, t, v = x.size()
        x = x.view(n, self.num_subsets, kc // self.num_subsets, t, v)
        return torch.einsum("nkctv,kvw->nctw", (x, adjacency)).contiguous()


_MASK_BITS = 15


def _keep_mask(shape, p: float, like: Tensor) -> Tensor:
    """A 0/1 dropout mask of ``like``'s dtype, 1 (keep) with probability 1 - p rounded to a multiple of 2**-15.

    The bits come from 64-bit random words cut into four 15-bit lanes, about 20x cheaper on CPU than
    one ``bernoulli_`` draw per element (what ``nn.Dropout`` costs there); p = 0.5 is exact.
    """
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=like.device).random_()
    lanes = words.view(torch.int16)[:n].bitwise_and_((1 << _MASK_BITS) - 1)
    return torch.lt(lanes, round((1 - p) * (1 << _MASK_BITS))).to(like.dtype).view(shape)


class STGCNBlock(nn.Module):
    """One ST-GCN unit; submodule names match the published ``st_gcn`` (``gcn``, ``tcn``, ``residual``).

    :meth:`forward` takes and returns channel-first tensors (C, N, T, V); only the temporal
    convolution and the BatchNorm + dropout after it run on an (N, C, T, V) copy. :meth:`reference` is
    the published ``st_gcn.forward`` on (N, C, T, V).
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
        """x: (C_in, N, T, V) contiguous -> (C_out, N, T', V) contiguous."""
        cin, n, _, v = x.shape
        bn1, _, conv, bn2, drop = self.tcn
        cout = bn1.num_features
        # in-place ops below act on fresh (non-view) tensors only: no CopySlices in the backward
        h = F.relu_(_batch_norm(bn1, self.gcn(x, adjacency).unsqueeze(0)))  # (1, C, N*T*V)
        y = conv(h.view(cout, n, -1, v).transpose(0, 1).contiguous())  # (N, C, T', V)
        p = drop.p if self.training else 0.0
        if p == 0.0:
            y = _batch_norm(bn2, y)
        elif y.device.type != "cpu" or p >= 1.0:
            y = F.dropout(_batch_norm(bn2, y), p, training=True, inplace=True)
        else:  # BatchNorm with its affine scaled by 1 / (1 - p), times the 0/1 keep mask
            y = _batch_norm(bn2, y, scale=1.0 / (1.0 - p)).mul_(_keep_mask(y.shape, p, y))
        y = y.transpose(0, 1)  # a (C, N, T', V) view
        if self.residual_mode == "none":
            out = y.contiguous()
        elif self.residual_mode == "identity":
            out = x + y  # x first: the sum takes x's contiguous channel-first layout
        else:
            res_conv, res_bn = self.residual
            src = x if self.stride == 1 else x[:, :, :: self.stride]
            cols = src.reshape(cin, -1)
            w = res_conv.weight.view(cout, cin)
            r = w.mm(cols) if res_conv.bias is None else torch.addmm(res_conv.bias.unsqueeze(1), w, cols)
            # BatchNorm on a (1, C, N, T', V) view, so that y can be added in place into its result
            out = _batch_norm(res_bn, r.view(1, *y.shape)).add_(y.unsqueeze(0))
            return F.relu_(out).squeeze(0)
        return F.relu_(out)

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
    def forward(self, x: Tensor, ignore_joints=None) -> Tensor:
        """(N, C, T, V, M) -> (N, hidden_dim); ``ignore_joints`` are removed from the graph (PSTL)."""
        return self.pool(self.feature_map(x, ignore_joints), x.shape[-1])

    def feature_map(self, x: Tensor, ignore_joints=None) -> Tensor:
        """The last block's output (N*M, hidden_dim, T', V') before pooling, T' = ceil(T / 4).

        V' = 25 - len(set(ignore_joints)). The result is a (non-contiguous) view of the
        channel-first tensor the blocks compute on; call ``.contiguous()`` if a kernel needs it.
        """
        x, keep = self._embed(x, ignore_joints, channel_first=True)
        for block, adjacency in zip(self.st_gcn_networks, self._adjacencies(keep), strict=True):
            x = block(x, adjacency)
        return x.transpose(0, 1)

    @staticmethod
    def pool(feature_map: Tensor, persons: int) -> Tensor:
        """Global average over T' and V', then the mean over the ``persons`` bodies -> (N, C)."""
        nm, c = feature_map.shape[:2]
        return feature_map.mean(dim=(2, 3)).view(nm // persons, persons, c).mean(dim=1)

    # ------------------------------------------------------------------------------------- helpers
    def _embed(self, x: Tensor, ignore_joints, channel_first: bool) -> tuple[Tensor, Tensor | None]:
        """Input BatchNorm over V*C per person, then (N*M, C, T, V) or channel-first (C, N*M, T, V)."""
        if x.dim() != 5 or x.shape[1] != self.in_channels or x.shape[3] != self.num_joints:
            raise OccbenchError(
                f"encoder input of shape {tuple(x.shape)}: expected (N, {self.in_channels}, T, "
                f"{self.num_joints}, M) skeletons"
            )
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t)
        if channel_first:
            x = x.permute(3, 0, 1, 4, 2).contiguous().view(c, n * m, t, v)
        else:
            x = x.permute(0, 1, 3, 4, 2).contiguous().view(n * m, c, t, v)
        keep = self._kept_joints(ignore_joints, x.device)
        if keep is not None:
            x = x.index_select(3, keep)  # PSTL: the joints leave the graph after the input BatchNorm
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
    """The published formulation, block by block (conv to K*C channels, einsum, ``nn.Dropout``).

    Same parameters and state dict as :class:`STGCN`; kept as the baseline for equality tests and the
    speed benchmark. Not meant for training.
    """

    def feature_map(self, x: Tensor, ignore_joints=None) -> Tensor:
        x, keep = self._embed(x, ignore_joints, channel_first=False)
        for block, adjacency in zip(self.st_gcn_networks, self._adjacencies(keep), strict=True):
            x = block.reference(x, adjacency)
        return x

    @staticmethod
    def pool(feature_map: Tensor, persons: int) -> Tensor:
        nm = feature_map.shape[0]
        x = F.avg_pool2d(feature_map, feature_map.size()[2:])
        return x.view(nm // persons, persons, -1).mean(dim=1)
