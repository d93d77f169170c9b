"""50-frame relative preprocessing, mask-aware and published, and the motion and bone streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from occbench.data.dataset import DatasetWriter, SkeletonDataset
from occbench.data.ntu import CENTER_JOINT, LEFT_SHOULDER, PARENT, RIGHT_SHOULDER
from occbench.data.preprocess import (
    bone,
    motion,
    pipeline_of,
    preprocess,
    preprocess_arrays,
    published_arrays,
    published_length,
)
from occbench.errors import OccbenchError

V, M = 25, 2


def turn(a: float) -> np.ndarray:
    """Rotation about y taking +x towards +z by angle a."""
    return np.array([[math.cos(a), 0, -math.sin(a)], [0, 1, 0], [math.sin(a), 0, math.cos(a)]])


def reference(x: np.ndarray, length: int, frames: int) -> np.ndarray:
    """Loop version of centring + resize + rotation for a sample with every joint visible."""
    out = np.zeros((3, frames, V, M))
    for m in range(M):
        rel = x[:, :length, :, m] - x[:, :length, CENTER_JOINT : CENTER_JOINT + 1, m]
        for f in range(frames):
            src = min(max((f + 0.5) * length / frames - 0.5, 0.0), length - 1)
            i0 = math.floor(src)
            i1, w = min(i0 + 1, length - 1), src - i0
            out[:, f, :, m] = (1 - w) * rel[:, i0] + w * rel[:, i1]
        for f in range(frames):
            s = out[:, f, RIGHT_SHOULDER, m] - out[:, f, LEFT_SHOULDER, m]
            a = math.atan2(s[2], s[0])
            out[:, f, :, m] = turn(-a) @ out[:, f, :, m]
    return out


def batch(n: int = 3, t: int = 300, seed: int = 0, occlusion: float = 0.0):
    rng = np.random.default_rng(seed)
    data = rng.normal(0, 0.5, (n, 3, t, V, M)).astype(np.float32)
    mask = rng.random((n, t, V, M)) >= occlusion
    present = np.ones((n, t, M), bool)
    length = rng.integers(t // 4, t + 1, n)
    return data, mask, present, length


def rotating_body(t: int, angle) -> np.ndarray:
    """(3, t, 25, 2): a fixed pose (shoulders along +x) turned about y by angle(frame) and drifting."""
    rng = np.random.default_rng(5)
    pose = rng.normal(0, 0.3, (3, V))
    pose[:, LEFT_SHOULDER] = pose[:, CENTER_JOINT] - [0.2, 0, 0]
    pose[:, RIGHT_SHOULDER] = pose[:, CENTER_JOINT] + [0.2, 0, 0]
    x = np.zeros((3, t, V, M))
    for f in range(t):
        for m in range(M):
            x[:, f, :, m] = turn(angle(f)) @ pose + np.array([[0.01 * f], [0.0], [3.0 + m]])
    return x.astype(np.float32), pose - pose[:, CENTER_JOINT : CENTER_JOINT + 1]


# --------------------------------------------------------------------------------------------------
# preprocess_arrays


def test_clean_samples_match_the_loop_reference():
    data, mask, present, _ = batch(3)
    length = np.array([300, 120, 23])  # down-sampling, and up-sampling of a short sequence
    out, out_mask, out_present, out_length = preprocess_arrays(data, mask, present, length, frames=50)
    assert out.shape == (3, 3, 50, V, M) and out.dtype == np.float32
    assert out_mask.all() and out_present.all() and out_length.tolist() == [50, 50, 50]
    for i in range(3):
        np.testing.assert_allclose(out[i], reference(data[i].astype(np.float64), length[i], 50), atol=2e-5)


def test_occluded_joints_never_change_visible_outputs():
    data, mask, present, length = batch(4, occlusion=0.3)
    present[1, 100:, 1] = False
    mask &= present[:, :, None]
    first = preprocess_arrays(data, mask, present, length)
    garbage = data.copy()
    hidden = np.broadcast_to(~mask[:, None], data.shape)
    garbage[hidden] = np.random.default_rng(1).normal(0, 1e3, hidden.sum())
    garbage[:, :, :, 3][hidden[:, :, :, 3]] = np.nan
    padding = np.arange(300) >= length[:, None]
    mask_with_padding = mask | padding[:, :, None, None]  # visible-looking joints past the length too
    second = preprocess_arrays(garbage, mask_with_padding, present | padding[:, :, None], length)
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a, b)
    out, out_mask = first[0], first[1]
    assert not out[np.broadcast_to(~out_mask[:, None], out.shape)].any()  # not visible -> exactly 0
    assert np.isfinite(out).all()


def test_the_stored_length_is_used_not_the_joint_0_heuristic():
    data, mask, present, _ = batch(1, t=100)
    mask[0, 30:, 0, 0] = False  # joint 0 of body 0 occluded from frame 30: the heuristic would say 30
    out, out_mask, _, _ = preprocess_arrays(data, mask, present, np.array([60]), frames=60)
    ref = reference(np.where(mask[:, None], data, 0)[0].astype(np.float64), 60, 60)
    visible = out_mask[0, :, 1:]
    np.testing.assert_allclose(out[0][:, :, 1:][:, visible], ref[:, :, 1:][:, visible], atol=2e-5)


def test_an_empty_sample_gives_zeros():
    data, mask, present, _ = batch(2)
    out, out_mask, out_present, out_length = preprocess_arrays(data, mask, present, np.array([0, 50]))
    assert out_length.tolist() == [0, 50]
    assert not out[0].any() and not out_mask[0].any() and not out_present[0].any()


def test_an_occluded_centre_joint_is_interpolated_in_time():
    t = 40
    x, pose = rotating_body(t, lambda f: 0.0)  # translating, shoulders already on +x
    mask = np.ones((1, t, V, M), bool)
    mask[0, 10:20, CENTER_JOINT, 0] = False
    mask[0, :3, CENTER_JOINT, 0] = False
    data = np.where(mask[:, None], x[None], 0)
    out, out_mask, _, _ = preprocess_arrays(data, mask, np.ones((1, t, M), bool), np.array([t]), frames=t)
    # inside the gap the drift is interpolated exactly; before frame 3 the centre is frame 3's
    expected = np.broadcast_to(pose[:, None], (3, t, V)).copy()
    expected[0, :3] += 0.01 * (np.arange(3) - 3)[:, None]
    expected[:, :, CENTER_JOINT] = 0
    visible = out_mask[0, :, :, 0]
    np.testing.assert_allclose(out[0, :, :, :, 0][:, visible], expected[:, visible], atol=1e-5)
    assert not out_mask[0, 10:20, CENTER_JOINT, 0].any() and not out[0, :, 10:20, CENTER_JOINT, 0].any()


def test_a_never_visible_centre_uses_the_mean_of_the_visible_joints():
    data, mask, present, _ = batch(1, t=30)
    mask[0, :, CENTER_JOINT, 0] = False
    mask[0, 5, :, 0] = False  # a frame with no visible joint: its centre is interpolated
    out, out_mask, _, _ = preprocess_arrays(data, mask, present, np.array([30]), frames=30)
    visible = out_mask[0, :, :, 0]
    # rotation about y keeps the mean at 0 in every frame that has visible joints
    means = out[0, :, :, :, 0].sum(2) / np.maximum(visible.sum(1), 1)
    np.testing.assert_allclose(means[:, visible.any(1)], 0, atol=1e-5)
    assert not visible[5].any()


def test_resizing_a_linear_ramp_stays_linear():
    t = 100
    data = np.zeros((1, 3, t, V, M), np.float32)
    ramp = np.arange(t) * 0.01
    data[0, 1] = (np.arange(V) + 1)[None, :, None] * ramp[:, None, None]  # y ramps: no rotation
    data[0, 0, :, RIGHT_SHOULDER] = 1.0  # shoulders along +x
    mask, present = np.ones((1, t, V, M), bool), np.ones((1, t, M), bool)
    down, *_ = preprocess_arrays(data, mask, present, np.array([t]), frames=50)
    src = 2 * np.arange(50) + 0.5  # (f + 0.5) * 100 / 50 - 0.5
    rel = (np.arange(V) + 1 - (CENTER_JOINT + 1))[:, None]
    np.testing.assert_allclose(down[0, 1, :, :, 0], (rel * 0.01 * src).T, atol=1e-5)
    up, *_ = preprocess_arrays(data, mask, present, np.array([20]), frames=50)
    steps = np.diff(up[0, 1, :, 2, 0])
    inner = slice(2, 47)  # beyond these the source position is clamped to the first/last frame
    np.testing.assert_allclose(steps[inner], steps[inner][0], atol=1e-6)
    assert steps[inner][0] != 0


def test_the_mask_is_resized_with_the_data():
    data, mask, present, _ = batch(1, t=100)
    mask[0, :50, 5, 0] = False
    present[0, 80:, 1] = False
    mask &= present[:, :, None]
    out, out_mask, out_present, _ = preprocess_arrays(data, mask, present, np.array([100]), frames=50)
    # src = 2f + 0.5: the tie goes to frame 2f, so outputs 0..24 come from occluded frames
    assert not out_mask[0, :25, 5, 0].any() and out_mask[0, 25:, 5, 0].all()
    assert not out[0, :, :25, 5, 0].any()
    assert out_present[0, :40, 1].all() and not out_present[0, 40:, 1].any()
    assert np.array_equal(out_mask[0, :, :, 1], np.repeat(out_present[0, :, 1:], V, 1))
    # a visible output next to an occluded source frame takes only its visible neighbour
    mask2 = np.ones((1, 100, V, M), bool)
    mask2[0, 51, 7, 0] = False  # output 25 samples src 50.5: frames 50 (visible) and 51 (occluded)
    out2, *_ = preprocess_arrays(data, mask2, np.ones((1, 100, M), bool), np.array([100]), frames=50)
    rel = data[0, :, 50, 7, 0] - data[0, :, 50, CENTER_JOINT, 0]
    got = out2[0, :, 25, 7, 0]  # compare what the rotation about y keeps: y and the distance from y
    kept = [got[1], np.hypot(got[0], got[2])]
    np.testing.assert_allclose(kept, [rel[1], np.hypot(rel[0], rel[2])], atol=1e-5)


def test_the_rotation_puts_the_shoulders_on_the_x_axis():
    data, mask, present, length = batch(4, occlusion=0.2)
    out, out_mask, _, _ = preprocess_arrays(data, mask, present, length)
    shoulder = out[:, :, :, RIGHT_SHOULDER] - out[:, :, :, LEFT_SHOULDER]
    both = out_mask[:, :, RIGHT_SHOULDER] & out_mask[:, :, LEFT_SHOULDER]
    assert both.mean() > 0.5
    np.testing.assert_allclose(shoulder[:, 2][both], 0, atol=1e-5)
    assert (shoulder[:, 0][both] > 0).all()


def test_the_angle_is_interpolated_where_the_shoulders_are_occluded():
    t = 60
    x, pose = rotating_body(t, lambda f: 2.5 + 0.05 * f)  # crosses +-pi near frame 13
    mask = np.ones((1, t, V, M), bool)
    mask[0, 8:20, LEFT_SHOULDER] = False
    mask[0, 40:, RIGHT_SHOULDER, 1] = False  # to the end: the last measured angle is kept
    data = np.where(mask[:, None], x[None], 0)
    out, out_mask, _, _ = preprocess_arrays(data, mask, np.ones((1, t, M), bool), np.array([t]), frames=t)
    hip = out[0, :, :, 12, 0]
    np.testing.assert_allclose(hip, np.broadcast_to(pose[:, 12:13], hip.shape), atol=1e-5)
    # body 2 past frame 40 keeps the angle of frame 39 while the body goes on turning
    late = out[0, :, 50, 12, 1]
    np.testing.assert_allclose(late, turn(0.05 * (50 - 39)) @ pose[:, 12], atol=1e-5)


def test_no_rotation_when_the_shoulders_are_never_visible():
    data, mask, present, _ = batch(1, t=50)
    mask[0, :, LEFT_SHOULDER, 0] = False
    out, out_mask, _, _ = preprocess_arrays(data, mask, present, np.array([50]), frames=50)
    centred = np.where(mask[:, None], data - data[:, :, :, CENTER_JOINT : CENTER_JOINT + 1], 0)
    np.testing.assert_allclose(out[0, :, :, :, 0], centred[0, :, :, :, 0], atol=1e-6)


# --------------------------------------------------------------------------------------------------
# preprocess on a dataset directory


def test_preprocess_a_dataset_directory(tmp_path):
    data, mask, present, length = batch(5, t=80, occlusion=0.1)
    data = np.where(mask[:, None], data, 0)
    arrays = {"data": data, "mask": mask, "present": present, "length": length, "label": np.arange(5)}
    arrays["inferred"] = mask & (data[:, 0] > 0.5)
    meta = {"benchmark": "ntu60", "num_class": 60, "frames": 80, "stages": [{"stage": "synth"}]}
    with DatasetWriter(tmp_path / "raw", 5, 80) as writer:
        for name, values in arrays.items():
            writer[name][:] = values
        writer.names = [f"S001C001P001R001A00{i + 1}" for i in range(5)]
        source = writer.finish({"xsub": {"train": [0, 1, 2], "val": [3, 4]}}, meta)
    out = preprocess(source, tmp_path / "p50", frames=50)
    assert out.frames == 50 and out.meta["frames"] == 50
    assert [s["stage"] for s in out.meta["stages"]] == ["synth", "preprocess"]
    assert out.meta["stages"][-1]["frames"] == 50
    expected = preprocess_arrays(data, mask, present, length, 50)
    for got, want in zip((out.data, out.mask, out.present, out.length), expected, strict=True):
        assert np.array_equal(np.asarray(got), want)
    assert out.label.tolist() == list(range(5)) and out.names == source.names
    assert out.splits["xsub"]["val"].tolist() == [3, 4]
    assert out.inferred.shape == (5, 50, V, M) and out.inferred.any()
    assert not (np.asarray(out.inferred) & ~np.asarray(out.mask)).any()


# --------------------------------------------------------------------------------------------------
# the published pipeline


def feeder_reference(x: np.ndarray, frames: int = 50) -> np.ndarray:
    """The CrosSCLR/AimCLR feeder's arithmetic (methods.md §1.2, data.md §3.2), one loop per step, on one
    sample as the published arrays hold it: x (3, T, 25, 2), 0 wherever nothing was seen."""
    t_all = x.shape[1]
    # 2. length: frames in which joint 0 of body 0 is non-zero, wherever they lie
    length = sum(1 for t in range(t_all) if abs(x[0, t, 0, 0]) + abs(x[1, t, 0, 0]) + abs(x[2, t, 0, 0]) != 0)
    out = np.zeros((3, frames, V, M))
    for m in range(M):
        # 3. relative: joint 20 of the same frame and body subtracted, zeros and all
        rel = np.zeros((3, t_all, V))
        for t in range(t_all):
            for j in range(V):
                rel[:, t, j] = x[:, t, j, m] - x[:, t, CENTER_JOINT, m]
        # 4. cv2.resize INTER_LINEAR of the first `length` frames: half-pixel centres, clamped at the ends
        for f in range(frames):
            src = (f + 0.5) * length / frames - 0.5
            src = min(max(src, 0.0), length - 1.0)
            i0 = math.floor(src)
            i1 = min(i0 + 1, length - 1)
            w = src - i0
            out[:, f, :, m] = (1 - w) * rel[:, i0] + w * rel[:, i1]
        # 5. parallel_skeleton: theta = arccos(sx / (|(sx, sz)| + 1e-4)) per frame, negated for the whole
        # sequence when the shoulder vectors' z components sum to >= 0; matrix [[c, 0, -s], [0, 1, 0], [s, 0, c]]
        z_sum = sum(out[2, f, RIGHT_SHOULDER, m] - out[2, f, LEFT_SHOULDER, m] for f in range(frames))
        for f in range(frames):
            sx = out[0, f, RIGHT_SHOULDER, m] - out[0, f, LEFT_SHOULDER, m]
            sz = out[2, f, RIGHT_SHOULDER, m] - out[2, f, LEFT_SHOULDER, m]
            theta = math.acos(sx / (math.sqrt(sx * sx + sz * sz) + 1e-4))
            if z_sum >= 0:
                theta = -theta
            out[:, f, :, m] = turn(theta) @ out[:, f, :, m]
    return out


def published_input(dataset) -> np.ndarray:
    """The arrays the published code reads: 0 where a joint is not visible and after the true length."""
    data, mask, present, length = (np.asarray(a) for a in (dataset.data, dataset.mask, dataset.present, dataset.length))
    seen = mask & present[:, :, None] & (np.arange(data.shape[2])[:, None, None] < length[:, None, None, None])
    return np.where(seen[:, None], data, 0).astype(np.float64)


def test_published_matches_the_feeder_arithmetic_on_the_real_samples(ntu_samples, tmp_path):
    """On the six real NTU samples, clean and with 30% of the joints hidden (so the zeros reach the length
    heuristic, the centring and the resize): every value within 1e-3 m of the feeder's arithmetic."""
    from occbench.data.occlusion import occlude
    from occbench.data.prepare import prepare

    clean = prepare(ntu_samples, tmp_path / "raw", "ntu60")
    occluded = occlude(clean, tmp_path / "occluded", "random", seed=0)
    for source in (clean, occluded):
        out = preprocess(source, tmp_path / f"{source.path.name}-published", pipeline="published")
        assert out.meta["stages"][-1]["pipeline"] == "published" and out.length.tolist() == [50] * 6
        for i, x in enumerate(published_input(source)):
            np.testing.assert_allclose(out.data[i], feeder_reference(x), rtol=0, atol=1e-3, err_msg=source.names[i])
    # the zeros mattered: the heuristic dropped frames of the occluded copy, and the pipelines disagree
    assert (published_length(published_input(occluded)) < np.asarray(occluded.length)).all()
    mask_aware = preprocess(occluded, tmp_path / "mask-aware")
    assert np.abs(np.asarray(mask_aware.data) - np.asarray(out.data)).max() > 0.1


def test_published_length_counts_the_frames_where_joint_0_of_body_0_is_seen():
    data, mask, present, _ = batch(1, t=40)
    mask[0, [5, 30], 0, 0] = False  # joint 0 of body 0 hidden in two frames: 38 counted, the last two dropped
    x = np.where(mask[:, None], data, 0)
    assert published_length(x).tolist() == [38]
    length = np.array([40])
    out = published_arrays(data, mask, present, length, frames=38)[0]
    later = data.copy()
    later[0, :, 38:] += 5.0  # frames after the counted length never reach the output
    np.testing.assert_array_equal(published_arrays(later, mask, present, length, frames=38)[0], out)
    earlier = data.copy()
    earlier[0, 1, 37, 3] += 5.0  # frame 37 does (y of a joint other than the shoulders: the rotation is kept)
    assert not np.array_equal(published_arrays(earlier, mask, present, length, frames=38)[0], out)


def test_published_resize_worked_example():
    """y survives the rotation, so y relative to joint 20 shows the resize alone: 4 -> 2 frames averages
    frames (0, 1) and (2, 3); 2 -> 4 frames gives v0, 3/4 v0 + 1/4 v1, 1/4 v0 + 3/4 v1, v1."""

    def resized_y(values, frames):
        t = len(values)
        data = np.zeros((1, 3, t, V, M), np.float32)
        data[0, :, :, :, 0] = 1.0  # every joint at (1, 1, 1): none is 0
        data[0, 1, :, 3, 0] += np.asarray(values, np.float32)
        mask, present = np.ones((1, t, V, M), bool), np.ones((1, t, M), bool)
        return published_arrays(data, mask, present, np.array([t]), frames)[0][0, 1, :, 3, 0]

    np.testing.assert_allclose(resized_y([0.0, 1.0, 2.0, 4.0], 2), [0.5, 3.0], atol=1e-6)
    np.testing.assert_allclose(resized_y([0.0, 4.0], 4), [0.0, 1.0, 3.0, 4.0], atol=1e-6)


def test_published_rotation_takes_one_sign_per_sequence():
    """30 frames with the shoulders at +30 degrees (z > 0), 20 at -30: the z components sum to > 0, so every
    frame is turned by -arccos: the first 30 land on +x, the other 20 at -60 degrees. The mask-aware pipeline
    puts every frame on +x."""
    t, half_width = 50, 0.2
    data = np.zeros((1, 3, t, V, M), np.float32)
    data[0, :, :, :, 0] = np.array([0.0, 0.0, 3.0])[:, None, None]
    for f in range(t):
        a = math.radians(30 if f < 30 else -30)
        shoulder = half_width * np.array([math.cos(a), 0.0, math.sin(a)])
        data[0, :, f, RIGHT_SHOULDER, 0] += shoulder
        data[0, :, f, LEFT_SHOULDER, 0] -= shoulder
    data[0, 1, :, 0, 0] = -0.5  # spine base below the centre: joint 0 is not 0
    mask, present, length = np.ones((1, t, V, M), bool), np.ones((1, t, M), bool), np.array([t])
    out = published_arrays(data, mask, present, length, frames=t)[0]
    vector = out[0, :, :, RIGHT_SHOULDER, 0] - out[0, :, :, LEFT_SHOULDER, 0]  # (3, t)
    width = 2 * half_width
    np.testing.assert_allclose(vector[:, :30], np.array([[width], [0], [0]]).repeat(30, 1), atol=1e-3)
    turned = width * np.array([[math.cos(math.radians(-60))], [0], [math.sin(math.radians(-60))]])
    np.testing.assert_allclose(vector[:, 30:], turned.repeat(20, 1), atol=1e-3)
    aware = preprocess_arrays(data, mask, present, length, frames=t)[0]
    aware_vector = aware[0, :, :, RIGHT_SHOULDER, 0] - aware[0, :, :, LEFT_SHOULDER, 0]
    np.testing.assert_allclose(aware_vector, np.array([[width], [0], [0]]).repeat(t, 1), atol=1e-5)


def test_published_keeps_the_occluded_zeros_and_marks_them_in_the_mask():
    """An occluded joint becomes minus the centre (its y survives the rotation), not 0; the mask still
    says it was occluded. A sample whose joint 0 of body 0 is never seen (the published code fails on
    it) becomes zeros of length 0."""
    data, mask, present, _ = batch(2, t=50)
    mask[0, :, 7, 0] = False
    mask[1, :, 0, 0] = False
    out, out_mask, out_present, out_length = published_arrays(data, mask, present, np.array([50, 50]), frames=50)
    assert not out_mask[0, :, 7, 0].any() and out_mask[0, :, 6, 0].all() and out_present[0].all()
    np.testing.assert_allclose(out[0, 1, :, 7, 0], -data[0, 1, :, CENTER_JOINT, 0], atol=1e-6)
    assert out_length.tolist() == [50, 0] and not out[1].any() and not out_mask[1].any() and not out_present[1].any()


def test_an_unknown_pipeline_is_a_one_line_error(tmp_path):
    data, mask, present, length = batch(1, t=20)
    message = r"^pipeline='cv2': unknown preprocessing pipeline; use one of mask-aware, published$"
    with pytest.raises(OccbenchError, match=message):
        preprocess_arrays(data, mask, present, length, pipeline="cv2")


def small_prepared(folder):
    from occbench.data.prepare import prepare
    from tests.conftest import write_sample

    raw = folder / "skeletons"
    raw.mkdir()
    write_sample(raw, "S001C001P001R001A001", frames=30)
    write_sample(raw, "S001C002P003R001A002", frames=24, bodies=2)
    return prepare(raw, folder / "raw", "ntu60")


def test_the_pipeline_from_the_command_line(tmp_path, capsys):
    from occbench.cli import main

    source = small_prepared(tmp_path)
    command = ["data", "preprocess", "--data", str(source.path), "--out"]
    assert main([*command, str(tmp_path / "p"), "--frames", "12", "--pipeline", "published"]) == 0
    out = SkeletonDataset(tmp_path / "p")
    assert out.meta["stages"][-1]["pipeline"] == "published" and out.frames == 12
    expected = published_arrays(source.data, source.mask, source.present, source.length, 12)[0]
    np.testing.assert_array_equal(np.asarray(out.data), expected)
    assert main([*command, str(tmp_path / "d")]) == 0
    default = SkeletonDataset(tmp_path / "d")
    assert default.meta["stages"][-1]["pipeline"] == "mask-aware"
    assert [pipeline_of(out), pipeline_of(default), pipeline_of(source)] == ["published", "mask-aware", None]
    capsys.readouterr()
    assert main([*command, str(tmp_path / "x"), "--pipeline", "cv2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pipeline='cv2': unknown preprocessing pipeline" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_the_runners_data_stage_preprocesses_with_its_pipeline(tmp_path):
    """A data stage that names the published pipeline writes published frames (a prepared source); one that
    names none writes mask-aware ones."""
    from occbench.plan import Stage
    from occbench.runner import Context, _data

    source = small_prepared(tmp_path)
    context = Context(work=tmp_path / "work", results=tmp_path / "results", progress=False)
    settings = {"dataset": "ntu60", "source": str(source.path), "occlusion": "none", "frames": 12, "synth": {}}
    for extra, pipeline in (({"pipeline": "published"}, "published"), ({}, "mask-aware")):
        frames = SkeletonDataset(_data(Stage("data", "data ntu60 none", settings | extra), context)["frames"])
        assert frames.meta["stages"][-1]["pipeline"] == pipeline
        want = preprocess_arrays(source.data, source.mask, source.present, source.length, 12, pipeline=pipeline)[0]
        np.testing.assert_array_equal(np.asarray(frames.data), want)


@pytest.mark.slow
def test_a_grid_with_the_published_pipeline_preprocesses_and_records_it(tiny_grid):
    """`data.pipeline=published`: the embedded data and the imputed data are preprocessed as published,
    and the records say so."""
    import json

    from occbench.cli import main

    tmp_path, _, args = tiny_grid
    args[args.index("--seeds") + 1] = "0"
    args[args.index("--imputers") + 1] = "none,interp"
    faster = ["pretrain.epochs=1", "protocols.linear.torchlight.epochs=1", "protocols.linear.torchlight.eval_every=1"]
    assert main([*args, "data.pipeline=published", *faster]) == 0
    records = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    evaluated = [r for r in records if r["cell"]["method"] == "tinyclr"]
    assert len(evaluated) == 2 and {r["config"]["data"]["pipeline"] for r in evaluated} == {"published"}
    preprocessed = [json.loads(p.read_text())["stages"][-1] for p in (tmp_path / "home").rglob("meta.json")]
    preprocessed = [stage for stage in preprocessed if stage["stage"] == "preprocess"]
    # the embedded clean and occluded data, and the interp imputation
    assert len(preprocessed) == 3 and {stage["pipeline"] for stage in preprocessed} == {"published"}


def test_the_embedded_chain_keeps_its_folder_names_for_the_default_pipeline(tmp_path):
    from occbench import paths

    parts = paths.embedded_parts(tmp_path, "realistic", 0, 50)
    assert (parts["clean"].name, parts["occluded"].name) == ("frame50", "frame50-realistic-seed0")  # as cached
    published = paths.embedded_parts(tmp_path, "random@0.3", 0, 50, "published")
    names = (published["clean"].name, published["occluded"].name)
    assert names == ("frame50-published", "frame50-published-random_0.3-seed0")
    assert published["raw"] == parts["raw"] and published["skeletons"] == parts["skeletons"]  # shared


# --------------------------------------------------------------------------------------------------
# motion and bone


def test_motion_on_numpy_and_torch():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 6, V, M)).astype(np.float32)
    mask = rng.random((2, 6, V, M)) > 0.3
    x = np.where(mask[:, None], x, 0)
    values, both = motion(x, mask)
    assert np.array_equal(both[:, :-1], mask[:, 1:] & mask[:, :-1]) and not both[:, -1].any()
    expected = np.where(both[:, None], np.concatenate([x[:, :, 1:] - x[:, :, :-1], 0 * x[:, :, :1]], 2), 0)
    np.testing.assert_allclose(values, expected, atol=1e-6)
    t_values, t_both = motion(torch.from_numpy(x), torch.from_numpy(mask))
    assert isinstance(t_values, torch.Tensor)
    np.testing.assert_allclose(t_values.numpy(), values, atol=1e-6)
    assert np.array_equal(t_both.numpy(), both)
    plain = motion(x)
    np.testing.assert_allclose(plain[:, :, :-1], x[:, :, 1:] - x[:, :, :-1])
    np.testing.assert_allclose(motion(torch.from_numpy(x)).numpy(), plain)


def test_bone_on_numpy_and_torch():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 4, V, M)).astype(np.float32)  # no batch axis: (3, T, V, M)
    mask = rng.random((4, V, M)) > 0.3
    values, both = bone(x, mask)
    for j, p in enumerate(PARENT):
        assert np.array_equal(both[:, j], mask[:, j] & mask[:, p])
        want = np.where(both[None, :, j], x[:, :, j] - x[:, :, p], 0)
        np.testing.assert_allclose(values[:, :, j], want, atol=1e-6)
    assert not values[:, :, CENTER_JOINT].any()
    assert np.array_equal(both[:, CENTER_JOINT], mask[:, CENTER_JOINT])
    t_values, t_both = bone(torch.from_numpy(x), torch.from_numpy(mask))
    np.testing.assert_allclose(t_values.numpy(), values, atol=1e-6)
    assert np.array_equal(t_both.numpy(), both)
    np.testing.assert_allclose(bone(torch.from_numpy(x)).numpy(), bone(x), atol=1e-6)


@pytest.mark.parametrize("func", [motion, bone])
def test_streams_keep_the_torch_device_and_dtype(func):
    x = torch.randn(2, 3, 5, V, M, dtype=torch.float64)
    mask = torch.rand(2, 5, V, M) > 0.5
    values, both = func(x, mask)
    assert values.dtype == torch.float64 and both.dtype == torch.bool and values.shape == x.shape
