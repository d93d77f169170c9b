"""CFSEM: its body-, part- and hand-masked views and its temporal shuffle on worked examples, and a few
training steps on CPU."""

import torch

from occbench_plugins.cfsem import BODY_PARTS, CFSEM, HANDS, hide, random_joints, random_parts, shuffle_segments
from tests.plugins.stand_ins import make_batch, with_double


def test_the_masked_joints_are_zeroed_and_no_longer_visible():
    batch = make_batch(4, t=6)
    joints = random_joints(4, 8, torch.Generator().manual_seed(0), "cpu")
    assert joints.sum(dim=1).tolist() == [8] * 4 and len({tuple(row.tolist()) for row in joints}) > 1  # per sample
    x, mask = hide(batch.x, batch.mask, joints)
    hidden = joints[:, None, :, None].expand_as(mask)
    assert not mask[hidden].any() and (x.permute(0, 2, 3, 4, 1)[hidden] == 0).all()
    assert torch.equal(mask[~hidden], batch.mask[~hidden]) and torch.equal(x[~hidden[:, None].expand_as(x)],
                                                                           batch.x[~hidden[:, None].expand_as(x)])


def test_part_masking_takes_whole_body_parts():
    parts = random_parts(64, 2, torch.Generator().manual_seed(0), "cpu")
    sets = [set(torch.nonzero(row).flatten().tolist()) for row in parts]
    whole = [set(part) for part in BODY_PARTS]
    assert all(any(s == a | b for a in whole for b in whole if a != b) for s in sets)
    assert set(HANDS) == {7, 21, 22, 11, 23, 24} and all(j in BODY_PARTS[1] + BODY_PARTS[2] for j in HANDS)


def test_the_temporal_view_reorders_whole_segments_never_in_their_own_order():
    x = torch.arange(10.0).view(1, 1, 10, 1, 1).expand(32, 3, 10, 25, 2).contiguous()
    mask = torch.ones(32, 10, 25, 2, dtype=torch.bool)
    mask[:, 4] = False  # frame 4 occluded: its mask travels with it
    out, out_mask = shuffle_segments(x, mask, 3, torch.Generator().manual_seed(0))
    for sample, visible in zip(out[:, 0, :, 0, 0], out_mask[:, :, 0, 0], strict=True):
        frames = sample.long().tolist()
        blocks = [tuple(frames[i:i + 3]) for i in (0, 3, 6)]
        assert sorted(blocks) == [(0, 1, 2), (3, 4, 5), (6, 7, 8)] and blocks != sorted(blocks)
        assert frames[9] == 9 and not visible[frames.index(4)] and visible.sum() == 9
    assert len({tuple(sample.long().tolist()) for sample in out[:, 0, :, 0, 0]}) > 1  # per sample


def test_a_few_steps_lower_the_loss_of_every_view():
    torch.manual_seed(0)
    method = with_double(CFSEM)({"projector_dim": 32, "encoder": {"feature_dim": 16}})
    batch = make_batch(16, t=12)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)

    def losses():
        with torch.no_grad():
            return method.training_step(batch, 0, torch.Generator().manual_seed(7))

    before = losses()
    assert set(before) == {"loss", "loss_body", "loss_part", "loss_hands", "loss_temporal"}
    assert torch.allclose(before["loss"], sum(before[f"loss_{v}"] for v in ("body", "part", "hands", "temporal")))
    calls = method.encoders["joint"].calls
    assert all(call.mask is not None for call in calls) and not calls[3].mask[:, :, list(HANDS)].any()
    for step in range(40):
        optimizer.zero_grad()
        method.training_step(batch, 0, torch.Generator().manual_seed(step))["loss"].backward()
        optimizer.step()
    assert losses()["loss"] < 0.7 * before["loss"]
