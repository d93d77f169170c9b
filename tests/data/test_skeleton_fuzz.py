"""Mutated `.skeleton` files (real samples when ../shared has them, synthetic ones always): the reader
either parses a file into sane arrays or raises one SkeletonFormatError naming it; never another
exception, never a hang, never inf or an unknown tracking state in what it returns."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from occbench.data.skeleton import read_skeleton
from occbench.errors import SkeletonFormatError
from tests.conftest import NTU_SAMPLES, write_sample

TOKENS = ["", "0", "1", "25", "-1", "2", "1e39", "nan", "inf", "-inf", "1.5", "x", "\x00", "9" * 30, "  ", "\t"]


def _sources(tmp_path_factory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("fuzz")
    files = [write_sample(folder, "S001C001P001R001A001", frames=6),
             write_sample(folder, "S001C001P001R001A050", frames=4, bodies=2)]
    files += sorted(NTU_SAMPLES.glob("*.skeleton"))[:2]  # real files, when ../shared has them
    return [path.read_bytes() for path in files]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return _sources(tmp_path_factory)


mutation = st.tuples(
    st.sampled_from(["replace_token", "drop_line", "duplicate_line", "truncate", "flip_byte", "insert_line"]),
    st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=10**6),
    st.sampled_from(TOKENS),
)


def mutate(raw: bytes, steps) -> bytes:
    lines = raw.split(b"\n")
    for kind, a, b, token in steps:
        token = token.encode("latin-1")
        line = a % len(lines)
        if kind == "replace_token":
            fields = lines[line].split(b" ")
            fields[b % len(fields)] = token
            lines[line] = b" ".join(fields)
        elif kind == "drop_line" and len(lines) > 1:
            del lines[line]
        elif kind == "duplicate_line":
            lines.insert(line, lines[line])
        elif kind == "insert_line":
            lines.insert(line, token)
        elif kind == "truncate":
            lines = lines[: max(1, line)]
        elif kind == "flip_byte" and lines[line]:
            data = bytearray(lines[line])
            data[b % len(data)] ^= 1 << (b % 8)
            lines[line] = bytes(data)
    return b"\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(min_value=0, max_value=3), steps=st.lists(mutation, min_size=1, max_size=4))
def test_a_mutated_file_parses_sanely_or_is_one_format_error(sources, tmp_path, which, steps):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_bytes(mutate(sources[which % len(sources)], steps))
    try:
        seq = read_skeleton(path)
    except SkeletonFormatError as err:
        assert str(path) in str(err) and "\n" not in str(err)
        return
    assert np.isfinite(seq.xyz).all()
    assert set(np.unique(seq.tracking)) <= {-1, 0, 1, 2}
    assert seq.xyz.shape[:3] == (*seq.tracking.shape[:2], 25)
