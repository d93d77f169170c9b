"""Tests of occbench.augment: batched skeleton augmentations (crop, shear, rotate, flip, noise, blur,
axis mask) and the SkeletonCLR / AimCLR / PSTL views built from them."""

from functools import partial

import numpy as np
import pytest
import torch

from occbench import augment as A
from occbench.data.ntu import LEFT_RIGHT_SWAP, PARENT
from occbench.errors import OccbenchError

N, T, V, M = 8, 20, 25, 2  # T = 20 -> the crop pads T // 6 = 3 frames


def gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def batch(n: int = N, t: int = T, seed: int = 0, dtype=torch.float32, device: str = "cpu"):
    """Random skeletons with about 30 % occluded joints, which hold 0."""
    g = gen(seed)
    x = torch.randn(n, 3, t, V, M, generator=g, dtype=dtype)
    mask = torch.rand(n, t, V, M, generator=g) > 0.3
    return A.keep_occluded_zero(x, mask).to(device), mask.to(device)


# Each function with settings that always apply it (p = 1).
ALWAYS = {
    "temporal_crop": A.temporal_crop,
    "shear": A.shear,
    "rotate": A.rotate,
    "flip": partial(A.flip, p=1.0),
    "gaussian_noise": partial(A.gaussian_noise, p=1.0),
    "gaussian_blur": partial(A.gaussian_blur, p=1.0),
    "axis_mask": partial(A.axis_mask, p=1.0),
    "normal_view": A.normal_view,
    "extreme_view": A.extreme_view,
    "pstl_view": A.pstl_view,
}
# Settings whose outcome is random for every function (flip with p = 1 always does the same thing).
RANDOM = {**ALWAYS, "flip": partial(A.flip, p=0.5)}
VIEWS = ["normal_view", "extreme_view", "pstl_view"]


def views_equal(a, b) -> bool:
    if isinstance(a, tuple):
        return all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    return torch.equal(a, b)


# --------------------------------------------------------------------------------------------------
# Contract shared by every function


@pytest.mark.parametrize("name", ALWAYS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_and_dtype_are_kept(name, dtype):
    x, mask = batch(dtype=dtype)
    out = ALWAYS[name](x, generator=gen())
    assert out.shape == x.shape and out.dtype == dtype
    out, out_mask = ALWAYS[name](x, mask, generator=gen())
    assert out.shape == x.shape and out.dtype == dtype
    assert out_mask.shape == mask.shape and out_mask.dtype == torch.bool


@pytest.mark.parametrize("name", ALWAYS)
def test_inputs_are_not_modified(name):
    x, mask = batch()
    x_before, mask_before = x.clone(), mask.clone()
    ALWAYS[name](x, generator=gen())
    out, out_mask = ALWAYS[name](x, mask, generator=gen())
    assert torch.equal(x, x_before) and torch.equal(mask, mask_before)
    assert out.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("name", RANDOM)
@pytest.mark.parametrize("per_sample", [True, False])
def test_same_seed_same_output_other_seed_other_output(name, per_sample):
    x, mask = batch()
    f = partial(RANDOM[name], per_sample=per_sample)
    assert views_equal(f(x, mask, generator=gen(1)), f(x, mask, generator=gen(1)))
    outputs = [f(x, generator=gen(seed)) for seed in range(4)]
    assert any(not torch.equal(outputs[0], other) for other in outputs[1:])


def test_no_generator_uses_torch_default_generator():
    x, _ = batch()
    torch.manual_seed(5)
    a = A.extreme_view(x)
    torch.manual_seed(5)
    assert torch.equal(a, A.extreme_view(x))


@pytest.mark.parametrize("name", RANDOM)
def test_one_draw_per_batch_or_per_sample(name):
    x, mask = batch(n=1)
    same_x, same_mask = x.expand(N, -1, -1, -1, -1).clone(), mask.expand(N, -1, -1, -1).clone()
    f = RANDOM[name]

    out, out_mask = f(same_x, same_mask, per_sample=False, generator=gen(2))
    assert (out == out[:1]).all() and (out_mask == out_mask[:1]).all()

    out = f(same_x, per_sample=True, generator=gen(2))
    assert not (out == out[:1]).all(), "per_sample=True gave every sample the same transform"


# --------------------------------------------------------------------------------------------------
# Shear and rotation


def test_apply_linear_maps_known_points():
    matrix = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [4.0, 0.0, 1.0]])
    x = torch.zeros(1, 3, 2, V, M)
    x[0, :, 0, 7, 1] = torch.tensor([1.0, 1.0, 1.0])
    x[0, :, 1, 3, 0] = torch.tensor([1.0, 0.0, -2.0])
    out = A.apply_linear(x, matrix[None])
    assert out[0, :, 0, 7, 1].tolist() == [3.0, 4.0, 5.0]
    assert out[0, :, 1, 3, 0].tolist() == [1.0, -6.0, 2.0]
    assert out.abs().sum() == 12 + 9  # every other point stays at 0


def test_shear_matrices():
    matrices = A.draw_shear(256, 0.5, generator=gen())
    eye = torch.eye(3, dtype=torch.bool)
    assert (matrices[:, eye] == 1).all()
    off = matrices[:, ~eye]
    assert off.abs().max() <= 0.5 and off.abs().max() > 0.45 and off.min() < 0 < off.max()
    assert torch.equal(A.draw_shear(4, 0.0, generator=gen()), torch.eye(3).expand(4, 3, 3))


def test_shear_applies_the_drawn_matrix_and_is_linear():
    x, _ = batch(seed=1)
    y, _ = batch(seed=2)
    matrices = A.draw_shear(N, 0.5, generator=gen(3))
    assert torch.allclose(A.shear(x, generator=gen(3)), A.apply_linear(x, matrices))
    combined = A.shear(2 * x - 3 * y, generator=gen(3))
    assert torch.allclose(combined, 2 * A.shear(x, generator=gen(3)) - 3 * A.shear(y, generator=gen(3)), atol=1e-5)


@pytest.mark.parametrize("amplitude", [0.0, -1.0])
def test_shear_without_amplitude_is_identity(amplitude):
    x, mask = batch()
    assert torch.equal(A.shear(x, amplitude=amplitude, generator=gen()), x)
    out, out_mask = A.shear(x, mask, amplitude=amplitude, generator=gen())
    assert torch.equal(out, x) and torch.equal(out_mask, mask)


def rotation_angle_degrees(matrices: torch.Tensor) -> torch.Tensor:
    trace = matrices.diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.rad2deg(torch.acos(((trace - 1) / 2).clamp(-1, 1)))


def test_rotations_are_proper_and_bounded():
    matrices = A.draw_rotation(512, generator=gen()).double()
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(matrices.transpose(1, 2) @ matrices, eye.expand(512, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(matrices), torch.ones(512, dtype=torch.float64), atol=1e-6)
    angle = rotation_angle_degrees(matrices)
    assert angle.max() <= 32 + 1e-3  # at most 30 + 1 + 1 degrees in total
    assert angle.max() > 25 and angle.min() < 5


@pytest.mark.parametrize("signed", [True, False])
def test_rotation_main_axis_and_sign(signed):
    matrices = A.draw_rotation(300, 30.0, 0.0, signed=signed, generator=gen())
    diagonal = matrices.diagonal(dim1=-2, dim2=-1)
    main = (diagonal - 1).abs().argmin(-1)  # the axis that a single-axis rotation leaves fixed
    assert set(main.tolist()) == {0, 1, 2}
    rows = torch.arange(300)
    i, j = (main + 1) % 3, (main + 2) % 3
    sine = matrices[rows, j, i]  # sin(angle) of a right-handed rotation about the main axis
    assert torch.allclose(matrices[rows, i, j], -sine)
    assert sine.abs().max() <= np.sin(np.radians(30)) + 1e-6
    if signed:
        assert sine.min() < -0.3 and sine.max() > 0.3
    else:  # the reference turns every sample the same way
        assert sine.max() <= 0 and sine.min() < -0.3


def test_rotate_keeps_joint_norms_and_bone_lengths():
    x, mask = batch()
    out, out_mask = A.rotate(x, mask, generator=gen())
    assert torch.equal(out_mask, mask)
    assert torch.allclose(out.norm(dim=1), x.norm(dim=1), atol=1e-5)
    parent = list(PARENT)
    bones, rotated_bones = x - x[:, :, :, parent], out - out[:, :, :, parent]
    assert torch.allclose(rotated_bones.norm(dim=1), bones.norm(dim=1), atol=1e-5)
    assert not torch.allclose(out, x, atol=1e-3)


# --------------------------------------------------------------------------------------------------
# Flip


def test_flip_swaps_left_and_right_and_twice_is_identity():
    x, mask = batch()
    once, once_mask = A.flip(x, mask, p=1.0, generator=gen())
    assert torch.equal(once[:, :, :, 4], x[:, :, :, 8]) and torch.equal(once[:, :, :, 8], x[:, :, :, 4])
    assert torch.equal(once[:, :, :, 0], x[:, :, :, 0])  # spine base stays
    assert torch.equal(once, x[:, :, :, list(LEFT_RIGHT_SWAP)])
    assert torch.equal(once_mask, mask[:, :, list(LEFT_RIGHT_SWAP)])
    twice, twice_mask = A.flip(once, once_mask, p=1.0, generator=gen())
    assert torch.equal(twice, x) and torch.equal(twice_mask, mask)


def test_flip_with_p_half_flips_some_samples():
    x, mask = batch(n=64)
    out, out_mask = A.flip(x, mask, p=0.5, generator=gen())
    flipped = (out == x[:, :, :, list(LEFT_RIGHT_SWAP)]).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert (flipped ^ kept).all() and 16 < flipped.sum() < 48
    assert torch.equal(A.flip(x, p=0.0, generator=gen()), x)


# --------------------------------------------------------------------------------------------------
# Temporal crop


def test_crop_of_a_still_sequence_is_unchanged():
    x, _ = batch(t=1)
    still = x.expand(-1, -1, T, -1, -1)
    assert torch.equal(A.temporal_crop(still, generator=gen()), still)


@pytest.mark.parametrize("mode", ["symmetric", "reflect"])
@pytest.mark.parametrize("t", [20, 50])
def test_crop_of_a_ramp_is_a_window_of_the_padded_ramp(mode, t):
    pad = t // 6
    padded = np.pad(np.arange(t), pad, mode=mode)  # numpy's modes define the two paddings
    ramp = torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1).expand(32, 3, t, V, M)
    out = A.temporal_crop(ramp, pad_mode=mode, generator=gen())
    starts = set()
    for sample in out:
        assert (sample == sample[0, :, 0, 0].view(1, t, 1, 1)).all()  # whole frames move together
        frames = sample[0, :, 0, 0].numpy()
        start = [s for s in range(2 * pad + 1) if np.array_equal(padded[s : s + t], frames)]
        assert start, f"{frames} is not a window of {padded}"
        starts.add(start[0])
    assert len(starts) > 3 and starts <= set(range(2 * pad + 1))
    assert 0 in starts and 2 * pad in starts  # both ends of [0, 2 * pad] can be drawn


def test_crop_moves_the_mask_with_the_frames():
    x, mask = batch(n=16)
    ramp = (1 + torch.arange(T, dtype=torch.float32)).view(1, 1, T, 1, 1).expand(16, 3, T, V, M)
    source = A.temporal_crop(ramp, generator=gen(4))[:, 0, :, 0, 0].long() - 1  # (N, T) source frames
    out, out_mask = A.temporal_crop(x, mask, generator=gen(4))
    rows = torch.arange(16)[:, None]
    assert torch.equal(out_mask, mask[rows, source])
    assert torch.equal(out, x.transpose(1, 2)[rows, source].transpose(1, 2))


@pytest.mark.parametrize("ratio", [0, -1, 100])
def test_crop_without_padding_is_identity(ratio):
    x, _ = batch()
    assert torch.equal(A.temporal_crop(x, padding_ratio=ratio, generator=gen()), x)


def test_crop_rejects_padding_longer_than_the_sequence():
    x, _ = batch(t=4)
    with pytest.raises(OccbenchError):
        A.temporal_crop(x, padding_ratio=1, pad_mode="reflect")
    with pytest.raises(OccbenchError):
        A.temporal_crop(x, pad_mode="wrap")


# --------------------------------------------------------------------------------------------------
# Noise, blur, axis mask


def test_noise_has_the_requested_std_and_p_zero_is_identity():
    x, _ = batch(n=32)
    out = A.gaussian_noise(x, std=0.01, p=1.0, generator=gen())
    assert abs((out - x).std().item() - 0.01) < 5e-4 and abs((out - x).mean().item()) < 5e-4
    assert torch.equal(A.gaussian_noise(x, p=0.0, generator=gen()), x)


@pytest.mark.parametrize("padding", ["replicate", "reflect"])
def test_blur_keeps_a_constant_sequence(padding):
    x, _ = batch(t=1)
    still = x.expand(-1, -1, T, -1, -1)
    out = A.gaussian_blur(still, p=1.0, padding=padding, generator=gen())
    assert torch.allclose(out, still, atol=1e-6)


def test_blur_removes_high_frequencies_and_keeps_slopes():
    alternating = (-1.0) ** torch.arange(T, dtype=torch.float32)
    x = alternating.view(1, 1, T, 1, 1).expand(N, 3, T, V, M)

    def energy(y):
        return y.pow(2).flatten(1).sum(1)

    out = A.gaussian_blur(x, p=1.0, generator=gen())
    assert (energy(out) <= energy(x) + 1e-4).all()
    out = A.gaussian_blur(x, sigma=(1.0, 2.0), p=1.0, generator=gen())
    assert (energy(out) < 0.1 * energy(x)).all()
    ramp = torch.arange(T, dtype=torch.float32).view(1, 1, T, 1, 1).expand(N, 3, T, V, M)
    inner = slice(7, T - 7)  # frames whose kernel does not reach the padding: a symmetric kernel keeps lines
    out = A.gaussian_blur(ramp, p=1.0, generator=gen())
    assert torch.allclose(out[:, :, inner], ramp[:, :, inner], atol=1e-5)


def test_blur_reference_mode_scales_by_the_kernel_sum():
    ones = torch.ones(2, 3, T, V, M)
    out = A.gaussian_blur(ones, sigma=(2.0, 2.0), p=1.0, normalize=False, padding="zeros", generator=gen())
    kernel_sum = np.exp(-(np.arange(-7, 8) ** 2) / 8.0).sum()  # about 5: AimCLR's kernel is not normalised
    assert torch.allclose(out[:, :, 7 : T - 7], torch.tensor(kernel_sum, dtype=torch.float32))
    assert (out[:, :, 0] < out[:, :, 10]).all()  # zero padding pulls the ends down


def test_blur_with_a_mask_ignores_occluded_frames():
    ones = torch.ones(2, 3, T, V, M)
    mask = torch.ones(2, T, V, M, dtype=torch.bool)
    mask[:, 8:12, 5] = False  # joint 5 occluded for four frames
    x = A.keep_occluded_zero(ones, mask)
    out, out_mask = A.gaussian_blur(x, mask, sigma=(2.0, 2.0), p=1.0, generator=gen())
    assert torch.equal(out_mask, mask)
    assert (out[:, :, 8:12, 5] == 0).all()
    visible = mask[:, None].expand_as(out)
    assert torch.allclose(out[visible], torch.ones(())), "visible joints were pulled towards the occlusion"
    unaware = A.gaussian_blur(x, sigma=(2.0, 2.0), p=1.0, generator=gen())  # no mask: zeros leak in
    assert unaware[:, :, 7, 5].max() < 0.9


def test_blur_p_zero_is_identity_and_kernel_must_be_odd():
    x, _ = batch()
    assert torch.equal(A.gaussian_blur(x, p=0.0, generator=gen()), x)
    with pytest.raises(OccbenchError):
        A.gaussian_blur(x, kernel=14)


def test_axis_mask_zeroes_exactly_one_axis():
    x = torch.rand(64, 3, T, V, M, generator=gen()) + 1  # never 0
    out = A.axis_mask(x, p=1.0, generator=gen())
    zero_axes = (out == 0).flatten(2).all(2)  # (N, 3)
    assert (zero_axes.sum(1) == 1).all()
    assert torch.equal(out[~zero_axes], x[~zero_axes])
    assert zero_axes.any(0).all()  # each of x, y, z is chosen for some sample
    assert torch.equal(A.axis_mask(x, p=0.0, generator=gen()), x)


# --------------------------------------------------------------------------------------------------
# Occlusion and the composed views


@pytest.mark.parametrize("name", ALWAYS)
def test_occluded_joints_stay_zero(name):
    x, mask = batch()
    out, out_mask = ALWAYS[name](x, mask, generator=gen())
    assert (out[~out_mask[:, None].expand_as(out)] == 0).all()
    assert (out[out_mask[:, None].expand_as(out)] != 0).float().mean() > 0.6  # and not everything is 0


def test_keep_occluded_zero_overwrites_anything():
    x = torch.full((2, 3, T, V, M), float("nan"))
    mask = torch.zeros(2, T, V, M, dtype=torch.bool)
    mask[:, :, 3] = True
    out = A.keep_occluded_zero(x, mask)
    assert (out[:, :, :, 3].isnan()).all() and (out[:, :, :, :3] == 0).all() and (out[:, :, :, 4:] == 0).all()


@pytest.mark.parametrize("name", VIEWS)
@pytest.mark.parametrize("per_sample", [True, False])
def test_views_move_the_mask_with_crop_and_flip(name, per_sample):
    x, mask = batch()
    _, out_mask = getattr(A, name)(x, mask, per_sample=per_sample, generator=gen(6))
    # every view starts with the crop, so the same seed gives the same crop
    _, cropped = A.temporal_crop(x, mask, per_sample=per_sample, generator=gen(6))
    flipped = cropped[:, :, list(LEFT_RIGHT_SWAP)]
    same = (out_mask == cropped).flatten(1).all(1)
    swapped = (out_mask == flipped).flatten(1).all(1)
    assert (same | swapped).all()
    if name == "normal_view":
        assert same.all()


def test_extreme_view_is_normal_view_then_the_five_augmentations():
    x, mask = batch()
    g = gen(7)
    expected = A.normal_view(x, mask, generator=g)
    published_rotate = partial(A.rotate, signed=False)  # the views rotate in the published code's one sense
    for step in (A.flip, published_rotate, A.gaussian_noise, A.gaussian_blur, A.axis_mask):
        expected = step(*expected, generator=g)
    assert views_equal(A.extreme_view(x, mask, generator=gen(7)), expected)
    assert views_equal(A.extreme_view(x, mask, methods="", generator=gen(7)), A.normal_view(x, mask, generator=gen(7)))
    with pytest.raises(OccbenchError):
        A.extreme_view(x, methods="126")


def test_pstl_view_is_crop_shear_rotate_flip_with_one_draw():
    x, mask = batch()
    g = gen(8)
    expected = A.temporal_crop(x, mask, per_sample=False, generator=g)
    expected = A.shear(*expected, amplitude=1.0, per_sample=False, generator=g)
    expected = A.rotate(*expected, signed=False, per_sample=False, generator=g)
    expected = A.flip(*expected, per_sample=False, generator=g)
    assert views_equal(A.pstl_view(x, mask, generator=gen(8)), expected)


def test_bad_mask_is_rejected():
    x, mask = batch()
    with pytest.raises(OccbenchError):
        A.shear(x, mask[:, :-1])
    with pytest.raises(OccbenchError):
        A.shear(x, mask.float())


# --------------------------------------------------------------------------------------------------
# Devices: no per-sample host work, and CUDA when there is one


@pytest.mark.parametrize("name", ALWAYS)
def test_runs_on_the_meta_device(name):
    # Meta tensors have no data: a .item(), a Python branch on a tensor value or a copy to the host
    # would raise, so this shows that nothing is decided per sample on the host.
    x = torch.empty(N, 3, T, V, M, device="meta")
    mask = torch.empty(N, T, V, M, dtype=torch.bool, device="meta")
    out, out_mask = ALWAYS[name](x, mask)
    assert out.device.type == "meta" and out.shape == x.shape and out_mask.shape == mask.shape
    assert ALWAYS[name](x).device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", ALWAYS)
@pytest.mark.parametrize("per_sample", [True, False])
def test_runs_on_cuda_without_synchronising(name, per_sample):
    x, mask = batch(device="cuda")
    f = partial(ALWAYS[name], per_sample=per_sample)
    f(x, mask, generator=gen(0, "cuda"))  # warm up (first calls may sync for lazy initialisation)
    torch.cuda.set_sync_debug_mode("error")
    try:
        out, out_mask = f(x, mask, generator=gen(0, "cuda"))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.device.type == "cuda" and out_mask.device.type == "cuda"
    assert (out[~out_mask[:, None].expand_as(out)] == 0).all()
    assert views_equal((out, out_mask), f(x, mask, generator=gen(0, "cuda")))
