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


def brief(error: BaseException) -> str:
    """The first line of another library's error message (numpy's can run to three), for a one-line error."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_bytes(path: str | Path) -> bytes:
    """A user-given file's bytes, or an OccbenchError naming it."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise OccbenchError(f"{path}: cannot read ({err.strerror}); check the path") from None


def write_error(path, err: OSError, option: str) -> OccbenchError:
    """`occbench: error: PATH: what happened; what to do` for a failed write under a user's folder."""
    import errno

    what = {errno.ENOSPC: "no space left on the device", errno.EROFS: "a read-only file system",
            errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.ENOTDIR: "a file where a folder is needed", errno.EEXIST: "a file where a folder is needed",
            errno.EDQUOT: "disk quota exceeded"}.get(err.errno, err.strerror or str(err))
    full = err.errno in (errno.ENOSPC, errno.EDQUOT)
    return OccbenchError(f"{path}: cannot write ({what}); {'free space, or ' if full else ''}pass {option} with a "
                         "writable folder")
