"""Every setting of a profile and of --cfg-options is checked when a grid is planned: unknown keys at
any depth, wrong types and out-of-range values are one-line errors naming the key (issue: nothing
silently wrong). Planned against the built-in catalogue and plugins, so nothing trains here."""

import pytest

from occbench.catalogue import load_catalogue
from occbench.cli import main
from occbench.errors import OccbenchError
from occbench.plan import build_stages, resolve_grid
from occbench.plugins import load_plugins
from occbench.settings import ByType, check, integer, listing, number, one_of, typed_like


@pytest.fixture(scope="module")
def planner():
    catalogue, host = load_catalogue(), load_plugins()

    def plan(*overrides: str, profile: str = "quick"):
        grid = resolve_grid(catalogue, host, profile=profile, overrides=list(overrides))
        return build_stages(grid, catalogue, host, {})

    return plan


BAD = [
    # misspelt keys, at every depth, with the nearest valid spelling
    ("pretrian.epochs=1", "pretrian: unknown setting; did you mean pretrain?"),
    ("pretrain.epoch=1", "pretrain.epoch: unknown setting; did you mean pretrain.epochs?"),
    ("data.batchsize=8", "data.batchsize: unknown setting; did you mean data.batch_size?"),
    ("pretrain.schedule.milestone=[1]", "pretrain.schedule.milestone: unknown setting; did you mean "
                                        "pretrain.schedule.milestones?"),
    ("pretrain.optimizer.momentun=0.8", "did you mean pretrain.optimizer.momentum?"),
    ("encoder.hiden_dim=8", "encoder.hiden_dim: unknown setting; did you mean encoder.hidden_dim?"),
    ("methods.skeletonclrr.queue_size=64", "methods.skeletonclrr: unknown method; did you mean methods.skeletonclr?"),
    ("methods.skeletonclr.queue=64", "methods.skeletonclr.queue: unknown setting; did you mean "
                                     "methods.skeletonclr.queue_size?"),
    ("methods.pstl.pretrain.epoch=1", "methods.pstl.pretrain.epoch: unknown setting"),
    ("methods.pstl.encoder.dropuot=0.1", "methods.pstl.encoder.dropuot: unknown setting; did you mean "
                                         "methods.pstl.encoder.dropout?"),
    ("methods.pstl.encoder.dropout=1.5", "methods.pstl.encoder.dropout=1.5: out of range"),
    ("protocols.linaer.torchlight.epochs=3", "protocols.linaer: unknown protocol; did you mean protocols.linear?"),
    ("protocols.linear.torchlite.epochs=3", "protocols.linear.torchlite: unknown setting; did you mean "
                                            "protocols.linear.torchlight?"),
    ("protocols.semi10.label_fractoin=0.2", "did you mean protocols.semi10.label_fraction?"),
    ("methods.mamp.protocols.finetune.layer_decai=0.5", "methods.mamp.protocols.finetune.layer_decai: unknown setting; "
                                                        "did you mean methods.mamp.protocols.finetune.layer_decay?"),
    ("methods.mamp.protocols.finetun.epochs=3", "methods.mamp.protocols.finetun: unknown protocol; did you mean "
                                                "methods.mamp.protocols.finetune?"),
    ("methods.mamp.protocols.finetune.layer_decay=0", "methods.mamp.protocols.finetune.layer_decay=0: out of range"),
    ("methods.mamp.protocols=3", "methods.mamp.protocols=3: expected a mapping"),
    ("imputers.knn.k=3", "imputers.knn.k: unknown setting (imputers.knn has clusters, device, max_iter"),
    ("imputers.knnn.n_neighbors=3", "imputers.knnn: unknown imputer; did you mean imputers.knn?"),
    ("pretrain.optimizer.betas=[0.9]", "pretrain.optimizer.betas: unknown setting"),  # SGD has no betas
    # wrong types
    ("pretrain.epochs=abc", "pretrain.epochs='abc': expected an integer >= 0"),
    ("pretrain.epochs=1.5", "pretrain.epochs=1.5: expected an integer >= 0"),
    ("pretrain.epochs=true", "pretrain.epochs=True: expected an integer"),
    ("pretrain.optimizer.nesterov=1", "pretrain.optimizer.nesterov=1: expected true or false"),
    ("pretrain.schedule.milestones=3", "pretrain.schedule.milestones=3: expected a list"),
    ("pretrain.schedule.milestones=[1.5]", "pretrain.schedule.milestones[0]=1.5: expected an integer"),
    ("pretrain=3", "pretrain=3: expected a mapping"),
    ("methods.skeletonclr.init=torch", "methods.skeletonclr.init='torch': use published or pytorch"),
    ("pretrain.optimizer.type=Adagrad", "pretrain.optimizer.type='Adagrad': use one of SGD, Adam, AdamW"),
    ("pretrain.precision=fp16", "pretrain.precision='fp16': use fp32 or bf16"),
    ("protocols.linear.pstl.features=normalised", "protocols.linear.pstl.features='normalised': use raw or "
                                                  "standardized"),
    # out of range
    ("pretrain.epochs=-1", "pretrain.epochs=-1: out of range"),
    ("data.batch_size=0", "data.batch_size=0: out of range; expected an integer >= 1"),
    ("data.batch_size=-4", "data.batch_size=-4: out of range"),
    ("data.frames=0", "data.frames=0: out of range"),
    ("encoder.hidden_dim=0", "encoder.hidden_dim=0: out of range"),
    ("encoder.dropout=1.0", "encoder.dropout=1.0: out of range; expected a number in [0, 1)"),
    ("methods.skeletonclr.queue_size=0", "methods.skeletonclr.queue_size=0: out of range"),
    ("methods.skeletonclr.momentum=1.5", "methods.skeletonclr.momentum=1.5: out of range"),
    ("methods.skeletonclr.temperature=0", "methods.skeletonclr.temperature=0: out of range; expected a number > 0"),
    ("methods.pstl.mask_joint=26", "methods.pstl.mask_joint=26: out of range; expected an integer in [0, 25]"),
    ("pretrain.optimizer.lr=-0.1", "pretrain.optimizer.lr=-0.1: out of range; expected a number > 0"),
    ("methods.pstl.pretrain.optimizer.lr=0", "methods.pstl.pretrain.optimizer.lr=0: out of range"),
    ("protocols.semi1.label_fraction=0", "protocols.semi1.label_fraction=0: out of range"),
    ("protocols.knn.k=0", "protocols.knn.k=0: out of range"),
    ("imputers.knn.n_neighbors=0", "imputers.knn.n_neighbors=0: out of range; expected an integer >= 1"),
    ("pretrain.optimizer.lr=1e999", "pretrain.optimizer.lr=inf: expected a finite number"),
]


@pytest.mark.parametrize("override, message", BAD, ids=[override for override, _ in BAD])
def test_a_bad_override_is_a_one_line_error_before_planning(planner, override, message):
    with pytest.raises(OccbenchError) as caught:
        planner(override)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("override", ["pretrain.epochs=10", "data.batch_size=16", "pretrain.optimizer.lr=1",
                                      "methods.pstl.lambd=1e-3", "pretrain.precision=bf16",
                                      "pretrain.schedule.milestones=[1, 2]", "encoder.dropout=0",
                                      "imputers.knn.clusters=7", "protocols.linear.torchlight.epochs=3",
                                      "methods.pstl.pretrain.schedule.warmup_epochs=0"])
def test_valid_overrides_plan(planner, override):
    assert planner(override)


def test_a_methods_own_encoder_settings_go_over_the_shared_ones_for_it_alone(planner):
    def encoders(*overrides):
        return {stage.settings["method"]: stage.settings["method_settings"]["encoder"]
                for stage in planner(*overrides) if stage.kind == "pretrain"}

    shared, own = encoders(), encoders("methods.pstl.encoder.dropout=0.1")
    assert own["pstl"] == {**shared["pstl"], "dropout": 0.1}
    assert {name: value for name, value in own.items() if name != "pstl"} == {
        name: value for name, value in shared.items() if name != "pstl"}


def test_a_plugins_own_profile_settings_are_checked_when_the_grid_is_planned():
    from occbench.hookspecs import hookimpl
    from occbench_plugins.skeletonclr import SkeletonCLR

    class Typo(SkeletonCLR):
        profiles = {"quick": {"queue_sise": 64}}

    class Plugin:
        @hookimpl
        def occbench_register_methods(registry):
            registry.add("typo", Typo)

    catalogue, host = load_catalogue(), load_plugins(extra={"typo-plugin": Plugin})
    grid = resolve_grid(catalogue, host, methods=["typo"])
    with pytest.raises(OccbenchError, match="methods.typo.queue_sise: unknown setting; did you mean "
                                            "methods.typo.queue_size"):
        build_stages(grid, catalogue, host, {})


def test_a_method_colour_that_is_not_rrggbb_is_an_error_when_the_grid_is_planned():
    from occbench.hookspecs import hookimpl
    from occbench_plugins.skeletonclr import SkeletonCLR

    class Blue(SkeletonCLR):
        name, colour = "blue", "blue"

    class Plugin:
        @hookimpl
        def occbench_register_methods(registry):
            registry.add("blue", Blue)

    catalogue, host = load_catalogue(), load_plugins(extra={"blue-plugin": Plugin})
    with pytest.raises(OccbenchError, match=r"^method blue: method colour 'blue': expected #rrggbb, e.g. '#0072B2'"):
        resolve_grid(catalogue, host, methods=["skeletonclr", "blue"])
    Blue.colour = "#1f77b4"
    assert resolve_grid(catalogue, host, methods=["blue"]).methods == ["blue"]
    assert host.labels({"method": "blue"})["method"]["colour"] == "#1f77b4"  # carried into its records


def test_encoder_settings_that_do_not_fit_together_are_found_when_the_grid_is_planned():
    catalogue, host = load_catalogue(), load_plugins()
    grid = resolve_grid(catalogue, host, methods=["skeletonmae"], overrides=["methods.skeletonmae.encoder.segment=5"])
    with pytest.raises(OccbenchError, match="^methods.skeletonmae.encoder: encoder frames=12 is not a multiple of "
                                            "segment=5"):
        build_stages(grid, catalogue, host, {})


def test_a_method_brings_its_own_protocol_settings_over_the_profiles():
    catalogue, host = load_catalogue(), load_plugins()

    def finetune(*overrides, profile="paper"):
        grid = resolve_grid(catalogue, host, methods=["skeletonclr", "mamp", "skeletonmae"], protocols=["finetune"],
                            profile=profile, overrides=list(overrides))
        return {stage.label.split()[2]: stage.settings["settings"]
                for stage in build_stages(grid, catalogue, host, {}) if stage.kind == "evaluate"}

    paper, quick = finetune(), finetune(profile="quick")
    assert paper["mamp"]["layer_decay"] == 0.8 and paper["mamp"]["optimizer"]["type"] == "AdamW"
    assert paper["mamp"]["optimizer"]["lr"] == 3e-4  # MAMP's published finetuning
    assert quick["mamp"]["epochs"] == 6 and quick["mamp"]["optimizer"]["lr"] == 1e-2  # quick's own budget and lr
    assert quick["mamp"]["optimizer"]["type"] == "AdamW" and quick["mamp"]["layer_decay"] == 0.8  # the rest inherited
    assert "layer_decay" not in paper["skeletonclr"] and paper["skeletonclr"]["optimizer"]["type"] == "Adam"
    own = finetune("methods.skeletonmae.protocols.finetune.epochs=7")
    assert own["skeletonmae"]["epochs"] == 7 and own["mamp"]["epochs"] == 100
    with pytest.raises(OccbenchError, match=r"^protocols.finetune.layer_decay=0.7 for method skeletonclr: its encoder "
                                            r"STGCN has no layers\(\) to decay; set methods.skeletonclr.protocols"):
        finetune("protocols.finetune.layer_decay=0.7")
    assert finetune("protocols.finetune.layer_decay=0.7", "methods.skeletonclr.protocols.finetune.layer_decay=1")


def test_both_profiles_are_valid_as_shipped(planner):
    assert planner(profile="paper") and planner(profile="quick")


@pytest.mark.parametrize("argv, message", [
    (["--methods="], "give one or more comma-separated names"),
    (["--imputers", ","], "give one or more comma-separated names"),
    (["--seeds", "99999999999999999999"], "seeds go from 0 to 4294967295"),
    (["--seeds", "-1"], "seeds go from 0 to"),
    (["--seeds", "0,x"], "'x' is not a whole number"),
    (["--gpus-per-cell", "0"], "--gpus-per-cell: 0: use 1 or more"),
    (["--slots", "-2"], "--slots: -2: use 1 or more"),
    (["--occlusion", " , "], "--occlusion: ' , ': give one or more comma-separated occlusions"),
])
def test_bad_grid_options_are_one_line_errors(capsys, argv, message):
    assert main(["run", "--dry-run", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_schema_checks_lists_variants_and_typed_defaults():
    schema = {"lr": number(0, above=True), "steps": listing(integer(1)), "mode": one_of("a", "b"),
              "opt": ByType({"SGD": {"momentum": number(0, 1)}, "Adam": {"eps": number(0, above=True)}})}
    check(schema, {"lr": 1, "steps": [1, 2], "mode": "a", "opt": {"type": "Adam", "eps": 1e-8}}, "x")
    for bad, words in [({"steps": [0]}, "x.steps[0]=0: out of range"), ({"opt": {"type": "SGD", "eps": 1.0}},
                       "x.opt.eps: unknown setting"), ({"opt": {"momentum": 0.9}}, "x.opt.type=None: use one of")]:
        with pytest.raises(OccbenchError, match=words.replace("[", r"\[").replace("]", r"\]")):
            check(schema, bad, "x")
    typed = typed_like({"n": 3, "scale": 0.5, "name": "a", "on": True})
    check(typed, {"n": 4, "scale": 2, "name": "b", "on": False}, "y")  # an int is a valid number
    for bad in ({"n": 2.5}, {"scale": "big"}, {"name": 3}, {"on": 1}):
        with pytest.raises(OccbenchError):
            check(typed, bad, "y")


# --- occlusion levels and pretraining occlusion --------------------------------------------------------


@pytest.fixture(scope="module")
def occlusion_planner():
    """Plan the quick profile's grid for two methods (OPSTL: the KNN imputer's stage-1 encoder) with the
    given occlusion options; nothing runs."""
    catalogue, host = load_catalogue(), load_plugins()

    def plan(suite: str = "quick", **options):
        options.setdefault("methods", ["skeletonclr", "opstl"])
        grid = resolve_grid(catalogue, host, suite, **options)
        return build_stages(grid, catalogue, host, {})

    return plan


def keys(stages, kind: str | None = None) -> set[str]:
    return {stage.key for stage in stages if kind is None or stage.kind == kind}


def test_a_bare_occlusion_keeps_the_data_stage_it_had_before_severities(occlusion_planner):
    """Existing caches stay valid: the quick suite's data stage holds exactly what it held before
    (`realistic`, no parameters), so its key, and every key that depends on it, is the one it was."""
    from occbench import paths

    stages = occlusion_planner(methods=None)
    (data,) = [stage for stage in stages if stage.kind == "data"]
    assert data.settings == {"dataset": "synthetic", "source": "embedded", "occlusion": "realistic", "frames": 12,
                             "synth": {}}
    assert data.key == paths.stage_key("data", data.settings, []) == "0c7b5a9a3abaac28"  # as cached before
    # the other stages' settings and needs are those they had: one imputation read by pretraining and evaluation
    for stage in stages:
        expected = {"impute": {"imputer", "settings", "split", "seed"}, "evaluate": {"protocol", "settings", "split",
                    "seed"}, "pretrain": {"method", "plugin", "method_settings", "pretrain", "batch_size", "split",
                    "seed"}, "data": set(data.settings)}[stage.kind]
        assert set(stage.settings) == expected
        if stage.kind == "evaluate":
            pretrain, source = stage.needs
            assert pretrain.needs[0] is source and source in (data, *(s for s in stages if s.kind == "impute"))
    assert "realistic" not in " ".join(stage.label for stage in stages if stage.kind != "data")  # labels as before
    # the suite's occlusion given as a one-spec list, or on the command line, is the same grid
    assert [s.key for s in occlusion_planner(methods=None, occlusion=["realistic"])] == [s.key for s in stages]


def test_each_occlusion_level_is_one_data_stage_and_its_own_cells(occlusion_planner):
    levels = ["random@0.1", "random@0.3", "random@0.5"]
    stages = occlusion_planner(occlusion=levels)
    data = [stage for stage in stages if stage.kind == "data"]
    assert [stage.settings["occlusion"] for stage in data] == levels  # each once
    evaluations = [stage for stage in stages if stage.kind == "evaluate"]
    assert len(evaluations) == 3 * 2 * 3  # levels x methods x imputers
    assert {(s.cell.occlusion, s.cell.pretrain_occlusion) for s in evaluations} == {(o, o) for o in levels}
    assert sum(stage.kind == "pretrain" for stage in stages) == 3 * 2 * 3  # OPSTL on the unimputed data is stage-1
    for stage in evaluations:  # pretrained and evaluated on the data of its own level
        assert {s.settings["occlusion"] for s in stage.upstream() if s.kind == "data"} == {stage.cell.occlusion}
        assert stage.cell.occlusion in stage.label
    # a level planned alone is the same stages: the sweep and a single-level run share the cache
    alone = occlusion_planner(occlusion=["random@0.3"])
    assert keys(alone) <= keys(stages) and len(keys(stages)) == len(stages)
    # a severity written another way is the same level; a bare kind is a level of its own
    assert keys(occlusion_planner(occlusion=["random@.30"])) == keys(alone)
    assert keys(occlusion_planner(occlusion=["random"]), "data").isdisjoint(keys(stages, "data"))


def test_changing_only_the_evaluation_occlusion_reuses_every_pretraining(occlusion_planner):
    first = occlusion_planner(occlusion=["realistic"], pretrain_occlusion="none")
    second = occlusion_planner(occlusion=["random@0.3"], pretrain_occlusion="none")
    pretrained = {s.need("pretrain").key for s in second if s.kind == "evaluate"}
    assert pretrained == {s.need("pretrain").key for s in first if s.kind == "evaluate"}
    assert len(pretrained) == 2  # clean data needs no imputation: one pretraining per method, for every imputer
    new = [stage for stage in second if stage.key not in keys(first)]
    (data,) = [stage for stage in new if stage.kind == "data"]
    assert data.settings["occlusion"] == "random@0.3"
    assert sorted(stage.kind for stage in new if stage.kind != "evaluate") == ["data", "impute", "impute", "pretrain"]
    (stage1,) = [stage for stage in new if stage.kind == "pretrain"]  # the KNN imputer's, on the data it imputes
    assert stage1.needs == (data,) and stage1.settings["method"] == "opstl"
    assert sum(stage.kind == "evaluate" for stage in new) == 6
    for stage in new:
        if stage.kind == "evaluate":
            assert (stage.cell.occlusion, stage.cell.pretrain_occlusion) == ("random@0.3", "none")
            evaluated = stage.needs[1]
            assert (evaluated if evaluated.kind == "data" else evaluated.need("data")) is data


def test_pretraining_on_occluded_data_evaluating_on_clean_data(occlusion_planner):
    stages = occlusion_planner(occlusion=["none"], pretrain_occlusion="realistic", imputers=["none", "knn"])
    same = occlusion_planner(occlusion=["realistic"], imputers=["none", "knn"])
    evaluations = [stage for stage in stages if stage.kind == "evaluate"]
    # the pretrainings are those of the realistic grid (its imputation included); the evaluations read clean data
    pretrained = {s.need("pretrain").key for s in same if s.kind == "evaluate"}
    assert {s.need("pretrain").key for s in evaluations} == pretrained
    assert all(s.needs[1].kind == "data" and s.needs[1].settings["occlusion"] == "none" for s in evaluations)
    assert {stage.cell.pretrain_occlusion for stage in evaluations} == {"realistic"}
    assert len({stage.key for stage in evaluations}) == len(evaluations) == 4


def test_the_robustness_suite_sweeps_random_levels_and_transfers_clean_to_realistic(occlusion_planner):
    stages = occlusion_planner("robustness", methods=None)
    evaluations = [stage for stage in stages if stage.kind == "evaluate"]
    pairs = {(s.cell.pretrain_occlusion, s.cell.occlusion) for s in evaluations}
    assert pairs == {("random@0.1", "random@0.1"), ("random@0.3", "random@0.3"), ("random@0.5", "random@0.5"),
                     ("none", "realistic")}
    methods = load_catalogue().suite("robustness")["methods"]
    assert {s.cell.imputer for s in evaluations} == {"none", "interp", "knn"} and len(methods) == 8
    assert len(evaluations) == 8 * 3 * 4
    # the transfer cells: one clean pretraining per method, whichever imputer fills the evaluated data
    transfer = [s for s in evaluations if s.cell.pretrain_occlusion == "none"]
    assert len({s.need("pretrain").key for s in transfer}) == 8
    # the command line's occlusion replaces the suite's, transfer included
    replaced = occlusion_planner("robustness", occlusion=["random@0.2"])
    assert {s.cell.occlusion for s in replaced if s.kind == "evaluate"} == {"random@0.2"}


@pytest.mark.parametrize("argv, message", [
    (["--occlusion", "fog"], "--occlusion: occlusion 'fog': unknown kind 'fog'"),
    (["--occlusion", "random@0.1,random@lots"], "--occlusion: occlusion 'random@lots': severity 'lots' is not a "
                                               "number"),
    (["--occlusion", "random@1.5"], "--occlusion: occlusion 'random@1.5': severity 1.5 is outside [0, 1]"),
    (["--occlusion", "inferred@0.3"], "--occlusion: occlusion 'inferred@0.3': inferred takes no severity"),
    (["--pretrain-occlusion", "random@"], "--pretrain-occlusion: occlusion 'random@': nothing after '@'"),
])
def test_a_bad_occlusion_spec_is_a_one_line_error_naming_where_it_came_from(capsys, tmp_path, monkeypatch, argv,
                                                                            message):
    monkeypatch.setenv("OCCBENCH_HOME", str(tmp_path))
    assert main(["run", "--dry-run", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_spec_whose_kind_the_catalogue_lacks_is_an_error(tmp_path):
    import yaml

    from occbench.paths import CATALOGUE

    raw = yaml.safe_load(CATALOGUE.read_text())
    raw["suites"]["quick"]["occlusion"] = ["realistic", "random@0.4"]
    del raw["occlusions"]["random"], raw["suites"]["robustness"], raw["suites"]["table6"]
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(OccbenchError, match=r"suites.quick.occlusion: unknown occlusion 'random': choose from none, "
                                            r"realistic, inferred"):
        load_catalogue(path)
    raw["suites"]["quick"]["occlusion"] = "realistic"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    catalogue = load_catalogue(path)
    with pytest.raises(OccbenchError, match=r"^--occlusion: unknown occlusion 'random': choose from none, "
                                            r"realistic, inferred"):
        resolve_grid(catalogue, load_plugins(), occlusion=["random@0.4"])
    raw["suites"]["quick"]["occlusion"] = "random@2"  # the catalogue checks kinds; the planner severities
    raw["occlusions"]["random"] = {"title": "random joints"}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(OccbenchError, match=r"^suites.quick.occlusion: occlusion 'random@2': severity 2 is outside"):
        resolve_grid(load_catalogue(path), load_plugins())


# --- the preprocessing pipeline of the data stages -----------------------------------------------------


def test_the_paper_profile_preprocesses_as_published_and_the_quick_one_keeps_its_data_key(planner):
    """The paper profile's data stage (hence its records' config) names the published pipeline; the
    quick profile's stays mask-aware and unnamed, so its key is the one cached before the choice existed."""
    from occbench import paths

    def data_stage(*overrides, profile="quick"):
        (data,) = [stage for stage in planner(*overrides, profile=profile) if stage.kind == "data"]
        return data

    paper, quick = data_stage(profile="paper"), data_stage()
    assert paper.settings["pipeline"] == "published"
    assert "pipeline" not in quick.settings and quick.key == "0c7b5a9a3abaac28"
    assert data_stage("data.pipeline=mask-aware").key == quick.key  # the default named is the default left out
    published = data_stage("data.pipeline=published")
    assert published.settings == {**quick.settings, "pipeline": "published"} and published.key != quick.key
    assert published.key == paths.stage_key("data", published.settings, [])
    with pytest.raises(OccbenchError, match=r"^data.pipeline='cv2': use mask-aware or published$"):
        data_stage("data.pipeline=cv2")


# --- the suites of the paper's Tables I, V and VI -------------------------------------------------------

PREPARED = {"ntu60": "/data/occbench/ntu60", "ntu120": "/data/occbench/ntu120"}  # a plan reads no file


@pytest.fixture(scope="module")
def suite_planner():
    """Plan a suite as `occbench run --suite NAME --dry-run --data ntu60=... --data ntu120=...` does."""
    catalogue, host = load_catalogue(), load_plugins()

    def plan(suite: str, **options):
        grid = resolve_grid(catalogue, host, suite, **options)
        return build_stages(grid, catalogue, host, PREPARED)

    return plan


def cells(stages) -> set[tuple]:
    return {(s.cell.method, s.cell.imputer, s.cell.dataset, s.cell.split, s.cell.occlusion, s.cell.protocol)
            for s in stages if s.kind == "evaluate"}


def stage1_of(stages) -> dict[tuple, str]:
    """(imputer, dataset/split) -> the method whose stage-1 pretraining on the non-imputed data it embeds with."""
    found = {}
    for stage in stages:
        if stage.kind == "impute":
            data, pretrain = stage.needs
            assert pretrain.needs == (data,)  # pretrained on the occluded data it imputes, not imputed
            found[(stage.settings["imputer"], f"{data.settings['dataset']}/{stage.settings['split']}")] = \
                pretrain.settings["method"]
    return found


SPLITS = [("ntu60", "xsub"), ("ntu60", "xview"), ("ntu120", "xsub"), ("ntu120", "xset")]
BASELINES = ["skeletonclr", "crossclr", "aimclr", "pstl", "opstl"]


def test_the_table_six_suite_is_opstl_on_random_occlusion_before_and_after_knn(suite_planner):
    stages = suite_planner("table6")
    assert cells(stages) == {("opstl", imputer, dataset, split, "random", "linear")
                             for imputer in ("none", "knn") for dataset, split in SPLITS}
    data = [stage for stage in stages if stage.kind == "data"]
    assert {(s.settings["dataset"], s.settings["source"], s.settings["occlusion"]) for s in data} == {
        ("ntu60", PREPARED["ntu60"], "random"), ("ntu120", PREPARED["ntu120"], "random")}
    assert stage1_of(stages) == {("knn", f"{d}/{s}"): "opstl" for d, s in SPLITS}
    # the KNN imputer's stage-1 encoder is the non-imputed cell's own pretraining: two per dataset and split
    assert sum(s.kind == "pretrain" for s in stages) == 2 * len(SPLITS)
    unimputed = {s.cell.split: s.need("pretrain") for s in stages if s.kind == "evaluate" and s.cell.imputer == "none"
                 and s.cell.dataset == "ntu60"}
    assert {s.cell.split: s.need("impute").needs[1] for s in stages if s.kind == "evaluate"
            and s.cell.imputer == "knn" and s.cell.dataset == "ntu60"} == unimputed
    assert {s.cell.profile for s in stages if s.kind == "evaluate"} == {"paper"}


def test_the_table_five_suite_crosses_the_stage_one_encoder_with_the_stage_two_method(suite_planner):
    stages = suite_planner("table5")
    assert cells(stages) == {(method, imputer, "ntu120", split, "realistic", "linear") for method in ("pstl", "opstl")
                             for imputer in ("knn-pstl", "knn") for split in ("xsub", "xset")}
    # stage 1: PSTL's encoder (CSM) embeds for knn-pstl, OPSTL's (ASM) for knn; stage 2: the method
    assert stage1_of(stages) == {(imputer, f"ntu120/{split}"): method for imputer, method in
                                 (("knn-pstl", "pstl"), ("knn", "opstl")) for split in ("xsub", "xset")}
    for stage in stages:
        if stage.kind == "evaluate":
            pretrain, imputed = stage.needs
            assert pretrain.settings["method"] == stage.cell.method
            assert imputed.settings["imputer"] == stage.cell.imputer
            assert pretrain.needs[0] is imputed
    assert len({s.key for s in stages if s.kind == "evaluate"}) == 8
    # the knn cells are Table III's: the same stages, one cache
    table3 = {s.key for s in suite_planner("table3") if s.kind == "evaluate"}
    assert {s.key for s in stages if s.kind == "evaluate" and s.cell.imputer == "knn"} <= table3
    assert not {s.key for s in stages if s.kind == "evaluate" and s.cell.imputer == "knn-pstl"} & table3


def test_the_table_one_suite_is_table_fours_pretrainings_evaluated_linearly(suite_planner):
    stages = suite_planner("table1")
    assert cells(stages) == {(method, imputer, dataset, split, "realistic", "linear") for method in BASELINES
                             for imputer in ("none", "knn") for dataset, split in SPLITS}
    assert set(stage1_of(stages).values()) == {"opstl"}
    table4 = suite_planner("table4")
    assert keys(stages, "pretrain") == keys(table4, "pretrain") and keys(stages, "impute") == keys(table4, "impute")


@pytest.mark.parametrize("suite, evaluations", [("table1", 10), ("table5", 4), ("table6", 2)])
def test_the_table_suites_plan_on_the_embedded_dataset_with_the_quick_profile(suite_planner, suite, evaluations):
    stages = suite_planner(suite, profile="quick", datasets=["synthetic/xsub"])
    assert sum(s.kind == "evaluate" for s in stages) == evaluations
    assert {s.settings["source"] for s in stages if s.kind == "data"} == {"embedded"}
    quick = load_catalogue().profile("quick")["data"]["frames"]
    assert {s.settings["frames"] for s in stages if s.kind == "data"} == {quick}
    assert {s.cell.profile for s in stages if s.kind == "evaluate"} == {"quick"}


def test_the_second_knn_imputer_has_its_own_settings(planner):
    from occbench.catalogue import load_catalogue as catalogue

    grid = resolve_grid(catalogue(), load_plugins(), imputers=["knn", "knn-pstl"], methods=["pstl", "opstl"])
    planned = {s.settings["imputer"]: s for s in build_stages(grid, catalogue(), load_plugins(), {})
               if s.kind == "impute"}
    assert planned["knn-pstl"].settings["settings"] == {}  # its defaults: the paper's, with PSTL's stage 1
    assert planned["knn-pstl"].needs[1].settings["method"] == "pstl"
    changed = resolve_grid(catalogue(), load_plugins(), imputers=["knn", "knn-pstl"], methods=["pstl", "opstl"],
                           overrides=["imputers.knn-pstl.n_neighbors=3"])
    again = {s.settings["imputer"]: s for s in build_stages(changed, catalogue(), load_plugins(), {})
             if s.kind == "impute"}
    assert again["knn"].key == planned["knn"].key and again["knn-pstl"].key != planned["knn-pstl"].key
    with pytest.raises(OccbenchError, match="imputers.knn-pstl.n_neighbours: unknown setting"):
        planner("imputers.knn-pstl.n_neighbours=3")
