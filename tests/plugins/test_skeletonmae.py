"""SkeletonMAE: its two masking levels on worked examples, occlusion kept out of inputs and targets,
training on CPU, and the encoder the protocols get."""

import torch

from occbench import encoders
from occbench_plugins.skeletonmae import SkeletonMAE
from tests.plugins.stand_ins import loss_after_training, make_batch, swaying_batch

SMALL = {"mask_ratio": 0.75, "decoder_width": 16, "decoder_depth": 1, "decoder_heads": 2,
         "encoder": {"frames": 12, "segment": 2, "width": 16, "depth": 1, "heads": 2}}


def method(**settings):
    torch.manual_seed(0)
    return SkeletonMAE({**SMALL, **settings})


def test_frame_level_masking_takes_whole_segments_and_joint_level_single_tokens():
    mae = method(frame_share=0.5)
    batch = make_batch(4, t=12)
    encoder = mae.encoders["joint"]
    patches, visible = encoder.tokens(batch.x), encoder.token_visibility(batch.mask)
    noise = mae.masking_noise(patches, visible, torch.Generator().manual_seed(0))
    segments = noise.view(8, 6, 25)  # 4 samples x 2 persons, 6 segments of 2 frames, 25 joints
    whole = (segments >= 2).all(dim=2)
    # 0.5 of the 0.75 masked share of 6 segments: round(2.25) = 2 whole segments per sequence
    assert whole.sum(dim=1).tolist() == [2] * 8 and ((segments >= 2).any(dim=2) == whole).all()
    assert (noise[noise < 2] < 1).all()  # every other token: a uniform draw, masked by rank (joint level)
    only_joints = method(frame_share=0.0).masking_noise(patches, visible, torch.Generator().manual_seed(0))
    assert (only_joints < 1).all()


def test_occluded_joints_are_neither_seen_nor_reconstructed():
    """make_batch occludes joint 7 everywhere: its coordinates cannot change the loss."""
    mae = method()
    batch = make_batch(4, t=12)
    loss = mae.training_step(batch, 0, torch.Generator().manual_seed(3))["loss"]
    batch.x[:, :, :, 7] = 1e3  # garbage where the joint is occluded
    assert torch.equal(mae.training_step(batch, 0, torch.Generator().manual_seed(3))["loss"], loss)
    batch.x[:, :, :, 8] += 1.0  # a visible joint does change it
    assert not torch.equal(mae.training_step(batch, 0, torch.Generator().manual_seed(3))["loss"], loss)


def test_the_encoder_sees_only_the_kept_tokens(monkeypatch):
    mae = method(mask_ratio=0.9)
    seen = []
    encode = mae.encoders["joint"].encode
    monkeypatch.setattr(mae.encoders["joint"], "encode", lambda tokens, valid=None: seen.append(tokens.shape)
                        or encode(tokens, valid))
    mae.training_step(make_batch(4, t=12), 0, torch.Generator().manual_seed(0))
    assert seen == [(8, round(150 * 0.1), 16)]  # 15 of 6 x 25 tokens per person


def test_a_few_steps_lower_the_loss():
    before, after = loss_after_training(method(), swaying_batch())
    assert after < 0.7 * before


def test_the_protocols_get_the_transformer_alone_rebuilt_from_its_spec(tmp_path):
    mae = method()
    features = mae.feature_encoder().eval()
    encoders.save(features, tmp_path / "encoder.pth")
    again = encoders.load(tmp_path / "encoder.pth").eval()
    batch = make_batch(3, t=12)
    assert type(again.encoders["joint"]).__name__ == "SkeletonTransformer"
    assert not any("decoder" in name for name in again.state_dict())
    torch.testing.assert_close(again(batch.x, mask=batch.mask), features(batch.x, mask=batch.mask))
    assert again(batch.x, mask=batch.mask).shape == (3, 16)
