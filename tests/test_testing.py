"""occbench.testing: the checks plugin authors get catch what they say they catch, and the tiny grid runs."""

import pytest
import torch

from occbench.testing import check_method, skeleton_batch, tiny_grid
from occbench_plugins.skeletonclr import SkeletonCLR

SMALL = {"queue_size": 32, "encoder": {"hidden_channels": 4, "hidden_dim": 16}}


def test_a_batch_has_one_occluded_joint():
    batch = skeleton_batch(4, frames=6)
    assert batch.x.shape == (4, 3, 6, 25, 2) and batch.mask.shape == (4, 6, 25, 2)
    assert not batch.mask[:, :, 7].any() and batch.mask[:, :, 6].all() and (batch.x[:, :, :, 7] == 0).all()
    assert batch.missing[:, 7].all() and batch.missing.sum() == 4


def test_a_builtin_method_passes_the_checks():
    losses = check_method(SkeletonCLR, SMALL)
    assert len(losses) == 3 and all(loss > 0 for loss in losses)


def test_a_nan_loss_and_an_encoder_without_gradient_are_caught():
    class Diverged(SkeletonCLR):
        def training_step(self, batch, epoch, generator):
            return {"loss": super().training_step(batch, epoch, generator)["loss"] * float("nan")}

    class Detached(SkeletonCLR):
        def training_step(self, batch, epoch, generator):
            return {"loss": (self.heads["joint"][0].weight ** 2).sum() + 0 * torch.zeros(())}

    with pytest.raises(AssertionError, match="Diverged: loss nan at step 0"):
        check_method(Diverged, SMALL)
    with pytest.raises(AssertionError, match="Detached: no gradient reaches the encoder"):
        check_method(Detached, SMALL)


def test_the_tiny_grid_runs_a_method_and_an_imputer_end_to_end(tmp_path):
    records = tiny_grid(tmp_path, methods=["skeletonclr"], imputers=["none", "random"])
    linear = {r["cell"]["imputer"]: r for r in records if r["cell"]["protocol"] == "linear"}
    assert set(linear) == {"none", "random"} and all(0 <= r["metrics"]["top1"] <= 100 for r in linear.values())
    assert linear["none"]["config"]["pretrain"]["pretrain"]["epochs"] == 2
    assert linear["none"]["metrics"]["epochs"] == 2 and linear["none"]["cell"]["profile"] == "tiny"
