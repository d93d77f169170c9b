"""MAMP: motion-aware masking on worked examples, the motion target and its visibility, training on CPU."""

import torch

from occbench_plugins.mamp import MAMP
from tests.plugins.stand_ins import loss_after_training, make_batch, swaying_batch

SMALL = {"mask_ratio": 0.75, "decoder_width": 16, "decoder_depth": 1, "decoder_heads": 2,
         "encoder": {"frames": 12, "segment": 2, "width": 16, "depth": 1, "heads": 2}}


def method(**settings):
    torch.manual_seed(0)
    return MAMP({**SMALL, **settings})


def still(n=2, t=12):
    x = torch.ones(n, 3, t, 25, 2)
    return x, torch.ones(n, t, 25, 2, dtype=torch.bool)


def test_the_tokens_of_a_moving_joint_are_the_likeliest_masked():
    mamp = method(temperature=0.8)
    x, _ = still()
    x[:, 0, 6:8, 4] += 3.0  # joint 4 moves in segment 3 (frames 6-7) only
    patches = mamp.encoders["joint"].tokens(x)
    p = mamp.motion_probabilities(patches)
    assert torch.allclose(p.sum(dim=1), torch.ones(4))
    grid = p.view(4, 6, 25)
    # segment 3 differs from segment 2, segment 4 from segment 3: both carry joint 4's motion
    assert (grid[:, 3, 4] == grid.amax(dim=(1, 2))).all() and (grid[:, 4, 4] == grid[:, 3, 4]).all()
    assert (grid[:, 0, 0] < grid[:, 3, 4]).all()
    # sampled: over many draws the moving tokens are masked far more often than the still ones
    masked = torch.zeros(4, 150)
    visible = torch.ones(4, 150, dtype=torch.bool)
    for seed in range(200):
        noise = mamp.masking_noise(patches, visible, torch.Generator().manual_seed(seed))
        masked += torch.zeros_like(masked).scatter(1, noise.argsort(dim=1, descending=True)[:, :30], 1)
    assert masked.view(4, 6, 25)[:, 3, 4].mean() > 2 * masked.view(4, 6, 25)[:, 0, 0].mean()


def test_the_target_is_motion_and_never_a_jump_to_an_occluded_joint():
    mamp = method()
    x, mask = still(t=12)
    x = x + torch.arange(12.0)[None, None, :, None, None]  # every joint moves +1 per frame
    mask[:, 5, 9] = False  # joint 9 occluded in frame 5 (segment 2)
    x = x * mask[:, None]
    target, known = mamp.target(x, mask)
    assert target.shape == (4, 150, 6) and (target.view(4, 6, 25, 6)[:, :5, 0] == 1).all()
    grid = known.view(4, 6, 25)
    assert not grid[:, 5].any()  # the last segment: its last frame's motion is not a difference
    # the jumps into and out of frame 5 (segment 2: frames 4-5, and frame 5 -> 6) are no targets
    assert not grid[:, 2, 9].any() and grid[:, 1, 9].all() and grid[:, 3, 9].all() and grid[:, :5, 8].all()


def test_occluded_joints_are_neither_seen_nor_reconstructed():
    mamp = method()
    batch = make_batch(4, t=12)  # joint 7 occluded everywhere
    loss = mamp.training_step(batch, 0, torch.Generator().manual_seed(3))["loss"]
    batch.x[:, :, :, 7] = 1e3
    assert torch.equal(mamp.training_step(batch, 0, torch.Generator().manual_seed(3))["loss"], loss)


def test_a_few_steps_lower_the_loss():
    before, after = loss_after_training(method(), swaying_batch())
    assert after < 0.9 * before
