"""occbench: self-supervised skeleton action recognition benchmarked under occlusion."""

__version__ = "0.1.0"
