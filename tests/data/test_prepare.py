import shutil
import tracemalloc

import numpy as np
import pytest

from occbench.data.dataset import SkeletonDataset
from occbench.data.prepare import prepare
from occbench.data.skeleton import read_skeleton
from occbench.errors import OccbenchError, SkeletonFormatError
from tests.conftest import write_sample


def test_prepare_real_files(ntu_samples, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in ntu_samples.glob("*.skeleton"):
        shutil.copy(path, raw)
    data = prepare(raw, tmp_path / "out", "ntu60")
    assert len(data) == 6 and data.frames == 124 and data.num_class == 60
    i = data.sample("S001C003P008R002A058")
    seq = read_skeleton(raw / "S001C003P008R002A058.skeleton")
    assert data.length[i] == 70 and data.label[i] == 57
    np.testing.assert_array_equal(data.data[i][:, :70], seq.xyz.transpose(3, 0, 2, 1))
    assert data.present[i, :70].all() and not data.present[i, 70:].any() and data.mask[i, :70].all()
    assert data.inferred[i].sum() == (seq.tracking == 1).sum() == 403
    one = data.sample("S001C001P001R001A001")
    assert data.present[one, :103, 0].all() and not data.present[one, :, 1].any()
    names = lambda split, part: {data.names[k] for k in data.splits[split][part]}  # noqa: E731
    assert names("xsub", "val") == {"S002C001P003R001A003", "S004C002P003R001A017"}  # subject 3
    assert names("xview", "train") == {"S001C003P008R002A058", "S004C002P003R001A017"}  # cameras 2, 3


def test_prepare_excludes_missing_and_foreign_samples(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_sample(raw, "S001C001P001R001A001")
    write_sample(raw, "S001C002P005R002A008")  # on the official missing-skeleton list
    write_sample(raw, "S018C001P045R001A070")  # an NTU-120 sample
    sub = raw / "nested"
    sub.mkdir()
    write_sample(sub, "S002C002P002R001A055", bodies=2)
    data = prepare(raw, tmp_path / "out60", "ntu60")
    assert data.names == ["S001C001P001R001A001", "S002C002P002R001A055"]
    assert data.present[1].all()
    assert len(prepare(raw, tmp_path / "out120", "ntu120")) == 3


def test_occluded_ntu_zero_joints_become_the_mask(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    path = write_sample(raw, "S001C001P001R001A001", frames=5)
    lines = path.read_text().splitlines()
    lines[4] = "0 0 0 " + " ".join(lines[4].split()[3:])  # frame 0, body 0, joint 0 occluded
    path.write_text("\n".join(lines) + "\n")
    data = prepare(raw, tmp_path / "out", "ntu60")
    assert not data.mask[0, 0, 0, 0] and data.mask[0, 0, 1:, 0].all() and data.present[0, 0, 0]


def test_malformed_file_stops_prepare_and_leaves_nothing(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for k in range(3):
        write_sample(raw, f"S001C001P001R001A00{k + 1}")
    bad = raw / "S001C001P001R001A002.skeleton"
    bad.write_text("\n".join(bad.read_text().splitlines()[:30]))
    with pytest.raises(SkeletonFormatError, match="S001C001P001R001A002.skeleton, line 31"):
        prepare(raw, tmp_path / "out", "ntu60")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    data = prepare(raw, tmp_path / "out", "ntu60", skip_invalid=True)
    assert data.names == ["S001C001P001R001A001", "S001C001P001R001A003"]
    assert data.label.tolist() == [0, 2] and data.length.tolist() == [20, 20]
    report = (tmp_path / "out" / "prepare_report.txt").read_text()
    assert "skipped 1" in report and "S001C001P001R001A002.skeleton" in report
    assert SkeletonDataset(tmp_path / "out").splits["xsub"]["train"].tolist() == [0, 1]


def test_existing_output_needs_overwrite(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_sample(raw, "S001C001P001R001A001")
    prepare(raw, tmp_path / "out", "ntu60")
    with pytest.raises(OccbenchError, match="--overwrite"):
        prepare(raw, tmp_path / "out", "ntu60")
    assert len(prepare(raw, tmp_path / "out", "ntu60", overwrite=True)) == 1


def test_bad_arguments(tmp_path):
    with pytest.raises(OccbenchError, match="no such directory"):
        prepare(tmp_path / "nowhere", tmp_path / "out", "ntu60")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OccbenchError, match="no usable"):
        prepare(tmp_path / "empty", tmp_path / "out", "ntu60")
    with pytest.raises(OccbenchError, match="--benchmark"):
        prepare(tmp_path / "empty", tmp_path / "out")


def test_prepare_streams_to_disk(tmp_path):
    """Peak RAM does not grow with the number of samples: they go straight into memory maps."""
    peaks = {}
    for count in (5, 25):
        raw = tmp_path / f"raw{count}"
        raw.mkdir()
        for k in range(count):
            write_sample(raw, f"S001C001P{k % 30 + 1:03d}R{k // 30 + 1:03d}A001", frames=60, seed=k)
        tracemalloc.start()
        data = prepare(raw, tmp_path / f"out{count}", "ntu60", workers=1)
        peaks[count] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(data) == count
    per_sample = data.data[0].nbytes + data.mask[0].nbytes + data.inferred[0].nbytes
    assert peaks[25] - peaks[5] < 5 * per_sample, peaks


def test_entries_that_are_not_files_stop_prepare_or_are_skipped(tmp_path):
    import os

    raw = tmp_path / "raw"
    raw.mkdir()
    write_sample(raw, "S001C001P001R001A001")
    os.mkfifo(raw / "S001C001P001R001A002.skeleton")
    (raw / "S001C001P001R001A003.skeleton").mkdir()
    with pytest.raises(OccbenchError, match="S001C001P001R001A002.skeleton: not a regular file"):
        prepare(raw, tmp_path / "out", "ntu60")
    data = prepare(raw, tmp_path / "out", "ntu60", skip_invalid=True)
    assert data.names == ["S001C001P001R001A001"]
    assert "not a regular file" in (tmp_path / "out" / "prepare_report.txt").read_text()


def test_an_out_that_is_a_file_or_under_one_is_a_one_line_error(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_sample(raw, "S001C001P001R001A001")
    (tmp_path / "taken").write_text("x")
    with pytest.raises(OccbenchError, match="taken: a file, not a folder; choose another --out"):
        prepare(raw, tmp_path / "taken", "ntu60")
    with pytest.raises(OccbenchError, match=r"cannot write \(a file where a folder is needed\); .* --out"):
        prepare(raw, tmp_path / "taken" / "out", "ntu60")


def test_a_full_disk_is_a_one_line_error_that_leaves_nothing(tmp_path, small_disk):
    """Memory maps written into a sparse file on a full disk die by SIGBUS: the writer reserves its blocks."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(1, 5):
        write_sample(raw, f"S001C001P001R001A00{i}", frames=300)
    with pytest.raises(OccbenchError, match=r"out.partial: cannot write \(no space left on the device\)"):
        prepare(raw, small_disk / "out", "ntu60")
    assert list(small_disk.iterdir()) == []


def test_a_skipped_files_header_does_not_size_the_arrays(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_sample(raw, "S001C001P001R001A001", frames=12)
    lying = write_sample(raw, "S001C001P001R001A002", frames=20)
    lines = lying.read_text().split("\n")
    lying.write_text("\n".join(["9000", *lines[1:]]))  # 9000 frames claimed: the file ends after 20
    with pytest.raises(SkeletonFormatError, match="A002.skeleton"):
        prepare(raw, tmp_path / "out", "ntu60")
    data = prepare(raw, tmp_path / "out", "ntu60", skip_invalid=True)
    assert data.names == ["S001C001P001R001A001"] and data.frames == 12 and data.data.shape[2] == 12
    lying.write_text("\n".join(["100000000", *lines[1:]]))  # more frames than the file has bytes
    with pytest.raises(SkeletonFormatError, match="A002.skeleton, line 1: 100000000 frames announced, more than its"):
        prepare(raw, tmp_path / "other", "ntu60")


def test_a_sub_folder_that_cannot_be_listed_stops_prepare_or_is_reported(tmp_path, monkeypatch):
    import os

    raw = tmp_path / "raw"
    (raw / "locked").mkdir(parents=True)
    write_sample(raw, "S001C001P001R001A001")
    write_sample(raw / "locked", "S001C001P001R001A002")
    scandir = os.scandir

    def refusing(path="."):  # what a folder without read permission does (the tests may run as root)
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    with pytest.raises(OccbenchError, match="locked: cannot list \\(Permission denied\\); fix its permissions"):
        prepare(raw, tmp_path / "out", "ntu60")
    data = prepare(raw, tmp_path / "out", "ntu60", skip_invalid=True)
    assert data.names == ["S001C001P001R001A001"]
    assert "folder not listed (Permission denied)" in (tmp_path / "out" / "prepare_report.txt").read_text()
