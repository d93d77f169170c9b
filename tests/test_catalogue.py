import pytest
import yaml

from occbench.catalogue import apply_overrides, load_catalogue
from occbench.errors import OccbenchError
from occbench.paths import CATALOGUE


def installed() -> dict:
    from occbench.plugins import load_plugins

    host = load_plugins()
    return {name: host.methods[name] for name in host.methods.names()}


def test_the_shipped_registry_is_valid():
    catalogue = load_catalogue()
    host_methods = installed()
    # the quick grid runs every built-in method, in the order tables show them
    quick = catalogue.suite("quick")["methods"]
    assert quick == sorted(quick, key=lambda name: host_methods[name].order)
    assert set(catalogue.suite("quick")["methods"]) == set(host_methods) - {"crossclr3s"}
    assert catalogue.mentioned("methods")[:8] == catalogue.suite("quick")["methods"]
    assert catalogue.datasets["ntu120"]["split_sizes"]["xset"] == [54468, 59477]
    paper, quick = catalogue.profile("paper", installed()), catalogue.profile("quick", installed())
    assert "methods" not in catalogue.profile("paper")  # each method's settings ship with it
    assert paper["methods"]["skeletonclr"]["queue_size"] == 32768
    assert paper["methods"]["opstl"]["mask_joint"] == 9 and paper["methods"]["pstl"]["mask_joint"] == 8
    # quick inherits what it does not change
    assert quick["methods"]["opstl"]["mask_joint"] == 9 and quick["methods"]["opstl"]["projector_dim"] == 512
    assert quick["pretrain"]["optimizer"] == paper["pretrain"]["optimizer"]
    assert catalogue.suite("quick")["imputers"] == ["none", "random", "knn"]


def write_registry(tmp_path, edit):
    raw = yaml.safe_load(CATALOGUE.read_text())
    edit(raw)
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda r: r["datasets"]["ntu60"].update(splts=[]), "datasets.ntu60.splts: unknown key"),
        (lambda r: r["datasets"]["ntu60"].pop("title"), "datasets.ntu60.title: missing required field"),
        (lambda r: r.update(methods={}), "methods: unknown section"),
        (lambda r: r["suites"]["quick"].update(methods="pstl"), "suites.quick.methods: expected a list of names"),
        (lambda r: r.update(extras={}), "extras: unknown section"),
        (lambda r: r["profiles"]["quick"].update(_base_="papr"), "profiles.quick._base_: unknown profile 'papr'"),
        (lambda r: r["profiles"]["paper"].update(methods=["simclr"]), "profiles.paper.methods: expected a mapping"),
        (lambda r: r["suites"]["quick"].update(datasets=["ntu60/xset"]), "suites.quick.datasets"),
        (lambda r: r["datasets"]["ntu60"].update(source="web"), "datasets.ntu60.source"),
    ],
)
def test_invalid_registry_names_the_key(tmp_path, edit, words):
    with pytest.raises(OccbenchError, match=words.replace("(", r"\(")):
        load_catalogue(write_registry(tmp_path, edit))


def test_unreadable_registry(tmp_path):
    with pytest.raises(OccbenchError, match="cannot read"):
        load_catalogue(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("methods: [\n")
    with pytest.raises(OccbenchError, match="not valid YAML"):
        load_catalogue(tmp_path / "bad.yaml")


def test_command_line_overrides():
    profile = load_catalogue().profile("quick")
    out = apply_overrides(profile, ["pretrain.epochs=10", "methods.pstl.lambd=1e-3", "data.frames=[1, 2]"])
    assert out["pretrain"]["epochs"] == 10 and out["methods"]["pstl"]["lambd"] == 1e-3
    assert out["data"]["frames"] == [1, 2] and out["data"]["batch_size"] == profile["data"]["batch_size"]
    assert profile["pretrain"]["epochs"] == load_catalogue().profile("quick")["pretrain"]["epochs"] != 10  # input kept
    with pytest.raises(OccbenchError, match="expected key=value"):
        apply_overrides(profile, ["pretrain.epochs"])


def test_a_component_of_another_type_replaces_the_old_one():
    from occbench.catalogue import merge

    sgd = {"optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9}, "epochs": 300}
    assert merge(sgd, {"optimizer": {"type": "Adam", "lr": 5e-3}}) == {"optimizer": {"type": "Adam", "lr": 5e-3},
                                                                      "epochs": 300}
    assert merge(sgd, {"optimizer": {"lr": 0.2}})["optimizer"] == {"type": "SGD", "lr": 0.2, "momentum": 0.9}


def test_every_method_resolves_to_valid_optimizer_and_schedule_settings():
    """What the planner hands the engine: only the arguments of the optimizer's own type."""
    import inspect

    import torch

    from occbench.catalogue import merge

    catalogue = load_catalogue()
    for name in ("paper", "quick"):
        profile = catalogue.profile(name, installed())
        for method, settings in profile["methods"].items():
            pretrain = merge(profile["pretrain"], settings.get("pretrain", {}))
            optimizer = dict(pretrain["optimizer"])
            accepted = inspect.signature(getattr(torch.optim, optimizer.pop("type"))).parameters
            assert set(optimizer) <= set(accepted), (name, method, optimizer)


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda r: r["suites"]["quick"].update(occlusion=["random@0.1", "fog@0.2"]),
         "suites.quick.occlusion: unknown occlusion 'fog'"),
        (lambda r: r["suites"]["quick"].update(occlusion=[]), "suites.quick.occlusion: expected one occlusion spec"),
        (lambda r: r["suites"]["quick"].update(occlusion=0.3),
         "suites.quick.occlusion: 0.3: expected an occlusion spec"),
        (lambda r: r["suites"]["quick"].update(pretrain_occlusion="clean"),
         "suites.quick.pretrain_occlusion: unknown occlusion 'clean'"),
        (lambda r: r["suites"]["robustness"].update(transfer=[{"pretrain": "none"}]),
         "suites.robustness.transfer[0]: {'pretrain': 'none'}: expected {pretrain: SPEC, evaluate: SPEC}"),
        (lambda r: r["suites"]["robustness"].update(transfer=[{"pretrain": "none", "evaluate": "fog"}]),
         "suites.robustness.transfer[0].evaluate: unknown occlusion 'fog'"),
        (lambda r: r["suites"]["robustness"].update(transfers=[]), "suites.robustness.transfers: unknown key"),
    ],
)
def test_a_suites_occlusions_are_checked_when_the_registry_loads(tmp_path, edit, words):
    with pytest.raises(OccbenchError, match=words.replace("[", r"\[").replace("]", r"\]").replace("{", r"\{")
                       .replace("}", r"\}")):
        load_catalogue(write_registry(tmp_path, edit))


def test_the_robustness_suite_names_its_grid():
    robustness = load_catalogue().suite("robustness")
    assert robustness["occlusion"] == ["random@0.1", "random@0.3", "random@0.5"]
    assert robustness["transfer"] == [{"pretrain": "none", "evaluate": "realistic"}]
    assert robustness["imputers"] == ["none", "interp", "knn"] and robustness["protocols"] == ["linear"]
    assert robustness["methods"] == load_catalogue().suite("quick")["methods"]  # every method, by name
    assert robustness["profile"] == "quick" and robustness["datasets"] == ["synthetic/xsub"]


def test_the_paper_table_suites_are_titled_by_their_table():
    """`occbench run --suite tableN` runs the grid of the paper's Table N (Tables I to VI)."""
    roman = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI"}
    suites = load_catalogue().suites
    tables = {name: suite for name, suite in suites.items() if name.startswith("table")}
    assert sorted(tables) == [f"table{number}" for number in roman]
    for name, suite in tables.items():
        assert suite["title"].startswith(f"Table {roman[int(name.removeprefix('table'))]}:"), name
        assert suite["profile"] == "paper" and suite["seeds"] == [0]
