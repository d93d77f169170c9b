"""The built-in imputers: none, random and the cluster-agnostic KNN imputer (see ``occbench.impute``).

Every imputer is an object with

* ``name``, ``defaults`` (its settings and their default values) and ``needs_encoder``: True when it
  wants embeddings from a stage-1 encoder pretrained on the occluded data (the runner then schedules
  that pretraining first and passes ``embed``);
* ``__call__(raw, frames, split, out, settings=None, seed=0, embed=None, progress=False,
  overwrite=False) -> SkeletonDataset``: fills the occluded joints of one split and returns the new
  dataset written at ``out`` (the split's training then validation samples, ``mask`` = visible or
  imputed, an ``imputed`` array marking the filled joints). raw: the occluded raw-length camera-space
  dataset, or None to impute ``frames`` itself; frames: the occluded preprocessed (50-frame) dataset
  whose samples are embedded; embed(part) -> (len(part), D) embeddings of an ``occbench.data.dataset.Part``
  of ``frames`` (called on chunks of a split, in order). The caller re-runs the mask-aware
  preprocessing on the result (``occbench.impute.impute_and_preprocess`` does both).

knn's ``stage1_method`` setting tells the planner whose stage-1 encoder gives the embeddings: "opstl"
(default, as in the paper: one imputed dataset per dataset, split and seed, made with the stage-1 OPSTL
encoder pretrained on the non-imputed occluded data and shared by every method) or another method's.
"""

from __future__ import annotations

from occbench.hookspecs import hookimpl
from occbench.impute import KNN_DEFAULTS, RANDOM_DEFAULTS, impute_split
from occbench.impute import check_settings as resolve_settings


class _Imputer:
    name = ""
    defaults: dict = {}
    needs_encoder = False

    def __call__(self, raw, frames, split, out, settings=None, seed=0, embed=None, progress=False,
                 overwrite=False):
        settings = resolve_settings(self.name, settings)
        source = raw if raw is not None else frames
        return impute_split(source, frames, split, out, self.name, settings, seed, embed, progress, overwrite)

    def check_settings(self, settings: dict) -> None:
        """Called when a grid is planned: an unknown or ill-typed setting fails before anything runs."""
        resolve_settings(self.name, settings)

    def __repr__(self) -> str:
        return f"<imputer {self.name}>"


class NoImputer(_Imputer):
    """The occluded data as it is: occluded joints stay 0 and not visible in the mask; nothing is copied."""

    name = "none"

    def __call__(self, raw, frames, split, out, settings=None, seed=0, embed=None, progress=False,
                 overwrite=False):
        resolve_settings(self.name, settings)
        return raw if raw is not None else frames


class RandomImputer(_Imputer):
    """Each occluded joint from a training sample of the split drawn at random among those that observe
    it (variant "donor"), or uniform within the training range of each coordinate (variant "uniform")."""

    name = "random"
    defaults = RANDOM_DEFAULTS


class KnnImputer(_Imputer):
    """KMeans on stage-1 embeddings, then distance-weighted KNN (nan-euclidean) inside each cluster;
    validation samples are filled from the training samples of their predicted cluster only."""

    name = "knn"
    defaults = KNN_DEFAULTS
    needs_encoder = True


IMPUTERS = (NoImputer(), RandomImputer(), KnnImputer())


@hookimpl
def occbench_register_imputers(registry):
    for imputer in IMPUTERS:
        registry.add(imputer.name, imputer)
