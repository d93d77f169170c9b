"""The one exception type users see: a one-line message that names the thing and what to do."""

from pathlib import Path


class OccbenchError(Exception):
    """Bad input or a failed precondition; the CLI prints ``occbench: error: <message>`` and exits 2."""


class SkeletonFormatError(OccbenchError):
    """A `.skeleton` file that does not follow the NTU RGB+D text layout."""

    def __init__(self, path, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


def read_bytes(path: str | Path) -> bytes:
    """A user-given file's bytes, or an OccbenchError naming it."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise OccbenchError(f"{path}: cannot read ({err.strerror}); check the path") from None
