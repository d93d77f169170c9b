"""Drawing samples: dataset samples (with occluders and true positions) and raw .skeleton files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from occbench.data import show
from occbench.data.dataset import DatasetWriter
from occbench.data.ntu import NUM_JOINTS
from occbench.data.occlusion import occlude
from occbench.data.skeleton import INFERRED, TRACKED, read_skeleton, write_skeleton
from occbench.errors import OccbenchError
from tests.conftest import NTU_SAMPLES, STANDING

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"



def person(frames: int, x: float, z: float) -> np.ndarray:
    """(T, 25, 3): a person waving a hand, feet on y = -1."""
    poses = np.repeat(STANDING[None], frames, axis=0) + [x, -0.1, z]
    poses[:, [6, 7, 21, 22], 1] += 0.4 * np.sin(np.arange(frames) / 4)[:, None]
    return poses


def make_dataset(path: Path, n: int = 6, frames: int = 24):
    with DatasetWriter(path, n, frames) as writer:
        for i in range(n):
            writer["data"][i, :, :, :, 0] = person(frames, 0.1 * i - 0.2, 3.0 + 0.1 * i).transpose(2, 0, 1)
            writer["present"][i, :, 0] = True
            writer["mask"][i, :, :, 0] = True
            writer["length"][i], writer["label"][i] = frames, i % 2
        writer.names = [f"S001C001P{i + 1:03d}R001A{1 + i % 2:03d}" for i in range(n)]
        meta = {"benchmark": "synthetic", "num_class": 2, "frames": frames, "class_names": ["wave", "stand"]}
        return writer.finish({"xsub": {"train": [0, 1, 2], "val": [3, 4, 5]}}, meta)


@pytest.fixture
def occluded(tmp_path):
    source = make_dataset(tmp_path / "clean")
    out = occlude(source, tmp_path / "occluded", "realistic", seed=0, pieces=(2, 2), shift=(-0.2, 0.2))
    assert (~np.asarray(out.mask[:, :, :, 0])).any(), "the test needs some occluded joints"
    return source, out


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_a_dataset_sample_by_name_and_by_index(occluded, tmp_path):
    _, out = occluded
    by_name = show.show_sample(out.names[2], tmp_path / "a.png", data=out.path)
    assert by_name == tmp_path / "a.png"
    assert_png(by_name)
    by_index = show.show_sample("4", tmp_path / "pictures", data=out.path, frames=2)
    assert by_index == tmp_path / "pictures" / f"{out.names[4]}.png"
    assert_png(by_index)
    assert show.show_sample(5, tmp_path / "pictures", data=out.path) == tmp_path / "pictures" / f"{out.names[5]}.png"


def test_occluded_joints_are_drawn_at_their_true_positions_while_the_source_exists(occluded):
    source, out = occluded
    i = int(np.argmax((~np.asarray(out.mask[:, :, :, 0])).sum(axis=(1, 2))))
    view = show._from_dataset(out, i)
    assert view.hidden.any() and view.boxes is not None and view.class_name in ("wave", "stand")
    assert view.known[view.hidden].all()
    truth = np.asarray(source.data[i]).transpose(1, 3, 2, 0)  # (T, M, V, 3)
    np.testing.assert_array_equal(view.xyz[view.hidden], truth[view.hidden])
    assert not (view.xyz[view.hidden] == 0).all(axis=-1).any()
    shutil.rmtree(source.path)
    gone = show._from_dataset(out, i)
    assert not gone.known[gone.hidden].any()
    assert "not drawn" in gone.note
    assert_png(show.show_sample(str(i), out.path.parent / "gone.png", data=out.path))


def test_a_dataset_without_occlusion_draws_without_furniture(tmp_path):
    clean = make_dataset(tmp_path / "clean")
    view = show._from_dataset(clean, 0)
    assert view.boxes is None and not view.hidden.any()
    assert_png(show.show_sample("0", tmp_path / "clean.png", data=clean.path, frames=1))


def test_a_written_skeleton_file_marks_inferred_joints(tmp_path):
    frames = 20
    xyz = np.stack([person(frames, -0.3, 3.0), person(frames, 0.5, 3.4)], axis=1)  # (T, 2, 25, 3)
    present = np.ones((frames, 2), bool)
    present[12:, 1] = False
    tracking = np.full((frames, 2, NUM_JOINTS), TRACKED)
    tracking[:, 0, [14, 15]] = INFERRED
    file = tmp_path / "S001C002P003R002A013.skeleton"
    write_skeleton(file, xyz, present, tracking)
    view = show._from_file(file)
    seq = read_skeleton(file)
    np.testing.assert_array_equal(view.hidden, seq.tracking == INFERRED)
    assert view.hidden.sum() == 2 * frames and view.class_name == "tear up paper"
    assert_png(show.show_sample(str(file), tmp_path / "file.png"))


def test_a_real_ntu_file(tmp_path):
    files = sorted(NTU_SAMPLES.glob("*.skeleton"))
    if not files:
        pytest.skip(f"real NTU samples not found at {NTU_SAMPLES}")
    two_people = next((f for f in files if "A058" in f.name), files[0])
    out = show.show_sample(two_people, tmp_path / "ntu.png", frames=3)
    assert_png(out)
    view = show._from_file(two_people)
    assert view.present.any(axis=0).sum() == (2 if "A058" in two_people.name else 1)
    assert 0 < view.hidden.mean() < 0.5


def test_errors_are_one_line(occluded, tmp_path):
    _, out = occluded
    cases = [
        (dict(sample=str(tmp_path / "missing.skeleton"), out=tmp_path / "x.png"), "no such"),
        (dict(sample="S001C001P001R001A001", out=tmp_path / "x.png"), "--data"),
        (dict(sample="S009C001P001R001A001", out=tmp_path / "x.png", data=out.path), "no sample named"),
        (dict(sample="99", out=tmp_path / "x.png", data=out.path), "out of range"),
        (dict(sample="0", out=tmp_path / "x.png", data=tmp_path / "nowhere"), "no such directory"),
        (dict(sample="0", out=tmp_path / "x.png", data=out.path, frames=0), "frames"),
    ]
    for kwargs, words in cases:
        with pytest.raises(OccbenchError, match=words) as error:
            show.show_sample(**kwargs)
        assert "\n" not in str(error.value)
    assert not (tmp_path / "x.png").exists()
