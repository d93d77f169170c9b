import fnmatch
from pathlib import Path

import tomllib

from occbench import paths

REPO = Path(__file__).resolve().parents[1]


def package_data() -> dict[str, list[str]]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]


def test_every_file_occbench_reads_at_run_time_is_package_data():
    """A wheel holds the .py files and what package-data names: a data file under occbench/ that no
    glob matches would be missing from every installed copy (what broke `pip install .`)."""
    globs = package_data()
    shipped, missing = [], []
    for path in sorted((REPO / "occbench").rglob("*")):
        if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(REPO)
        package = max((name for name in globs if relative.parts[: len(name.split("."))] == tuple(name.split("."))),
                      key=len, default=None)
        inside = str(relative.relative_to(Path(*package.split(".")))) if package else None
        if package and any(fnmatch.fnmatch(inside, glob) for glob in globs[package]):
            shipped.append(path)
        else:
            missing.append(str(relative))
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
    for needed in (paths.CATALOGUE, *paths.PUBLISHED.glob("*.json"), *paths.NTU_RESOURCES.glob("*.txt")):
        assert needed in shipped
    assert len(list(paths.PUBLISHED.glob("*.json"))) == 6  # the paper's tables, clean baselines, masked transformers


def test_what_occbench_ships_lives_inside_the_package():
    for path in (paths.CATALOGUE, paths.PUBLISHED, paths.NTU_RESOURCES):
        assert path.exists() and paths.PACKAGE in path.parents
    assert not (REPO / "registry.yaml").exists() and not (REPO / "results" / "paper").exists()  # one copy


def test_one_home_for_the_cache_and_the_embedded_data(tmp_path, monkeypatch):
    monkeypatch.setenv("OCCBENCH_HOME", str(tmp_path / "home"))
    assert paths.work_folder() == tmp_path / "home" / "work"
    assert paths.embedded_folder({"classes": 12}).parent == tmp_path / "home" / "embedded"
    assert paths.embedded_folder({"classes": 12}) != paths.embedded_folder({"classes": 4})
    assert paths.embedded_folder({"classes": 12}, tmp_path / "other").parent == tmp_path / "other" / "embedded"
    monkeypatch.delenv("OCCBENCH_HOME")
    assert paths.home() == Path("~/.cache/occbench").expanduser()
    assert paths.results_folder() == Path("results") and paths.results_folder("~/r") == Path.home() / "r"
    assert paths.work_folder(tmp_path / "w") == tmp_path / "w"


def test_cache_keys_ignore_key_order_and_see_every_value():
    key = paths.stage_key("pretrain", {"a": 1, "b": [1, 2]}, ["k"])
    assert key == paths.stage_key("pretrain", {"b": [1, 2], "a": 1}, ["k"])
    keys = {paths.stage_key("pretrain", {"a": 1}, ["k"]), paths.stage_key("pretrain", {"a": 2}, ["k"]),
            paths.stage_key("evaluate", {"a": 1}, ["k"]), paths.stage_key("pretrain", {"a": 1}, ["j"])}
    assert len(keys) == 4


def test_paths_kept_in_a_cache_are_relative_to_it(tmp_path):
    stage = tmp_path / "work" / "pretrain" / "abc"
    assert paths.relative_to(stage, stage / "encoder.pth") == "encoder.pth"
    assert paths.relative_to(stage, tmp_path / "home" / "x") == str(tmp_path / "home" / "x")  # outside: absolute
    moved = tmp_path / "moved" / "pretrain" / "abc"
    assert paths.resolve(moved, "encoder.pth") == moved / "encoder.pth"
    assert paths.resolve(moved, str(tmp_path / "home" / "x")) == tmp_path / "home" / "x"


def test_record_names_are_readable_and_unique_per_cell():
    cell = dict(method="crossclr", stream="J+M", imputer="knn", dataset="ntu60", split="xsub", occlusion="realistic",
                protocol="linear", seed=3, profile="paper")
    assert paths.record_name(cell) == "crossclr-J+M-knn-ntu60-xsub-realistic-linear-paper-seed3.json"
    quality = {**cell, "method": None, "stream": None, "protocol": "imputation"}
    assert paths.record_name(quality) == "knn-ntu60-xsub-realistic-imputation-paper-seed3.json"
    overridden = paths.record_name({**cell, "profile": "quick (pretrain.epochs=0)"})
    assert overridden == "crossclr-J+M-knn-ntu60-xsub-realistic-linear-quick__pretrain.epochs=0-seed3.json"
    many = {**cell, "profile": "quick (" + ", ".join(f"methods.pstl.setting{i}=0" for i in range(20)) + ")"}
    other = {**many, "profile": many["profile"].replace("setting19", "setting18")}
    assert len(paths.record_name(many)) <= paths.MAX_NAME and paths.record_name(many).endswith("-seed3.json")
    assert paths.record_name(many) != paths.record_name(other)
    assert "/" not in paths.record_name({**cell, "split": "../x"})
