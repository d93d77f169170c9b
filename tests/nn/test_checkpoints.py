import logging
import subprocess
import sys

import numpy as np
import pytest
import torch

import occbench
from occbench.errors import OccbenchError
from occbench.nn.checkpoints import convert_state_dict, load_encoder
from occbench.nn.stgcn import STGCN, init_weights

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def published_names() -> list[str]:
    """The key names of the published ``net/st_gcn.py`` Model (CrosSCLR, AimCLR, PSTL), without fc."""
    names = ["A"] + [f"data_bn.{p}" for p in BN]
    for i in range(10):
        b = f"st_gcn_networks.{i}"
        names += [f"{b}.gcn.conv.weight", f"{b}.gcn.conv.bias"]
        names += [f"{b}.tcn.0.{p}" for p in BN] + [f"{b}.tcn.2.weight", f"{b}.tcn.2.bias"]
        names += [f"{b}.tcn.3.{p}" for p in BN]
        if i in (4, 7, 9):
            names += [f"{b}.residual.0.weight", f"{b}.residual.0.bias"] + [f"{b}.residual.1.{p}" for p in BN]
    return names + [f"edge_importance.{i}" for i in range(10)]


def encoder(seed=0, **kwargs) -> STGCN:
    torch.manual_seed(seed)
    model = STGCN(**kwargs)
    model.apply(init_weights)
    with torch.no_grad():
        for mask in model.edge_importance:
            mask.uniform_(0.5, 1.5)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def as_published(model: STGCN) -> dict[str, torch.Tensor]:
    """The model's weights under the published names (matched by position and shape)."""
    own = model.state_dict()
    names = published_names()
    assert len(names) == len(own)
    out = {}
    for name, (key, value) in zip(names, own.items(), strict=True):
        assert name == key  # occbench keeps the published names, so the renaming is the identity
        out[name] = value.clone()
    return out


def crossclr_checkpoint(model: STGCN, linear_eval=False) -> dict[str, torch.Tensor]:
    """A SkeletonCLR/CrosSCLR/AimCLR MoCo state dict: query + key encoders with fc heads and a queue."""
    state = {f"encoder_q.{k}": v for k, v in as_published(model).items()}
    if linear_eval:
        state |= {"encoder_q.fc.weight": torch.randn(60, 256), "encoder_q.fc.bias": torch.zeros(60)}
    else:
        state |= {"encoder_q.fc.0.weight": torch.randn(256, 256), "encoder_q.fc.0.bias": torch.zeros(256),
                  "encoder_q.fc.2.weight": torch.randn(128, 256), "encoder_q.fc.2.bias": torch.zeros(128)}
        state |= {f"encoder_k.{k}": v + 1 for k, v in as_published(model).items() if v.is_floating_point()}
        state |= {"queue": torch.randn(128, 64), "queue_ptr": torch.zeros(1, dtype=torch.long)}
    return state


def features(model, seed=3):
    x = torch.randn(2, 3, 20, 25, 2, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("linear_eval", [False, True])
def test_crossclr_aimclr_layout_loads_with_identical_features(tmp_path, linear_eval):
    model = encoder()
    path = tmp_path / "epoch300_model.pt"
    torch.save(crossclr_checkpoint(model, linear_eval), path)
    loaded = load_encoder(path)
    report = loaded.load_report
    assert report.missing == [] and report.unexpected == [] and report.prefix == "encoder_q."
    assert "encoder_q.fc.weight" in report.ignored if linear_eval else {"queue", "encoder_q.fc.2.weight"} <= set(
        report.ignored)
    if not linear_eval:
        assert any(k.startswith("encoder_k.") for k in report.ignored)
    assert not loaded.training
    assert torch.equal(features(loaded), features(model))


@pytest.mark.parametrize("prefix", ["", "encoder_q.", "module.encoder_q.", "module."])
def test_with_and_without_prefix(prefix):
    model = encoder()
    state = {prefix + k: v for k, v in as_published(model).items()}
    loaded = occbench.load_encoder(state)
    assert loaded.load_report.prefix == prefix and loaded.load_report.clean
    assert loaded.load_report.source == "<state dict>"
    assert torch.equal(features(loaded), features(model))


def test_pstl_plain_file_and_mmengine_wrapper(tmp_path):
    model = encoder()
    torch.save(model.state_dict(), tmp_path / "v_1_epoch_150_pretrain.pt")  # PSTL saves the bare encoder
    assert torch.equal(features(load_encoder(tmp_path / "v_1_epoch_150_pretrain.pt")), features(model))
    inner = {f"encoder.{k}": v for k, v in model.state_dict().items()}
    wrapped = {"meta": {"epoch": 3, "seed": 1}, "state_dict": inner}
    torch.save(wrapped, tmp_path / "mm.pth")
    assert torch.equal(features(load_encoder(str(tmp_path / "mm.pth"))), features(model))


def test_non_tensor_pickles_fall_back_with_a_warning(tmp_path, caplog):
    model = encoder()
    torch.save({"meta": {"hist": np.arange(3)}, "state_dict": model.state_dict()}, tmp_path / "np.pth")
    with caplog.at_level(logging.WARNING):
        loaded = load_encoder(tmp_path / "np.pth")
    assert "weights_only=False" in caplog.text
    assert torch.equal(features(loaded), features(model))


def test_missing_and_unexpected_keys_are_reported(caplog):
    state = {f"encoder_q.{k}": v for k, v in as_published(encoder()).items()}
    del state["encoder_q.st_gcn_networks.3.tcn.3.weight"]
    state["encoder_q.projector.weight"] = torch.zeros(3)
    with caplog.at_level(logging.WARNING):
        report = load_encoder(state).load_report
    assert report.missing == ["encoder_q.st_gcn_networks.3.tcn.3.weight"]
    assert report.unexpected == ["encoder_q.projector.weight"]
    assert "missing" in caplog.text and "projector" in caplog.text
    with pytest.raises(OccbenchError, match="strict=False"):
        load_encoder(state, strict=True)


def test_other_encoders_and_prefix_choice():
    joint, motion = encoder(0), encoder(1)
    state = {f"encoder_q.{k}": v for k, v in as_published(joint).items()}
    state |= {f"encoder_q_motion.{k}": v for k, v in as_published(motion).items()}
    default = load_encoder(state)
    assert default.load_report.other_encoders == ["encoder_q_motion."]
    assert all(k.startswith("encoder_q_motion.") for k in default.load_report.ignored)
    assert torch.equal(features(default), features(joint))
    assert torch.equal(features(load_encoder(state, prefix="encoder_q_motion.")), features(motion))
    with pytest.raises(OccbenchError, match="no encoder under prefix 'encoder_k.'"):
        load_encoder(state, prefix="encoder_k.")


def test_widths_are_read_from_the_weights():
    wide = encoder(hidden_channels=8, hidden_dim=32)
    loaded = load_encoder(wide.state_dict())
    assert (loaded.hidden_channels, loaded.hidden_dim) == (8, 32) and loaded.load_report.clean
    assert torch.equal(features(loaded), features(wide))


def test_wrong_shape_raises_with_the_file_name(tmp_path):
    state = crossclr_checkpoint(encoder())
    state["encoder_q.st_gcn_networks.5.tcn.2.weight"] = torch.zeros(32, 32, 5, 1)
    torch.save(state, tmp_path / "bad_shape.pt")
    with pytest.raises(OccbenchError, match=r"bad_shape\.pt: encoder_q\.st_gcn_networks\.5\.tcn\.2\.weight"):
        load_encoder(tmp_path / "bad_shape.pt")


def test_unreadable_and_encoderless_files(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"this is not a checkpoint")
    with pytest.raises(OccbenchError, match=r"garbage\.pt: cannot read"):
        load_encoder(tmp_path / "garbage.pt")
    with pytest.raises(OccbenchError, match=r"absent\.pt: no such"):
        load_encoder(tmp_path / "absent.pt")
    torch.save({"queue": torch.zeros(3), "fc.weight": torch.zeros(2, 2)}, tmp_path / "head.pt")
    with pytest.raises(OccbenchError, match=r"head\.pt: no ST-GCN encoder weights"):
        load_encoder(tmp_path / "head.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(OccbenchError, match=r"list\.pt: .*not a state dict"):
        load_encoder(tmp_path / "list.pt")


def test_convert_state_dict_returns_the_occbench_layout():
    state, report = convert_state_dict(crossclr_checkpoint(encoder()))
    assert set(state) == set(published_names()) and report.layout.startswith("encoder_q")


def test_a_different_graph_is_noted():
    state = as_published(encoder())
    state["A"] = state["A"] * 2
    assert "adjacency" in " ".join(load_encoder(state).load_report.notes)


def test_import_occbench_stays_light():
    code = "import sys, occbench; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"  # occbench.load_encoder imports torch on first use


def test_an_occbench_encoder_file_loads_whatever_its_encoder(tmp_path):
    """What a pretraining stage saves (occbench.encoders.save): the ST-GCN as an STGCN, a plugin's encoder
    rebuilt from the class and settings saved beside its weights."""
    from occbench import encoders
    from occbench_plugins.skeletonclr import SkeletonCLR
    from tests.plugins.stand_ins import make_batch, with_double

    batch = make_batch(4)
    for method, expected in ((SkeletonCLR({"queue_size": 8, "encoder": {"hidden_channels": 4, "hidden_dim": 16}}),
                              "STGCN"),
                             (with_double(SkeletonCLR)({"queue_size": 8, "encoder": {"feature_dim": 12}}),
                              "FeatureEncoder")):
        saved = method.feature_encoder().eval()
        encoders.save(saved, tmp_path / "encoder.pth")
        loaded = load_encoder(tmp_path / "encoder.pth")
        assert type(loaded).__name__ == expected and not loaded.training
        torch.testing.assert_close(loaded(batch.x, mask=batch.mask), saved(batch.x, mask=batch.mask))
