"""Skeleton augmentations of SkeletonCLR / CrosSCLR / AimCLR / PSTL, batched in torch on the batch's device.

Every function takes a batch ``x`` (N, 3, T, 25, 2), float, on any device, and optionally ``mask``
(N, T, 25, 2) bool, True where a joint is visible (occluded joints hold 0 in x). It returns a new
tensor and never writes into its inputs. Like ``preprocess.motion`` / ``preprocess.bone``:

* without a mask it returns the augmented x;
* with a mask it returns ``(x, mask)``: the mask follows the joints (crop moves frames, flip swaps
  joints; the other transforms return the mask object unchanged) and **x is 0 wherever the returned
  mask is False**. That re-zeroing (:func:`keep_occluded_zero`) is done at the end of every function,
  not only after the pipelines, because noise and blur would otherwise write values into occluded
  joints and an encoder would see them; for the linear maps it only costs one masked fill.

Randomness: ``per_sample=True`` draws one set of parameters per sample (CrosSCLR/AimCLR draw them per
sample in the numpy data loader); ``per_sample=False`` draws one set for the whole batch and applies
it to every sample (PSTL, on the GPU; for noise that means one noise tensor shared by the batch). All
draws come from ``generator`` (or torch's default generator of x's device when it is None) and are made
on the generator's device, as a few whole-batch tensors: there is no Python loop over samples and no
read-back to the host, so a CUDA batch never synchronises (the functions even run on the 'meta'
device). Pass a generator on x's device; one on another device costs one small copy per call.

Where this differs from the reference code (methods.md §1.3, §4, §5; AimCLR ``feeder/tools.py``,
PSTL ``model.py``), on purpose or as an option:

* crop pads "symmetrically" (the edge frame is repeated: frames p-1..0 before frame 0), which is what
  the reference's concatenation of flipped slices does; ``pad_mode="reflect"`` gives torch/numpy
  'reflect' (edge not repeated). The start is uniform in [0, 2p], both ends included, as there.
* rotation: the reference draws U(0, max) and its matrices turn by minus that angle, so every rotation
  has the same sense; the views (`extreme_view`, `pstl_view`) do the same (``signed_rotation=False``),
  while `rotate` on its own defaults to U(-max, max).
* blur: the reference kernel exp(-k²/2σ²) is not normalised (it scales the signal by its sum, up to
  ~5x for σ=2) and pads with zeros (the ends are pulled towards 0). Here the kernel is normalised and
  the ends are replicated by default; ``normalize=False, padding="zeros"`` gives the reference. With a
  mask the blur is a normalised convolution over the visible frames only, so a visible joint next to
  an occlusion is not pulled towards the 0 of the occluded frames.
* ``shear`` and ``temporal_crop`` are the identity for a non-positive amplitude / padding ratio, as
  the reference feeders do for the "-1 = off" of the linear-evaluation configs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

import torch
import torch.nn.functional as F

from occbench.data.ntu import LEFT_RIGHT_SWAP, NUM_JOINTS
from occbench.errors import OccbenchError

Tensor = torch.Tensor
Result = Tensor | tuple[Tensor, Tensor]  # x alone without a mask, (x, mask) with one

_BLUR_PADDING = {"replicate": "replicate", "reflect": "reflect", "zeros": "constant"}


# --------------------------------------------------------------------------------------------------
# Drawing random numbers: (N, ...) tensors on x's device, one row per sample or one row for all


def _draw_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return generator.device if generator is not None else device


def _uniform(n, size, low, high, *, per_sample, generator, device) -> Tensor:
    """U(low, high) of shape (n, *size), float32; all n rows equal unless per_sample."""
    rows = n if per_sample else 1
    u = torch.rand((rows, *size), generator=generator, device=_draw_device(generator, device))
    return (low + (high - low) * u).to(device).expand(n, *size)


def _randint(n, high, *, per_sample, generator, device) -> Tensor:
    """Integers in [0, high) of shape (n,)."""
    rows = n if per_sample else 1
    k = torch.randint(0, high, (rows,), generator=generator, device=_draw_device(generator, device))
    return k.to(device).expand(n)


def _coin(n, p, **draw) -> Tensor:
    """(n,) bool, True with probability p (always for p >= 1, never for p <= 0)."""
    return _uniform(n, (), 0.0, 1.0, **draw) < p


def _per_sample(values: Tensor, ndim: int) -> Tensor:
    """Reshape (N,) to (N, 1, ..., 1) with ndim dimensions, to broadcast over a batch."""
    return values.reshape(values.shape[0], *([1] * (ndim - 1)))


def _take(values: Tensor, index: Tensor, dim: int) -> Tensor:
    """values gathered along dim with an index that broadcasts to values' shape except along dim.

    The index is expanded explicitly: gather with a full-size index is several times faster on the
    CPU than take_along_dim's broadcasting (and the same on CUDA).
    """
    shape = list(values.shape)
    shape[dim] = index.shape[dim]
    return values.gather(dim, index.expand(shape))


# --------------------------------------------------------------------------------------------------
# Checks and the common exit


def _check(x: Tensor, mask: Tensor | None) -> None:
    if x.ndim != 5 or x.shape[1] != 3:
        raise OccbenchError(f"augment: expected x of shape (N, 3, T, V, M), got {tuple(x.shape)}")
    if mask is not None and (mask.dtype != torch.bool or mask.shape != x.shape[:1] + x.shape[2:]):
        raise OccbenchError(
            f"augment: expected a bool mask of shape {(x.shape[0], *x.shape[2:])}, got {mask.dtype} {tuple(mask.shape)}"
        )


def keep_occluded_zero(x: Tensor, mask: Tensor) -> Tensor:
    """x with every joint where mask (N, T, V, M) is False set to exactly 0 (a new tensor)."""
    return torch.where(mask[:, None], x, 0)


def _result(x: Tensor, mask: Tensor | None) -> Result:
    if mask is None:
        return x
    return keep_occluded_zero(x, mask), mask


# --------------------------------------------------------------------------------------------------
# Temporal crop


def _padded_frames(t: int, pad: int, mode: str, device) -> Tensor:
    """Source frame of each of the t + 2*pad positions of the padded sequence."""
    j = torch.arange(-pad, t + pad, device=device)
    if mode == "symmetric":  # ... 1 0 | 0 1 ... t-1 | t-1 t-2 ...
        return torch.where(j < 0, -j - 1, torch.where(j >= t, 2 * t - 1 - j, j))
    # reflect: ... 2 1 | 0 1 ... t-1 | t-2 t-3 ...
    return torch.where(j < 0, -j, torch.where(j >= t, 2 * t - 2 - j, j))


def temporal_crop(
    x: Tensor,
    mask: Tensor | None = None,
    padding_ratio: int = 6,
    *,
    pad_mode: str = "symmetric",
    per_sample: bool = True,
    generator: torch.Generator | None = None,
) -> Result:
    """Pad T // padding_ratio frames at both ends, keep T frames from a random start in [0, 2*pad]."""
    _check(x, mask)
    if pad_mode not in ("symmetric", "reflect"):
        raise OccbenchError(f"temporal_crop: pad_mode {pad_mode!r} is not 'symmetric' or 'reflect'")
    n, t = x.shape[0], x.shape[2]
    pad = t // padding_ratio if padding_ratio > 0 else 0
    if pad == 0:
        return _result(x.clone(), mask)
    if pad > (t - 1 if pad_mode == "reflect" else t):  # the pad is mirrored from inside the sequence
        raise OccbenchError(f"temporal_crop: cannot {pad_mode}-pad {pad} frames onto {t}")
    start = _randint(n, 2 * pad + 1, per_sample=per_sample, generator=generator, device=x.device)
    window = start[:, None] + torch.arange(t, device=x.device)  # (N, T) positions in the padded sequence
    frames = _padded_frames(t, pad, pad_mode, x.device)[window]  # (N, T) source frames
    out = _take(x, frames[:, None, :, None, None], dim=2)
    if mask is None:
        return out
    return _result(out, _take(mask, frames[:, :, None, None], dim=1))


# --------------------------------------------------------------------------------------------------
# Linear maps of the coordinates: shear and rotation


def apply_linear(x: Tensor, matrices: Tensor) -> Tensor:
    """Map every point p (the channel axis) of sample n to matrices[n] @ p; matrices (N, 3, 3)."""
    return torch.einsum("nij,njtvm->nitvm", matrices.to(x.dtype), x)


def draw_shear(
    n: int,
    amplitude: float = 0.5,
    *,
    per_sample: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """(n, 3, 3) shear matrices: unit diagonal, the six off-diagonal entries U(-amplitude, amplitude)."""
    draw = dict(per_sample=per_sample, generator=generator, device=torch.device(device))
    off = _uniform(n, (3, 3), -amplitude, amplitude, **draw)  # the diagonal draws are discarded
    eye = torch.eye(3, dtype=torch.bool, device=off.device)
    return torch.where(eye, torch.ones((), device=off.device), off)


def shear(
    x: Tensor,
    mask: Tensor | None = None,
    amplitude: float = 0.5,
    *,
    per_sample: bool = True,
    generator: torch.Generator | None = None,
) -> Result:
    """Apply a random shear matrix (:func:`draw_shear`) to the coordinates; identity if amplitude <= 0."""
    _check(x, mask)
    if amplitude <= 0:
        return _result(x.clone(), mask)
    matrices = draw_shear(x.shape[0], amplitude, per_sample=per_sample, generator=generator, device=x.device)
    return _result(apply_linear(x, matrices), mask)


def _axis_rotation(angle: Tensor, axis: int) -> Tensor:
    """(n, 3, 3) right-handed rotations by angle (n,) radians about coordinate axis 0, 1 or 2."""
    i, j = (axis + 1) % 3, (axis + 2) % 3  # cyclic order keeps the sense right-handed for every axis
    cos, sin = angle.cos(), angle.sin()
    r = torch.zeros(angle.shape[0], 3, 3, dtype=angle.dtype, device=angle.device)
    r[:, axis, axis] = 1
    r[:, i, i], r[:, j, j] = cos, cos
    r[:, i, j], r[:, j, i] = -sin, sin
    return r


def draw_rotation(
    n: int,
    main_max_degrees: float = 30.0,
    other_max_degrees: float = 1.0,
    *,
    signed: bool = True,
    per_sample: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """(n, 3, 3) rotations: one random main axis turned by up to main_max_degrees, the other two by up
    to other_max_degrees, composed as R_z @ R_y @ R_x (x first, as the reference applies them).

    Angles are U(-max, max) when signed, else -U(0, max) (the reference: always the same sense).
    """
    draw = dict(per_sample=per_sample, generator=generator, device=torch.device(device))
    main = _randint(n, 3, **draw)
    u = _uniform(n, (3,), 0.0, 1.0, **draw)
    fraction = 2 * u - 1 if signed else -u
    is_main = torch.arange(3, device=main.device) == main[:, None]
    limit = torch.where(is_main, float(main_max_degrees), float(other_max_degrees))
    angle = torch.deg2rad(fraction * limit)
    rx, ry, rz = (_axis_rotation(angle[:, k], k) for k in range(3))
    return rz @ ry @ rx


def rotate(
    x: Tensor,
    mask: Tensor | None = None,
    main_max_degrees: float = 30.0,
    other_max_degrees: float = 1.0,
    *,
    signed: bool = True,
    per_sample: bool = True,
    generator: torch.Generator | None = None,
) -> Result:
    """Rotate the coordinates by a random rotation (:func:`draw_rotation`); always applied (no p)."""
    _check(x, mask)
    matrices = draw_rotation(
        x.shape[0], main_max_degrees, other_max_degrees,
        signed=signed, per_sample=per_sample, generator=generator, device=x.device,
    )  # fmt: skip
    return _result(apply_linear(x, matrices), mask)


# --------------------------------------------------------------------------------------------------
# Joint swap, noise, blur, axis mask


@cache
def _swap_index(device: torch.device) -> Tensor:
    """LEFT_RIGHT_SWAP as a tensor on `device`, made once: building it from a list copies from the host,
    which would synchronise a CUDA stream on every call. Made outside inference mode so that it can
    also index tensors that autograd tracks."""
    with torch.inference_mode(False):
        return torch.tensor(LEFT_RIGHT_SWAP, device=device)


def flip(
    x: Tensor,
    mask: Tensor | None = None,
    p: float = 0.5,
    *,
    per_sample: bool = True,
    generator: torch.Generator | None = None,
) -> Result:
    """With probability p swap left and right joints (ntu.LEFT_RIGHT_SWAP); the mask is swapped too."""
    _check(x, mask)
    if x.shape[3] != NUM_JOINTS:
        raise OccbenchError(f"flip: needs the {NUM_JOINTS} NTU joints, got {x.shape[3]}")
    swap = _swap_index(x.device)
    apply = _coin(x.shape[0], p, per_sample=per_sample, generator=generator, device=x.device)
    joints = torch.where(apply[:, None], swap, torch.arange(NUM_JOINTS, device=x.device))  # (N, V)
    out = _take(x, joints[:, None, None, :, None], dim=3)
    if mask is None:
        return out
    return _result(out, _take(mask, joints[:, None, :, None], dim=2))


def gaussian_noise(
    x: Tensor,
    mask: Tensor | None = None,
    std: float = 0.01,
    p: float = 0.5,
    *,
    per_sample: bool = True,
    generator: torch.Generator | None = None,
) -> Result:
    """With probability p add N(0, std²) noise to every coordinate (occluded joints are re-zeroed)."""
    _check(x, mask)
    n = x.shape[0]
    rows = n if per_sample else 1
    noise = torch.randn((rows, *x.shape[1:]), generator=generator, device=_draw_device(generator, x.device))
    noise = (std * noise).to(device=x.device, dtype=x.dtype)
    apply = _coin(n, p, per_sample=per_sample, generator=generator, device=x.device)
    return _result(torch.where(_per_sample(apply, 5), x + noise, x), mask)


def _blur_time(signal: Tensor, weights: Tensor, padding: str) -> Tensor:
    """Convolve signal (B, N, T) along T with one kernel per N: weights (N, K), K odd."""
    radius = weights.shape[1] // 2
    padded = F.pad(signal, (radius, radius), mode=_BLUR_PADDING[padding])
    # The N samples are the channels of a depthwise conv, so each gets its own kernel in one call.
    return F.conv1d(padded, weights[:, None, :].to(signal.dtype), groups=weights.shape[0])


def gaussian_blur(
    x: Tensor,
    mask: Tensor | None = None,
    kernel: int = 15,
    sigma: tuple[float, float] = (0.1, 2.0),
    p: float = 0.5,
    *,
    padding: str = "replicate",
    normalize: bool = True,
    per_sample: bool = True,
    generator: torch.Generator | None = None,
) -> Result:
    """With probability p blur every coordinate along time with a Gaussian of σ ~ U(sigma).

    The kernel has `kernel` (odd) taps; the ends are padded by `padding` ('replicate', 'reflect' or
    'zeros'). With a mask only visible frames are averaged (normalised convolution).
    """
    _check(x, mask)
    if kernel < 1 or kernel % 2 == 0 or padding not in _BLUR_PADDING:
        raise OccbenchError(f"gaussian_blur: need an odd kernel and padding in {list(_BLUR_PADDING)}")
    n, c, t, v, m = x.shape
    draw = dict(per_sample=per_sample, generator=generator, device=x.device)
    s = _uniform(n, (), sigma[0], sigma[1], **draw)
    offsets = torch.arange(kernel, device=x.device) - kernel // 2
    weights = torch.exp(-(offsets**2) / (2 * s[:, None] ** 2))  # (N, K)
    if normalize:
        weights = weights / weights.sum(1, keepdim=True)
    # Tails of a narrow kernel underflow to denormal floats, which make the CPU convolution >10x slower;
    # weights below 1e-12 change nothing that float32 coordinates can show.
    weights = weights.masked_fill(weights < 1e-12, 0)

    signal = x.permute(1, 3, 4, 0, 2).reshape(c * v * m, n, t)  # samples as channels, time last
    if mask is None:
        blurred = _blur_time(signal, weights, padding)
    else:
        seen = mask.permute(2, 3, 0, 1).reshape(v * m, n, t).to(x.dtype)
        total = _blur_time((signal.reshape(c, v * m, n, t) * seen).reshape(c * v * m, n, t), weights, padding)
        coverage = _blur_time(seen, weights, padding)  # kernel weight that fell on visible frames
        scale = weights.sum(1).to(x.dtype)[:, None] / coverage.clamp_min(torch.finfo(x.dtype).tiny)
        blurred = (total.reshape(c, v * m, n, t) * scale).reshape(c * v * m, n, t)
    blurred = blurred.reshape(c, v, m, n, t).permute(3, 0, 4, 1, 2)

    apply = _coin(n, p, **draw)
    return _result(torch.where(_per_sample(apply, 5), blurred, x), mask)


def axis_mask(
    x: Tensor,
    mask: Tensor | None = None,
    p: float = 0.5,
    *,
    per_sample: bool = True,
    generator: torch.Generator | None = None,
) -> Result:
    """With probability p set one random coordinate axis (x, y or z) to 0 for the whole sample."""
    _check(x, mask)
    n = x.shape[0]
    draw = dict(per_sample=per_sample, generator=generator, device=x.device)
    axis = _randint(n, 3, **draw)
    apply = _coin(n, p, **draw)
    drop = apply[:, None] & (torch.arange(3, device=x.device) == axis[:, None])  # (N, 3)
    return _result(x.masked_fill(drop[:, :, None, None, None], 0), mask)


# --------------------------------------------------------------------------------------------------
# The standard views


def _chain(x: Tensor, mask: Tensor | None, steps: list[Callable]) -> Result:
    for step in steps:
        if mask is None:
            x = step(x)
        else:
            x, mask = step(x, mask)
    return _result(x, mask)


def normal_view(
    x: Tensor,
    mask: Tensor | None = None,
    shear_amplitude: float = 0.5,
    padding_ratio: int = 6,
    *,
    per_sample: bool = True,
    generator: torch.Generator | None = None,
) -> Result:
    """SkeletonCLR / CrosSCLR / AimCLR normal view: temporal crop, then shear."""
    draw = dict(per_sample=per_sample, generator=generator)
    steps = [
        partial(temporal_crop, padding_ratio=padding_ratio, **draw),
        partial(shear, amplitude=shear_amplitude, **draw),
    ]
    return _chain(x, mask, steps)


def _extreme_steps(signed_rotation: bool, draw: dict) -> dict[str, Callable]:
    """AimCLR's aug_method digits (methods.md §4); '6' (time reversal, off by default) is not provided."""
    return {
        "1": partial(flip, p=0.5, **draw),
        "2": partial(rotate, main_max_degrees=30.0, other_max_degrees=1.0, signed=signed_rotation, **draw),
        "3": partial(gaussian_noise, std=0.01, p=0.5, **draw),
        "4": partial(gaussian_blur, kernel=15, sigma=(0.1, 2.0), p=0.5, **draw),
        "5": partial(axis_mask, p=0.5, **draw),
    }


def extreme_view(
    x: Tensor,
    mask: Tensor | None = None,
    shear_amplitude: float = 0.5,
    padding_ratio: int = 6,
    methods: str = "12345",
    *,
    signed_rotation: bool = False,
    per_sample: bool = True,
    generator: torch.Generator | None = None,
) -> Result:
    """AimCLR extreme view: the normal view, then the extreme augmentations named by `methods` in
    order ('1' flip, '2' rotate, '3' noise, '4' blur, '5' axis mask)."""
    draw = dict(per_sample=per_sample, generator=generator)
    extreme = _extreme_steps(signed_rotation, draw)
    unknown = sorted(set(methods) - set(extreme))
    if unknown:
        raise OccbenchError(f"extreme_view: unknown methods {unknown}; use digits of '12345'")
    steps = [
        partial(temporal_crop, padding_ratio=padding_ratio, **draw),
        partial(shear, amplitude=shear_amplitude, **draw),
        *(extreme[code] for code in methods),
    ]
    return _chain(x, mask, steps)


def pstl_view(
    x: Tensor,
    mask: Tensor | None = None,
    shear_amplitude: float = 1.0,
    padding_ratio: int = 6,
    *,
    signed_rotation: bool = False,
    per_sample: bool = False,
    generator: torch.Generator | None = None,
) -> Result:
    """PSTL view: crop, shear (amplitude 1), rotate, flip (p 0.5), one draw per batch by default."""
    draw = dict(per_sample=per_sample, generator=generator)
    steps = [
        partial(temporal_crop, padding_ratio=padding_ratio, **draw),
        partial(shear, amplitude=shear_amplitude, **draw),
        partial(rotate, signed=signed_rotation, **draw),
        partial(flip, p=0.5, **draw),
    ]
    return _chain(x, mask, steps)
