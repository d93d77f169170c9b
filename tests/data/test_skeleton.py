import numpy as np
import pytest

from occbench.data.skeleton import read_skeleton, write_skeleton
from occbench.errors import SkeletonFormatError
from tests.conftest import standing_pose, write_sample


def reference_parse(path):
    """A deliberately naive line walker, independent of the reader under test."""
    lines = [line for line in path.read_text().splitlines()]
    i, frames, bodies, joints = 1, int(lines[0]), [], []
    for _ in range(frames):
        n = int(lines[i])
        i += 1
        bodies.append(n)
        for _ in range(n):
            i += 2
            joints.append([[float(v) for v in lines[i + k].split()] for k in range(25)])
            i += 25
    return frames, bodies, np.array(joints)


def test_real_files_match_their_text(ntu_samples):
    files = sorted(ntu_samples.glob("*.skeleton"))
    assert len(files) == 6
    for path in files:
        seq = read_skeleton(path)
        frames, bodies, joints = reference_parse(path)
        assert seq.frames == frames == int(path.read_text().split()[0])
        assert seq.body_count.tolist() == bodies
        present = seq.tracking[:, :, 0] >= 0
        np.testing.assert_allclose(seq.xyz[present], joints[:, :, :3], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(seq.tracking[present], joints[:, :, 11])
        assert seq.name == path.stem


def test_real_file_known_values(ntu_samples):
    seq = read_skeleton(ntu_samples / "S001C001P001R001A001.skeleton")
    assert seq.frames == 103 and seq.xyz.shape == (103, 1, 25, 3)
    np.testing.assert_allclose(seq.xyz[0, 0, 0], [0.2181153, 0.1725972, 3.785547], atol=1e-6)
    assert seq.body_ids[0, 0] == 72057594037931101
    assert (seq.tracking == 1).sum() == 367  # inferred joint records, as counted in the samples' README
    two = read_skeleton(ntu_samples / "S001C003P008R002A058.skeleton")
    assert two.xyz.shape[1] == 2 and (two.body_count == 2).all()


def test_write_then_read_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    xyz = standing_pose()[None, None].repeat(7, 0).repeat(2, 1) + rng.normal(0, 0.01, (7, 2, 25, 3))
    present = np.ones((7, 2), bool)
    present[3:, 1] = False  # the second body leaves
    tracking = rng.integers(1, 3, (7, 2, 25))
    write_skeleton(tmp_path / "S001C001P001R001A050.skeleton", xyz, present, tracking)
    seq = read_skeleton(tmp_path / "S001C001P001R001A050.skeleton")
    assert seq.body_count.tolist() == [2, 2, 2, 1, 1, 1, 1]
    np.testing.assert_allclose(seq.xyz[present], xyz[present], atol=1e-6)
    np.testing.assert_array_equal(seq.tracking[present], tracking[present])
    assert (seq.tracking[~present] == -1).all() and (seq.xyz[~present] == 0).all()
    assert b"\r\n" in (tmp_path / "S001C001P001R001A050.skeleton").read_bytes()


def test_lf_line_ends_are_accepted(tmp_path):
    path = write_sample(tmp_path, "S001C001P001R001A001", frames=3)
    lf = tmp_path / "lf" / path.name
    lf.parent.mkdir()
    lf.write_bytes(path.read_bytes().replace(b"\r\n", b"\n"))
    np.testing.assert_array_equal(read_skeleton(lf).xyz, read_skeleton(path).xyz)


def _corrupt(tmp_path, edit):
    path = write_sample(tmp_path, "S001C001P001R001A001", frames=3)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


@pytest.mark.parametrize(
    "edit, line, words",
    [
        (lambda lines: lines[:40], 41, "truncated"),
        (lambda lines: lines[:2] + [" ".join(lines[2].split()[:9])] + lines[3:], 3, "10 fields"),
        (lambda lines: lines[:3] + ["24"] + lines[4:], 4, "25 joints"),
        (lambda lines: lines[:10] + [lines[10].replace(lines[10].split()[1], "abc", 1)] + lines[11:], 11,
         "non-numeric"),
        (lambda lines: lines[:10] + [" ".join(lines[10].split()[:11])] + lines[11:], 11, "12 fields"),
        (lambda lines: ["x3"] + lines[1:], 1, "frame count"),
        (lambda lines: lines[:1] + ["two"] + lines[2:], 2, "body count"),
        (lambda lines: lines + ["1 2 3"], 1 + 3 * 28 + 1, "after the last"),  # 3 frames of 1 body
        (lambda lines: lines[:10] + [lines[10].replace(lines[10].split()[0], "nan", 1)] + lines[11:], 11,
         "non-finite"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, edit, line, words):
    path = _corrupt(tmp_path, edit)
    with pytest.raises(SkeletonFormatError) as err:
        read_skeleton(path)
    message = str(err.value)
    assert path.name in message and f"line {line}:" in message and words in message
    assert "\n" not in message


def test_empty_and_binary_files(tmp_path):
    (tmp_path / "S001C001P001R001A001.skeleton").write_text("")
    with pytest.raises(SkeletonFormatError, match="empty file"):
        read_skeleton(tmp_path / "S001C001P001R001A001.skeleton")
    (tmp_path / "S001C001P001R001A002.skeleton").write_bytes(b"\xff\xfe3\n")
    with pytest.raises(SkeletonFormatError, match="not a text file"):
        read_skeleton(tmp_path / "S001C001P001R001A002.skeleton")


def _with_joint_field(path, field: int, value: str):
    """The file with one field of its first joint line replaced."""
    lines = path.read_text().splitlines()
    fields = lines[4].split()
    fields[field] = value
    lines[4] = " ".join(fields)
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


@pytest.mark.parametrize("field, value, words", [
    (0, "1e39", "line 5: joint coordinate beyond float32's range"),
    (2, "-3.5e38", "line 5: joint coordinate beyond float32's range"),
    (11, "-1", "line 5: trackingState -1: expected 0, 1 or 2"),
    (11, "5", "trackingState 5"),
    (11, "257", "trackingState 257"),
    (11, "1.5", "trackingState 1.5"),
    (11, "nan", "trackingState nan"),
])
def test_values_out_of_their_range_are_format_errors(tmp_path, field, value, words):
    path = _with_joint_field(write_sample(tmp_path, "S001C001P001R001A001"), field, value)
    with pytest.raises(SkeletonFormatError, match=words.replace("(", r"\(").replace(")", r"\)")):
        read_skeleton(path)


def test_what_is_not_a_regular_file_is_refused_without_blocking(tmp_path):
    import os

    (tmp_path / "folder.skeleton").mkdir()
    os.mkfifo(tmp_path / "pipe.skeleton")  # reading it would wait forever for a writer
    (tmp_path / "dangling.skeleton").symlink_to(tmp_path / "gone")
    for name, words in [("folder", "a folder"), ("pipe", "not a regular file"), ("dangling", "dangling link")]:
        with pytest.raises(SkeletonFormatError, match=words):
            read_skeleton(tmp_path / f"{name}.skeleton")
