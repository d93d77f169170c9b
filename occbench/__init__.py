"""occbench: self-supervised skeleton action recognition benchmarked under occlusion."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # The public API is imported on first use, so `import occbench` (and the CLI's --help) stays light.
    if name == "knn_fill":
        from occbench.impute import knn_fill

        return knn_fill
    if name == "load_encoder":
        from occbench.nn.checkpoints import load_encoder

        return load_encoder
    raise AttributeError(f"module 'occbench' has no attribute {name!r}")
