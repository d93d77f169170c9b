import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from occbench.data.skeleton import write_skeleton
from tests.tiny_grid import tiny_grid  # noqa: F401 (a fixture: a third-party method on a tiny grid)

# The project's shared folder sits beside the repository root, wherever the clone is; real NTU files
# live there (licence: never copy them into this repository).
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
NTU_SAMPLES = SHARED / "data" / "ntu-samples"


@pytest.fixture(autouse=True)
def one_thread():
    """One torch and BLAS thread: on a small shared CPU two threads oversubscribe and run ~5-10x slower."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture
def ntu_samples() -> Path:
    if not any(NTU_SAMPLES.glob("*.skeleton")):
        pytest.skip(f"real NTU samples not found at {NTU_SAMPLES}")
    return NTU_SAMPLES


# A standing person, spine base at the origin, feet at y = -0.90 (metres).
STANDING = np.array([
    [0, 0.00, 0], [0, 0.25, 0], [0, 0.52, 0], [0, 0.65, 0],
    [-0.18, 0.45, 0], [-0.22, 0.18, 0], [-0.24, -0.06, 0], [-0.24, -0.13, 0],
    [0.18, 0.45, 0], [0.22, 0.18, 0], [0.24, -0.06, 0], [0.24, -0.13, 0],
    [-0.09, -0.02, 0], [-0.10, -0.45, 0], [-0.10, -0.85, 0], [-0.10, -0.90, -0.08],
    [0.09, -0.02, 0], [0.10, -0.45, 0], [0.10, -0.85, 0], [0.10, -0.90, -0.08],
    [0, 0.45, 0], [-0.24, -0.20, 0], [-0.21, -0.12, 0], [0.24, -0.20, 0], [0.21, -0.12, 0],
])


def standing_pose(height: float = 1.7, z: float = 3.0) -> np.ndarray:
    """STANDING scaled to `height`, in camera space: spine base 0.1 m below the camera axis, `z` metres away."""
    return STANDING * (height / 1.7) + np.array([0.0, -0.1, z])


def write_sample(folder: Path, name: str, frames: int = 20, bodies: int = 1, seed: int = 0) -> Path:
    """A small valid .skeleton file: a swaying standing pose."""
    rng = np.random.default_rng(seed)
    pose = standing_pose()
    t = np.arange(frames)[:, None, None, None]
    xyz = np.repeat(pose[None, None], frames, 0).repeat(bodies, 1)
    xyz = xyz + 0.05 * np.sin(t / 5.0) + rng.normal(0, 0.005, xyz.shape)
    if bodies == 2:
        xyz[:, 1, :, 0] += 0.8
    path = folder / f"{name}.skeleton"
    write_skeleton(path, xyz, np.ones((frames, bodies), bool))
    return path


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """Install a tiny third-party distribution with an `occbench` entry point onto sys.path."""
    site = tmp_path / "site"
    site.mkdir()

    def install(dist: str, module: str, source: str, entry: str | None = None) -> Path:
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        # dist-info folders spell the name with underscores, as wheels do: importlib.metadata reads the
        # name up to the first hyphen, so "occbench-tiny-1.2.3" would shadow the real occbench.
        info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[occbench]\n{entry or module} = {module}\n")
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.delitem(sys.modules, module, raising=False)
        return site

    return install


def _mounted(folder: Path, options: str):
    """A tmpfs mounted at `folder` with `options` (where the test may mount: as root), or a skip."""
    folder.mkdir()
    mounted = shutil.which("mount") is not None and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB file system, for what a full disk does."""
    yield from _mounted(tmp_path / "disk", "size=512k")


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder on a read-only file system."""
    yield from _mounted(tmp_path / "read-only", "ro,size=64k")
