import pytest
import torch

from occbench.engine import Checkpoint, build_optimizer, build_schedulers, calibrate_batch_norm, fit, seed_everything
from occbench.errors import OccbenchError


def lrs(schedule, epochs, lr=1.0):
    wrapper = build_optimizer([torch.nn.Parameter(torch.zeros(1))], {"type": "SGD", "lr": lr})
    schedulers = build_schedulers(wrapper, schedule, epochs)
    out = []
    for _ in range(epochs):
        out.append(wrapper.get_lr()["lr"][0])
        for s in schedulers:
            s.step()
    return out


pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `scheduler.step\\(\\)` before")


def test_step_schedule():
    assert lrs({"type": "step", "milestones": [3], "gamma": 0.1}, 5) == pytest.approx([1, 1, 1, 0.1, 0.1])


def test_warmup_then_cosine_like_pstl():
    values = lrs({"type": "cosine", "warmup_epochs": 10}, 150, lr=5e-3)
    assert values[0] < 1e-8 and values[5] == pytest.approx(2.5e-3) and values[10] == pytest.approx(5e-3)
    assert values[80] == pytest.approx(5e-3 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 70 / 140)).item()))
    assert values[-1] < 1e-5 and all(a >= b for a, b in zip(values[10:], values[11:], strict=False))


def problem():
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1
    return x, y


def train(epochs, checkpoint=None, seed=0, precision="fp32"):
    x, y = problem()
    torch.manual_seed(123)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    generator = seed_everything(seed)

    def batches(epoch, gen):
        order = torch.randperm(64, generator=gen)
        for i in range(0, 64, 16):
            yield order[i : i + 16]

    def step(index, epoch):
        return {"loss": ((model(x[index]).squeeze(1) - y[index]) ** 2).mean()}

    history = fit(model, step, batches, epochs, {"type": "SGD", "lr": 0.05, "momentum": 0.9},
                  {"type": "step", "milestones": [3], "gamma": 0.1}, generator, checkpoint=checkpoint,
                  precision=precision)
    return model, history


def test_loss_goes_down():
    _, history = train(6)
    assert history[-1]["loss"] < history[0]["loss"] / 3


def test_bf16_autocast_trains_in_bfloat16_to_nearly_the_same_loss():
    _, full = train(6)
    _, half = train(6, precision="bf16")
    assert half[-1]["loss"] < half[0]["loss"] / 3
    assert half[-1]["loss"] == pytest.approx(full[-1]["loss"], rel=0.1) and half[-1]["loss"] != full[-1]["loss"]
    with pytest.raises(OccbenchError, match="precision 'fp16': use one of fp32, bf16"):
        train(1, precision="fp16")


def test_resume_continues_exactly(tmp_path):
    full, full_history = train(5)
    train(3, Checkpoint(tmp_path))  # "killed" after 3 epochs
    resumed, history = train(5, Checkpoint(tmp_path))
    assert [h["epoch"] for h in history] == [0, 1, 2, 3, 4]
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert history[-1]["loss"] == pytest.approx(full_history[-1]["loss"])


def test_nan_loss_is_a_clear_error():
    model = torch.nn.Linear(1, 1)
    with pytest.raises(OccbenchError, match="loss became nan at epoch 0"):
        fit(model, lambda b, e: {"loss": model(b).sum() * float("nan")}, lambda e, g: [torch.ones(2, 1)], 1,
            {"type": "SGD", "lr": 0.1}, {}, torch.Generator())


def test_a_damaged_checkpoint_is_never_resumed_from(tmp_path, capsys):
    """torch.load takes a checkpoint with a flipped byte in a tensor without a word; its digest does not."""
    checkpoint = Checkpoint(tmp_path)
    checkpoint.save({"w": torch.arange(1000.0), "epoch": 3})
    assert checkpoint.load()["epoch"] == 3
    data = bytearray(checkpoint.path.read_bytes())
    data[data.index(torch.arange(500.0, 501.0).numpy().tobytes()) + 2] ^= 0x10  # inside the tensor's bytes
    checkpoint.path.write_bytes(bytes(data))
    assert torch.load(checkpoint.path, weights_only=True)["w"].sum() != torch.arange(1000.0).sum()
    assert checkpoint.load() is None  # the training starts over
    assert "last.pth: damaged checkpoint (its bytes differ" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    for damage in (b"not a checkpoint", None):  # unreadable; or its digest is gone
        checkpoint.save({"epoch": 1})
        if damage:
            checkpoint.path.write_bytes(damage)
        else:
            checkpoint.digest.unlink()
        assert checkpoint.load() is None and list(tmp_path.iterdir()) == []


def test_unknown_optimizer():
    with pytest.raises(OccbenchError, match="optimizer type 'Lion'"):
        build_optimizer([torch.nn.Parameter(torch.zeros(1))], {"type": "Lion", "lr": 1})


def test_batch_norm_calibration_takes_the_exact_statistics_of_the_data_and_nothing_else():
    torch.manual_seed(0)
    class Encoder(torch.nn.Sequential):  # called as encoders are, with a mask
        def forward(self, x, mask=None):
            assert mask is None
            return super().forward(x)

    model = Encoder(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Dropout(0.5))
    model.train()
    weights = [p.clone() for p in model.parameters()]
    data = torch.randn(10, 4) * 5 + 2
    calibrate_batch_norm(model, [(x, None) for x in data.split(4)])  # uneven batches: 4, 4, 2
    hidden = model[0](data)
    norm = model[1]
    # a cumulative average of per-batch means/unbiased variances, as BatchNorm with momentum None keeps
    batches = hidden.split(4)
    assert torch.allclose(norm.running_mean, torch.stack([b.mean(0) for b in batches]).mean(0), atol=1e-5)
    assert torch.allclose(norm.running_mean, hidden.mean(0), atol=1.5)  # near the data's mean, far from 0
    assert norm.running_mean.abs().max() > 0.1 and norm.momentum == 0.1 and model.training
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), weights, strict=True))


def test_a_checkpoint_that_cannot_be_written_keeps_the_last_good_one(tmp_path, monkeypatch):
    import errno

    import torch

    from occbench.errors import OccbenchError

    checkpoint = Checkpoint(tmp_path)
    checkpoint.save({"epoch": 1})

    def full(state, path):
        open(path, "wb").write(b"half")  # a partial write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OccbenchError, match="last.pth: cannot write \\(no space left on the device\\)"):
        checkpoint.save({"epoch": 2})
    monkeypatch.undo()
    assert checkpoint.load() == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth", "last.pth.digest"]
