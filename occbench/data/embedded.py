"""The embedded default dataset: synthetic NTU-like `.skeleton` files run through the real-NTU pipeline.

synth -> prepare -> occlude -> preprocess, each stage cached in its own folder of one chain per
generator setting (`occbench.paths.embedded_folder`), so a second call costs nothing and a changed
setting builds a new chain beside the old one.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict
from pathlib import Path

from occbench import paths
from occbench.data.dataset import SkeletonDataset
from occbench.data.preprocess import DEFAULT_PIPELINE, check_pipeline, preprocess
from occbench.data.synth import SynthConfig, synthesize


def embedded_datasets(
    home: str | Path | None = None, occlusion: str = "realistic", seed: int = 0,
    config: SynthConfig | None = None, frames: int = 50, progress: bool = False, pipeline: str = DEFAULT_PIPELINE,
) -> dict[str, SkeletonDataset]:
    """Build (or reuse) the default chain, preprocessed with `pipeline` (`occbench.data.preprocess`);
    returns the datasets of every stage by role."""
    from occbench.data.occlusion import occlude
    from occbench.data.prepare import prepare

    check_pipeline(pipeline)
    config = config or SynthConfig()
    where = paths.embedded_parts(paths.embedded_folder(asdict(config), home), occlusion, seed, frames, pipeline)
    skeletons = where["skeletons"]
    if not (skeletons / "synthetic.json").is_file():
        partial = skeletons.with_name(skeletons.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        synthesize(partial, config, progress=progress)
        shutil.rmtree(skeletons, ignore_errors=True)
        os.replace(partial, skeletons)

    def stage(role: str, build) -> SkeletonDataset:
        folder = where[role]
        return SkeletonDataset(folder) if (folder / "meta.json").is_file() else build(folder)

    raw = stage("raw", lambda out: prepare(skeletons, out, "synthetic", progress=progress))
    occluded_raw = stage("occluded_raw", lambda out: occlude(raw, out, occlusion, seed=seed, progress=progress))
    clean = stage("clean", lambda out: preprocess(raw, out, frames=frames, progress=progress, pipeline=pipeline))
    occluded = stage("occluded", lambda out: preprocess(occluded_raw, out, frames=frames, progress=progress,
                                                         pipeline=pipeline))
    return {"raw": raw, "occluded_raw": occluded_raw, "clean": clean, "occluded": occluded}
