"""Occlusion: ray casting against boxes, furniture, the three kinds, and the per-joint report."""

from __future__ import annotations

import numpy as np
import pytest

from occbench.data.dataset import DatasetWriter, SkeletonDataset
from occbench.data.ntu import NUM_JOINTS
from occbench.data.occlusion import (
    BOXES_PER_PIECE,
    FURNITURE,
    JOINT_GROUPS,
    KIND,
    KINDS,
    OCCLUDER_FIELDS,
    SEVERITY_KINDS,
    SPEC_KINDS,
    build_furniture,
    check_params,
    estimate_tilt,
    occlude,
    occluded_fraction,
    occlusion_report,
    occlusion_severity,
    parse_occlusion,
    place_furniture,
    realistic_density,
    rotation_x,
    rotation_y,
    segment_hits_boxes,
)
from occbench.data.prepare import prepare
from occbench.data.synth import SynthConfig, synthesize
from occbench.errors import OccbenchError
from tests.conftest import STANDING

HANDS = [6, 7, 21, 22]


def clip(frames: int, x: float, z: float, floor: float = -1.0, tilt: float = 0.0) -> np.ndarray:
    """(T, 25, 3) camera-space clip of a person waving one hand; the camera is pitched by `tilt`."""
    t = np.arange(frames)
    poses = np.repeat(STANDING[None], frames, axis=0) + [x, floor + 0.90, z]
    poses[:, HANDS, 1] += 0.4 * np.sin(t / 4)[:, None]
    return poses @ rotation_x(tilt)  # levelled frame -> camera space (row vectors)


def make_dataset(path, n: int = 24, frames: int = 30, seed: int = 0, tilt: float = 0.0, order=None):
    """n one- or two-person samples; frames after `length` are padding; ~10% joints Kinect-inferred."""
    rng = np.random.default_rng(seed)
    order = list(range(n)) if order is None else list(order)
    samples = []
    for i in range(n):
        length = frames - i % 5
        x, z = rng.uniform(-0.5, 0.5), rng.uniform(2.6, 3.8)
        data = np.zeros((3, frames, NUM_JOINTS, 2), np.float32)
        present = np.zeros((frames, 2), bool)
        data[:, :length, :, 0] = clip(length, x, z, tilt=tilt).transpose(2, 0, 1)
        present[:length, 0] = True
        if i % 4 == 0:  # a second person for the first half of the clip
            half = length // 2
            data[:, :half, :, 1] = clip(half, x + 0.8, z + 0.2, tilt=tilt).transpose(2, 0, 1)
            present[:half, 1] = True
        inferred = (rng.random((frames, NUM_JOINTS, 2)) < 0.1) & present[:, None, :]
        name = f"S001C00{1 + i % 3}P{1 + i % 6:03d}R001A{1 + i % 5:03d}"
        samples.append((name, data, present, inferred, length, i % 5))
    with DatasetWriter(path, n, frames) as writer:
        for k, i in enumerate(order):
            name, data, present, inferred, length, label = samples[i]
            writer["data"][k], writer["present"][k], writer["inferred"][k] = data, present, inferred
            writer["mask"][k] = present[:, None, :] & np.ones((1, NUM_JOINTS, 1), bool)
            writer["length"][k], writer["label"][k] = length, label
        writer.names = [samples[i][0] for i in order]
        splits = {"xsub": {"train": list(range(0, n, 2)), "val": list(range(1, n, 2))}}
        meta = {"benchmark": "synthetic", "num_class": 5, "frames": frames, "stages": [],
                "class_names": ["wave", "sit", "stand", "walk", "jump"]}
        return writer.finish(splits, meta)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> SkeletonDataset:
    return make_dataset(tmp_path_factory.mktemp("source") / "clean", n=60, frames=40)


def box(centre, half, yaw=0.0, tilt=0.0, kind=1) -> np.ndarray:
    return np.array([*centre, *half, yaw, tilt, kind], np.float64)


# --- ray casting --------------------------------------------------------------------------------


def hits(point, *boxes) -> list[bool]:
    return segment_hits_boxes(np.array(point, np.float64), np.stack(boxes)).tolist()


def test_box_between_camera_and_joint_hides_it():
    assert hits([0, 0, 3], box([0, 0, 1.5], [0.3, 0.3, 0.1])) == [True]


def test_box_behind_the_joint_or_beside_the_ray_does_not():
    assert hits([0, 0, 3], box([0, 0, 4], [0.3, 0.3, 0.3]), box([1, 0, 1.5], [0.3, 0.3, 0.3])) == [False, False]


def test_box_below_the_ray_does_not_hide_the_head_but_hides_the_feet():
    cabinet = box([0, -0.6, 2], [0.5, 0.4, 0.3])  # top at y = -0.2
    assert hits([0, 0.6, 4], cabinet) == [False]
    assert hits([0, -1.0, 4], cabinet) == [True]


def test_yaw_turns_the_box_about_the_vertical():
    # Long along its own z: at yaw 0 it lies beside the ray; turned by 90 degrees it crosses it.
    plank = [0.8, 0, 2], [0.05, 0.3, 1.0]
    assert hits([0, 0, 3], box(*plank, yaw=0.0), box(*plank, yaw=np.pi / 2)) == [False, True]


def test_tilt_rotates_the_whole_scene_about_the_camera():
    rng = np.random.default_rng(1)
    level = np.array([box(rng.uniform([-1, -1, 1], [1, 1, 3]), rng.uniform(0.1, 0.5, 3), rng.uniform(-3, 3))
                      for _ in range(50)])
    points = rng.uniform([-1.5, -1.5, 2], [1.5, 1.5, 5], (400, 3))
    tilt = np.deg2rad(20)
    tilted = level.copy()
    tilted[:, :3] = level[:, :3] @ rotation_x(tilt)  # centres into the pitched camera's space
    tilted[:, 7] = tilt
    expected = segment_hits_boxes(points, level)
    assert 0.05 < expected.mean() < 0.95
    np.testing.assert_array_equal(segment_hits_boxes(points @ rotation_x(tilt), tilted), expected)


def test_slab_test_agrees_with_walking_along_the_segment():
    rng = np.random.default_rng(2)
    boxes = np.array([box(rng.uniform([-1, -1, 1], [1, 1, 3]), rng.uniform(0.1, 0.6, 3), rng.uniform(-3, 3),
                          rng.uniform(-0.4, 0.4)) for _ in range(30)])
    points = rng.uniform([-1.5, -1.5, 1.5], [1.5, 1.5, 5], (200, 3))
    steps = np.linspace(0, 1, 4001)[:, None, None] * points  # (S, P, 3) along every segment
    walked = np.zeros((len(points), len(boxes)), bool)
    for k, row in enumerate(boxes):
        to_box = rotation_y(row[6]).T @ rotation_x(row[7])
        own = (steps - row[:3]) @ to_box.T
        walked[:, k] = (np.abs(own) <= row[3:6]).all(axis=-1).any(axis=0)
    assert 0.05 < walked.mean() < 0.95
    np.testing.assert_array_equal(segment_hits_boxes(points, boxes), walked)


def test_touching_an_edge_counts_as_hidden():
    # The segment to (1, 0, 4) passes exactly through the box's edge x = 0.5, z = 2 at t = 0.5.
    cube = box([0, 0, 2.5], [0.5, 0.5, 0.5])
    assert hits([1, 0, 4], cube) == [True]
    assert hits([0.99, 0, 4], cube) == [True]
    assert hits([1.01, 0, 4], cube) == [False]


def test_a_joint_inside_a_box_is_hidden():
    assert hits([0, 0, 3], box([0, 0, 3], [0.2, 0.2, 0.2])) == [True]


def test_empty_rows_never_hit_and_shapes_broadcast():
    empty = np.zeros(len(OCCLUDER_FIELDS))
    assert hits([0, 0, 0.001], empty) == [False]  # even at the camera, where an empty row sits
    per_sample = np.stack([np.stack([box([0, 0, 1.5], [0.3, 0.3, 0.1]), empty]),
                           np.stack([box([3, 0, 1.5], [0.3, 0.3, 0.1]), empty])])
    result = segment_hits_boxes(np.array([[[0, 0, 3.0]], [[0, 0, 3.0]]]), per_sample[:, None])
    assert result.shape == (2, 1, 2)
    assert result[:, 0].tolist() == [[True, False], [False, False]]


# --- furniture ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FURNITURE)
def test_furniture_stands_on_the_floor_within_realistic_sizes(kind):
    rng = np.random.default_rng(3)
    for _ in range(20):
        boxes = build_furniture(kind, rng)
        assert 1 <= len(boxes) <= BOXES_PER_PIECE
        low, high = boxes[:, :3] - boxes[:, 3:], boxes[:, :3] + boxes[:, 3:]
        assert low[:, 1].min() == pytest.approx(0, abs=1e-9)  # on the floor
        assert 0.35 <= high[:, 1].max() <= 1.6  # height
        assert 0.3 <= high[:, 0].max() - low[:, 0].min() <= 2.3  # width
        assert (boxes[:, 3:] > 0).all()
        assert abs(low[:, 0].min() + high[:, 0].max()) < 1e-9  # footprint centred
    assert build_furniture(kind, np.random.default_rng(4), scale=2.0).max() == pytest.approx(
        2 * build_furniture(kind, np.random.default_rng(4)).max())


def test_placing_turns_and_moves_the_piece_and_keeps_it_on_the_floor():
    local = np.array([[0.5, 0.2, 0.0, 0.1, 0.2, 0.1]])  # 0.5 m along the piece's own x
    row = place_furniture(local, np.pi / 2, np.array([1.0, -1.0, 3.0]), "cabinet")
    # Own x after a yaw of 90 degrees points along -z.
    np.testing.assert_allclose(row[0, :3], [1.0, -0.8, 2.5], atol=1e-12)
    assert row[0, KIND] == FURNITURE.index("cabinet") + 1
    tilt = np.deg2rad(15)
    tilted = place_furniture(local, 0.0, np.array([0.0, -1.0, 3.0]), "table", tilt)
    levelled = rotation_x(tilt) @ tilted[0, :3]
    np.testing.assert_allclose(levelled, [0.5, -0.8, 3.0], atol=1e-12)
    assert tilted[0, 7] == pytest.approx(tilt)


@pytest.mark.parametrize("degrees", [0, 12, 20, -8])
def test_camera_tilt_is_recovered_from_the_spine(degrees):
    points = clip(30, 0.2, 3.2, tilt=np.deg2rad(degrees))[:, :, None, :]  # (T, V, 1, 3)
    mask = np.ones(points.shape[:3], bool)
    assert np.rad2deg(estimate_tilt(points, mask)) == pytest.approx(degrees, abs=0.5)


# --- the kinds ----------------------------------------------------------------------------------


def check_invariants(src: SkeletonDataset, out: SkeletonDataset) -> np.ndarray:
    """The rules every kind follows; returns the newly occluded joints (N, T, V, M)."""
    np.testing.assert_array_equal(out.present, src.present)
    np.testing.assert_array_equal(out.inferred, src.inferred)
    np.testing.assert_array_equal(out.length, src.length)
    assert out.names == src.names and out.splits.keys() == src.splits.keys()
    mask, before = np.asarray(out.mask), np.asarray(src.mask)
    assert not (mask & ~before).any(), "a hidden joint became visible"
    hidden = ~mask
    assert (np.moveaxis(np.asarray(out.data), 1, -1)[hidden] == 0).all(), "occluded joints keep coordinates"
    visible = np.broadcast_to(mask[:, None], out.data.shape)
    np.testing.assert_array_equal(np.asarray(out.data)[visible], np.asarray(src.data)[visible])
    occluded = before & ~mask
    assert not (occluded & ~np.asarray(src.present)[:, :, None, :]).any(), "an absent body was touched"
    return occluded


def joint_fraction(out: SkeletonDataset, joints) -> float:
    present = np.asarray(out.present)[:, :, None, :]
    hidden = present & ~np.asarray(out.mask)
    return hidden[:, :, list(joints)].sum() / (present.sum() * len(joints))


def test_realistic_occlusion_is_plausible(source, tmp_path):
    out = occlude(source, tmp_path / "realistic", "realistic", seed=0)
    occluded = check_invariants(source, out)
    overall = occluded.sum() / (np.asarray(source.present).sum() * NUM_JOINTS)
    legs, head = joint_fraction(out, JOINT_GROUPS["legs"]), joint_fraction(out, JOINT_GROUPS["head"])
    assert 0.08 < overall < 0.40
    assert legs > 2 * head and legs > overall
    per_sample = occluded.sum(axis=(1, 2, 3))
    assert (per_sample > 0).mean() > 0.5  # most samples lose something
    # The furniture stands still while the hand waves: the hand is hidden in some frames only.
    hand = occluded[:, :, HANDS[0], 0]
    assert ((hand.sum(axis=1) > 0) & (hand.sum(axis=1) < source.length // 2)).any()
    boxes = out.extra["occluders"]
    assert boxes.shape == (len(out), BOXES_PER_PIECE * 2, len(OCCLUDER_FIELDS))
    assert ((boxes[..., KIND] >= 0) & (boxes[..., KIND] <= len(FURNITURE))).all()
    stage = out.meta["stages"][-1]
    assert stage["stage"] == "occlude" and stage["kind"] == "realistic" and stage["seed"] == 0
    assert stage["source"] == str(source.path.resolve()) and stage["params"]["pieces"] == [1, 2]


def test_realistic_occlusion_matches_the_stored_boxes(source, tmp_path):
    out = occlude(source, tmp_path / "realistic", "realistic", seed=5)
    occluded = np.asarray(source.mask) & ~np.asarray(out.mask)
    points = np.moveaxis(np.asarray(source.data), 1, -1)  # (N, T, V, M, 3)
    boxes = np.asarray(out.extra["occluders"])
    for i in range(0, len(out), 7):
        expected = segment_hits_boxes(points[i], boxes[i]).any(axis=-1) & np.asarray(source.mask[i])
        np.testing.assert_array_equal(occluded[i], expected)


def test_furniture_stands_between_camera_and_person_on_the_floor(source, tmp_path):
    out = occlude(source, tmp_path / "realistic", "realistic", seed=1, pieces=(1, 1))
    for i in range(len(out)):
        rows = np.asarray(out.extra["occluders"][i])
        rows = rows[rows[:, KIND] != 0]
        assert len(rows)
        person = np.asarray(source.data[i, :, :, 0, 0]).T  # spine base over time, (T, 3)
        person = person[np.asarray(source.present[i, :, 0])]
        reach = np.hypot(person[:, 0], person[:, 2]).min()
        assert (np.hypot(rows[:, 0], rows[:, 2]) < reach).all()
        feet = np.asarray(source.data[i, 1, :, [15, 19], 0]).min()
        assert (rows[:, 1] - rows[:, 4]).min() == pytest.approx(feet, abs=0.02)  # standing on the floor


def test_a_tilted_camera_keeps_furniture_on_the_tilted_floor(tmp_path):
    tilt = np.deg2rad(18)
    src = make_dataset(tmp_path / "tilted", n=30, frames=30, tilt=tilt)
    out = occlude(src, tmp_path / "occluded", "realistic", seed=0)
    rows = np.asarray(out.extra["occluders"]).reshape(-1, len(OCCLUDER_FIELDS))
    rows = rows[rows[:, KIND] != 0]
    np.testing.assert_allclose(rows[:, 7], tilt, atol=np.deg2rad(0.5))
    legs, head = joint_fraction(out, JOINT_GROUPS["legs"]), joint_fraction(out, JOINT_GROUPS["head"])
    assert legs > 2 * head


def test_same_seed_same_result_and_independent_of_sample_order(source, tmp_path):
    first = occlude(source, tmp_path / "a", "realistic", seed=7)
    again = occlude(source, tmp_path / "b", "realistic", seed=7)
    other = occlude(source, tmp_path / "c", "realistic", seed=8)
    np.testing.assert_array_equal(first.mask, again.mask)
    np.testing.assert_array_equal(first.extra["occluders"], again.extra["occluders"])
    assert not np.array_equal(first.extra["occluders"], other.extra["occluders"])
    order = np.random.default_rng(0).permutation(len(source))
    shuffled_src = make_dataset(tmp_path / "shuffled", n=60, frames=40, order=order)
    for kind in ("realistic", "random"):
        straight = occlude(source, tmp_path / f"{kind}1", kind, seed=7)
        shuffled = occlude(shuffled_src, tmp_path / f"{kind}2", kind, seed=7)
        np.testing.assert_array_equal(np.asarray(shuffled.mask), np.asarray(straight.mask)[order])


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.75, 1.0])
def test_random_occlusion_honours_the_fraction(source, tmp_path, fraction):
    out = occlude(source, tmp_path / "random", "random", seed=0, fraction=fraction)
    occluded = check_invariants(source, out)
    joint_frames = np.asarray(source.present).sum(axis=(1, 2)) * NUM_JOINTS
    per_sample = occluded.sum(axis=(1, 2, 3)) / joint_frames
    assert np.abs(per_sample - fraction).max() <= 1 / joint_frames.min()
    if 0 < fraction < 1:  # a per-frame choice: the hidden joints change from frame to frame
        first = occluded[0, :, :, 0]
        assert len({row.tobytes() for row in first[: source.length[0]]}) > 1
        spread = occluded.sum(axis=(0, 1, 3)) / occluded.sum() * NUM_JOINTS
        assert spread.min() > 0.6 and spread.max() < 1.4  # every joint equally likely


def test_inferred_occlusion_hides_the_kinect_inferred_joints(source, tmp_path):
    out = occlude(source, tmp_path / "inferred", "inferred")
    occluded = check_invariants(source, out)
    expected = np.asarray(source.inferred) & np.asarray(source.present)[:, :, None, :]
    np.testing.assert_array_equal(occluded, expected)
    assert occluded.any()


def test_only_present_bodies_are_touched_and_hidden_joints_stay_hidden(tmp_path):
    src = make_dataset(tmp_path / "src", n=8, frames=20)
    mask, data, inferred = np.array(src.mask), np.array(src.data), np.array(src.inferred)
    # A body slot that is not present but carries visible-looking values must be left alone.
    data[1, :, 5:8, :, 1] = 1.5
    mask[1, 5:8, :, 1] = True
    inferred[1, 5:8, :, 1] = True
    # Joints hidden before occlusion stay hidden.
    mask[2, :, 3, 0] = False
    data[2, :, :, 3, 0] = 0
    edited = tmp_path / "edited"
    with DatasetWriter(edited, len(src), src.frames) as writer:
        for name, values in (("data", data), ("mask", mask), ("inferred", inferred)):
            writer[name][:] = values
        for name in ("present", "length", "label"):
            writer[name][:] = getattr(src, name)
        writer.names = src.names
        edited = writer.finish({s: {p: i.tolist() for p, i in parts.items()} for s, parts in src.splits.items()},
                               src.meta)
    for kind, params in (("random", {"fraction": 1.0}), ("inferred", {}), ("realistic", {})):
        out = occlude(edited, tmp_path / kind, kind, **params)
        np.testing.assert_array_equal(out.mask[1, 5:8, :, 1], True)
        np.testing.assert_array_equal(out.data[1, :, 5:8, :, 1], 1.5)
        assert not out.mask[2, :, 3, 0].any()
        check_invariants(edited, out)


@pytest.mark.parametrize(
    ("kind", "params", "words"),
    [
        ("furniture", {}, "unknown occlusion kind"),
        ("random", {"fraction": 1.5}, "fraction"),
        ("random", {"fraction": -0.1}, "fraction"),
        ("random", {"fraction": "lots"}, "not a number"),
        ("random", {"pieces": (1, 2)}, "unknown parameter 'pieces'"),
        ("inferred", {"fraction": 0.3}, "unknown parameter 'fraction'"),
        ("realistic", {"furniture": ("table", "bed")}, "unknown furniture 'bed'"),
        ("realistic", {"distance": (0.8, 0.2)}, "reversed"),
        ("realistic", {"pieces": (1, 9)}, "pieces"),
        ("realistic", {"pieces": (0.5, 1)}, "whole numbers"),
        ("realistic", {"shift": 0.4}, "two numbers"),
        ("realistic", {"tilt": 80}, "tilt"),
        ("random", {"seed": -1}, "seed"),
        ("random", {"seed": 1.5}, "seed"),
    ],
)
def test_bad_parameters_raise_one_line_errors(source, tmp_path, kind, params, words):
    with pytest.raises(OccbenchError, match=words) as error:
        occlude(source, tmp_path / "out", kind, **params)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_parameters_are_normalised_and_defaults_filled():
    params = check_params("realistic", {"pieces": [2, 3], "furniture": "sofa", "shift": "-0.5,0.5"})
    assert params["pieces"] == (2, 3) and params["furniture"] == ("sofa",) and params["shift"] == (-0.5, 0.5)
    assert params["tilt"] == "auto" and params["distance"] == check_params("realistic", {})["distance"]
    assert check_params("random", {})["fraction"] == 0.3
    assert set(KINDS) == {"realistic", "random", "inferred"}


def test_an_existing_output_is_kept_unless_overwrite(source, tmp_path):
    occlude(source, tmp_path / "out", "random", seed=1)
    with pytest.raises(OccbenchError, match="overwrite"):
        occlude(source, tmp_path / "out", "random", seed=2)
    assert occlude(source, tmp_path / "out", "random", seed=2, overwrite=True).meta["stages"][-1]["seed"] == 2


# --- report -------------------------------------------------------------------------------------


def hand_counted(tmp_path) -> SkeletonDataset:
    """Two samples whose hidden joint-frames are counted by hand in the tests below."""
    frames = 3
    present = np.zeros((2, frames, 2), bool)
    present[0, :2, 0] = True  # sample 0: body 1 in frames 0, 1
    present[1, :, 0] = True  # sample 1: body 1 in all 3 frames, body 2 in frame 2
    present[1, 2, 1] = True
    mask = np.broadcast_to(present[:, :, None, :], (2, frames, NUM_JOINTS, 2)).copy()
    mask[0, 0, 3, 0] = False  # head, once
    mask[0, :2, 15, 0] = False  # left foot, twice in sample 0
    mask[1, 2, 15, 1] = False  # left foot of the second body
    with DatasetWriter(tmp_path / "tiny", 2, frames) as writer:
        writer["mask"][:], writer["present"][:] = mask, present
        writer["data"][:] = np.where(mask[:, None], 1.0, 0.0)
        writer["length"][:] = frames
        writer.names = ["S001C001P001R001A001", "S001C001P002R001A001"]
        return writer.finish({"xsub": {"train": [0], "val": [1]}}, {"num_class": 1, "frames": frames})


def test_report_matches_a_hand_count(tmp_path):
    report = occlusion_report(hand_counted(tmp_path))
    assert len(report) == NUM_JOINTS + 1 and report.loc[3, "name"] == "head"
    # 6 present body-frames: 2 in sample 0, 4 in sample 1.
    assert report.loc[3, "fraction"] == pytest.approx(1 / 6)
    assert report.loc[15, "fraction"] == pytest.approx(3 / 6)
    assert report.loc[0, "fraction"] == 0
    assert report.loc["all", "fraction"] == pytest.approx(4 / (6 * NUM_JOINTS))
    assert report.loc[15, "occluded"] == 3 and report.loc["all", "present"] == 6 * NUM_JOINTS
    assert report.loc[15, "xsub/train"] == pytest.approx(2 / 2)
    assert report.loc[15, "xsub/val"] == pytest.approx(1 / 4)
    assert report.loc[15, "group"] == "legs"


def test_report_of_an_occluded_dataset_agrees_with_the_masks(source, tmp_path):
    out = occlude(source, tmp_path / "random", "random", fraction=0.2)
    report = occlusion_report(out)
    assert report.loc["all", "fraction"] == pytest.approx(0.2, abs=0.002)
    assert report.loc[list(range(NUM_JOINTS)), "fraction"].between(0.1, 0.3).all()


def test_occluded_fraction_matches_a_hand_count(tmp_path):
    tiny = hand_counted(tmp_path)
    # Sample 0: 2 present body-frames, 3 hidden joints; sample 1: 4 body-frames, 1 hidden joint.
    assert occluded_fraction(tiny) == pytest.approx(4 / (6 * NUM_JOINTS))
    assert occluded_fraction(tiny, "xsub", "train") == pytest.approx(3 / (2 * NUM_JOINTS))
    assert occluded_fraction(tiny, "xsub", "val") == pytest.approx(1 / (4 * NUM_JOINTS))
    assert occluded_fraction(tiny, "xsub") == pytest.approx(4 / (6 * NUM_JOINTS))
    assert occluded_fraction(tiny) == pytest.approx(occlusion_report(tiny).loc["all", "fraction"])


@pytest.mark.parametrize(
    ("where", "words"),
    [({"split": "xview"}, "no split 'xview'; use one of xsub"),
     ({"split": "xsub", "part": "test"}, "use one of train, val"), ({"part": "val"}, "name the split too")],
)
def test_occluded_fraction_of_an_unknown_split_or_part_is_an_error(tmp_path, where, words):
    with pytest.raises(OccbenchError, match=words) as error:
        occluded_fraction(hand_counted(tmp_path), **where)
    assert "\n" not in str(error.value)


# --- severity specs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("none", ("none", {})), ("realistic", ("realistic", {})), ("random", ("random", {})),
     ("inferred", ("inferred", {})), ("random@0.3", ("random", {"fraction": 0.3})),
     ("random@0", ("random", {"fraction": 0.0})), ("random@1", ("random", {"fraction": 1.0})),
     ("realistic@0.2", ("realistic", realistic_density(0.2)))],
)
def test_specs_parse_into_kind_and_parameters(spec, expected):
    assert parse_occlusion(spec) == expected
    assert occlusion_severity(spec) == (None if "@" not in spec else float(spec.split("@")[1]))


def test_a_bare_kind_keeps_todays_defaults():
    for kind in SPEC_KINDS[1:]:
        name, params = parse_occlusion(kind)
        assert check_params(name, params) == check_params(kind, {})
    assert check_params(*parse_occlusion("random"))["fraction"] == 0.3
    assert set(SEVERITY_KINDS) < set(SPEC_KINDS) and "inferred" not in SEVERITY_KINDS


@pytest.mark.parametrize(
    ("spec", "words"),
    [("furniture", "unknown kind 'furniture'; write one of none, realistic, random, inferred"),
     ("furniture@0.3", "unknown kind 'furniture'"), ("Random@0.3", "unknown kind 'Random'"),
     ("", "unknown kind ''"), ("inferred@0.3", "inferred takes no severity; write inferred alone"),
     ("none@0.1", "none takes no severity"), ("random@", r"nothing after '@'; write a severity in \[0, 1\]"),
     ("realistic@lots", "severity 'lots' is not a number"), ("random@nan", "'nan' is not a number"),
     ("random@0.3@0.4", "'0.3@0.4' is not a number"), ("random@1.5", r"severity 1.5 is outside \[0, 1\]"),
     ("realistic@-0.1", "outside"), (0.3, "not a name")],
)
def test_bad_specs_are_one_line_errors_that_name_the_spec(spec, words):
    with pytest.raises(OccbenchError, match=words) as error:
        parse_occlusion(spec)
    assert repr(spec) in str(error.value) and "\n" not in str(error.value)


def test_random_at_a_severity_hides_that_fraction_of_each_sample(source, tmp_path):
    out = occlude(source, tmp_path / "random", "random@0.45", seed=3)
    occluded = check_invariants(source, out)
    joint_frames = np.asarray(source.present).sum(axis=(1, 2)) * NUM_JOINTS
    np.testing.assert_array_equal(occluded.sum(axis=(1, 2, 3)), np.round(0.45 * joint_frames))
    stage = out.meta["stages"][-1]
    assert (stage["kind"], stage["spec"], stage["params"]) == ("random", "random@0.45", {"fraction": 0.45})
    same = occlude(source, tmp_path / "spelt", "random", seed=3, fraction=0.45)
    np.testing.assert_array_equal(same.mask, out.mask)


def test_a_spec_and_its_parameter_together_or_none_are_errors(source, tmp_path):
    with pytest.raises(OccbenchError, match="'random@0.3' already sets fraction"):
        occlude(source, tmp_path / "a", "random@0.3", fraction=0.5)
    with pytest.raises(OccbenchError, match="'none' leaves the data as it is"):
        occlude(source, tmp_path / "b", "none")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_every_density_is_valid_and_each_parameter_moves_one_way():
    levels = [realistic_density(s) for s in np.linspace(0, 1, 101)]
    checked = [check_params("realistic", params) for params in levels]
    for key, step in (("pieces", 1), ("distance", 0), ("distance", 1), ("scale", None)):
        values = [p[key] if step is None else p[key][step] for p in checked]
        assert values == sorted(values) and values[0] < values[-1], key
    spread = [p["shift"][1] - p["shift"][0] for p in checked]
    assert spread == sorted(spread, reverse=True)  # nearer the ray as the density grows
    assert checked[0]["pieces"] == (1, 1) and checked[-1]["pieces"][1] > 2


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> SkeletonDataset:
    """A small embedded-like dataset: the synthetic generator through the real prepare."""
    root = tmp_path_factory.mktemp("synthetic")
    synthesize(root / "skeletons", SynthConfig(classes=4, subjects=3, setups=2, replications=1, min_frames=24,
                                               max_frames=36))
    return prepare(root / "skeletons", root / "raw", workers=1)


def test_realistic_density_spans_about_5_to_50_percent_and_grows(synthetic, tmp_path):
    def hidden(spec: str) -> float:
        return occluded_fraction(occlude(synthetic, tmp_path / spec, spec, seed=0))

    levels = [hidden(f"realistic@{s}") for s in (0, 0.25, 0.5, 0.75, 1)]
    assert levels == sorted(levels) and levels[0] < levels[-1]
    assert 0.01 < hidden("realistic@0.1") < 0.1
    assert 0.35 < levels[-1] < 0.65
    assert levels[1] < hidden("realistic") < levels[2]  # the default lies between densities 0.25 and 0.5
