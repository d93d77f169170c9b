"""Speed of the KNN imputer core against scikit-learn, and the NTU-60-sized cluster pipeline.

Run: ``python -m pytest benchmarks/test_impute_speed.py`` (pytest-benchmark; not part of the normal
test run). Both implementations run in the same process on the same CPU with the same thread pools.

* ``test_sklearn_knn_imputer`` / ``test_knn_fill``: one 700 x 7500 cluster with 30% missing cells,
  KNNImputer(n_neighbors=5, weights="distance") vs occbench.knn_fill, both on one thread (threadpoolctl
  for scikit-learn's BLAS and OpenMP, torch.set_num_threads(1)): the same CPU for both, and immune to
  the stalls a busy machine inflicts on multi-threaded OpenMP regions. Then ``test_speedup_and_equality``
  prints the ratio of the medians and the largest difference, and requires >= 10x and agreement within
  1e-4 on all but exactly tied cells. ``test_knn_fill_all_threads`` times knn_fill with the default
  threads, for information.
* ``test_ntu_sized_pipeline`` (opt-in: ``OCCBENCH_BENCH_NTU=1``, or a fraction such as 0.25): a synthetic
  NTU-60-sized split, 40 000 training and 16 000 test samples of 3 x 50 x 25 x 2, ~20% of the joints of
  present bodies missing, imputed cluster by cluster from memory maps with 60 clusters, in a fresh
  process so that its peak memory is its own. Prints the wall time and the peak memory (resident and
  anonymous, i.e. excluding the memory-mapped dataset pages, which are page cache).
  ``OCCBENCH_BENCH_THREADS=1`` pins torch and the BLAS/OpenMP pools to one thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

from occbench.impute import knn_fill

SHAPE, MISSING, NEIGHBOURS = (700, 7500), 0.3, 5
RESULTS: dict = {}


@pytest.fixture
def one_thread():
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cluster() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(size=SHAPE)
    x[rng.random(SHAPE) < MISSING] = np.nan
    return x


def sklearn_fill(x):
    from sklearn.impute import KNNImputer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return KNNImputer(n_neighbors=NEIGHBOURS, weights="distance").fit_transform(x)


def test_sklearn_knn_imputer(benchmark, cluster, one_thread):
    RESULTS["sklearn"] = benchmark.pedantic(sklearn_fill, args=(cluster,), rounds=3, iterations=1)
    RESULTS["sklearn_median"] = benchmark.stats.stats.median


def test_knn_fill(benchmark, cluster, one_thread):
    knn_fill(cluster[:50], NEIGHBOURS)  # warm-up: first-use costs of torch
    RESULTS["occbench"] = benchmark.pedantic(knn_fill, args=(cluster, NEIGHBOURS), rounds=5, iterations=1)
    RESULTS["occbench_median"] = benchmark.stats.stats.median


def test_knn_fill_all_threads(benchmark, cluster):
    knn_fill(cluster[:50], NEIGHBOURS)
    benchmark.extra_info["threads"] = torch.get_num_threads()
    benchmark.pedantic(knn_fill, args=(cluster, NEIGHBOURS), rounds=5, iterations=1)


def test_speedup_and_equality(cluster):
    if "sklearn" not in RESULTS or "occbench" not in RESULTS:
        pytest.skip("run the whole module (the two benchmarks above) first")
    diff = np.abs(RESULTS["sklearn"] - RESULTS["occbench"])
    missing = np.isnan(cluster)
    ratio = RESULTS["sklearn_median"] / RESULTS["occbench_median"]
    report = {
        "cells": int(missing.sum()), "sklearn_s": round(RESULTS["sklearn_median"], 3),
        "knn_fill_s": round(RESULTS["occbench_median"], 3), "speedup": round(ratio, 1),
        "max_abs_diff": float(diff.max()), "cells_over_1e-4": int((diff > 1e-4).sum()),
    }
    print("\nknn_fill vs sklearn KNNImputer, 700 x 7500, 30% missing:", json.dumps(report))
    assert report["cells_over_1e-4"] <= 1e-5 * report["cells"]  # exact distance ties only
    assert ratio >= 10


# --------------------------------------------------------------------------------------------------
# NTU-60-sized pipeline, in its own process

NTU_SCRIPT = textwrap.dedent('''
    import json, resource, sys, threading, time
    from pathlib import Path
    import numpy as np
    from occbench.data.dataset import DatasetWriter
    from occbench_plugins.imputers import KnnImputer

    root, fraction, clusters, threads = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if threads:
        import torch
        from threadpoolctl import threadpool_limits
        torch.set_num_threads(threads)
        threadpool_limits(threads)
    n_train, n_val, frames, classes = round(40000 * fraction), round(16000 * fraction), 50, 60
    n = n_train + n_val
    rng = np.random.default_rng(0)
    t = np.arange(frames)[None, :, None]
    template = rng.normal(0, 0.4, (classes, 3, 1, 25)) + np.array([0, 0, 3.0])[:, None, None]
    speed = rng.uniform(0.1, 0.4, classes)
    started = time.time()
    with DatasetWriter(root / "occluded", n, frames, overwrite=True) as writer:
        for start in range(0, n, 2000):
            idx = np.arange(start, min(n, start + 2000))
            label = idx % classes
            data = np.zeros((len(idx), 3, frames, 25, 2), np.float32)
            data[..., 0] = template[label] + 0.3 * np.sin(t * speed[label][:, None, None, None]) \\
                + rng.normal(0, 0.05, (len(idx), 3, frames, 25))
            present = np.zeros((len(idx), frames, 2), bool)
            present[:, :, 0] = True
            present[:, :, 1] = (label >= 49)[:, None]  # 11 of 60 classes have two people, as in NTU-60
            data[..., 1] = (data[..., 0] + 0.8) * present[:, None, :, None, 1]
            mask = present[:, :, None, :] & (rng.random((len(idx), frames, 25, 2)) >= 0.2)
            writer["data"][idx] = np.where(mask[:, None], data, 0)
            writer["mask"][idx], writer["present"][idx] = mask, present
            writer["length"][idx], writer["label"][idx] = frames, label
        writer.names = [f"S001C001P001R001A{i:06d}" for i in range(n)]
        meta = {"benchmark": "synthetic", "num_class": classes, "frames": frames, "stages": []}
        source = writer.finish({"xsub": {"train": list(range(n_train)), "val": list(range(n_train, n))}}, meta)
    made = time.time() - started

    def embed(part):  # stands in for the stage-1 encoder: the mean pose, 150-d
        return part.data.mean(axis=2).reshape(len(part), -1)

    peak_anon = [0]
    def watch():
        while True:
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon:"):
                    peak_anon[0] = max(peak_anon[0], int(line.split()[1]))
            time.sleep(0.05)
    threading.Thread(target=watch, daemon=True).start()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.time()
    out = KnnImputer()(source, None, "xsub", root / "imputed", {"clusters": clusters}, seed=0, embed=embed,
                       overwrite=True)
    seconds = time.time() - started
    stage = out.meta["stages"][-1]
    print(json.dumps({
        "train": n_train, "val": n_val, "fraction": fraction, "clusters": clusters, "make_s": round(made, 1),
        "impute_s": round(seconds, 1), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        / 1024), "rss_before_mb": round(before / 1024), "peak_anon_mb": round(peak_anon[0] / 1024),
        "dataset_mb": round(source.data.nbytes / 2**20), "filled": stage["filled"],
        "by_other_clusters": stage["by_other_clusters"], "unfilled": stage["unfilled"], "threads": threads,
    }))
''')


def test_ntu_sized_pipeline(tmp_path):
    fraction = os.environ.get("OCCBENCH_BENCH_NTU")
    if not fraction:
        pytest.skip("set OCCBENCH_BENCH_NTU=1 (or a fraction, e.g. 0.25) to run the NTU-60-sized pipeline")
    clusters = round(60 * min(1.0, float(fraction))) or 1
    threads = os.environ.get("OCCBENCH_BENCH_THREADS", "0")  # 0: the default thread pools
    done = subprocess.run([sys.executable, "-c", NTU_SCRIPT, str(tmp_path), fraction, str(clusters), threads],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print("\nNTU-60-sized pipeline:", json.dumps(report))
    assert report["unfilled"] == 0
