import statistics

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer
from matplotlib.image import imread

from occbench.cli import main
from occbench.data import ntu
from occbench.plot import ACCURACY, DPI, MPJPE, OCCLUDED, PALETTE, STANDING_POSE, bars, joints, pictures, save, severity
from occbench.store import make_record, write_record

# The labels the built-in plugins give (as the runner records them), written out so that no plugin loads
LABELS = {
    "method": {"skeletonclr": {"title": "SkeletonCLR", "order": 10}, "opstl": {"title": "OPSTL", "order": 50}},
    "imputer": {"none": {"order": 10, "identity": True}, "knn": {"order": 30}, "interp": {"order": 40}},
    "protocol": {"linear": {"title": "Linear evaluation", "label": "linear", "order": 10, "headline": True}},
}
LEVELS = {"random@0.1": 0.11, "random@0.3": 0.32, "random@0.5": 0.49}  # measured occluded fraction
ACCURACY_OF = {"skeletonclr": 60.0, "opstl": 66.0}
IMPUTER_GAIN = {"none": 0.0, "knn": 3.0}


def rec(method, imputer, top1, *, occlusion="random@0.3", seed=0, split="xsub", occluded=None, pretrain=None):
    cell = dict(method=method, stream="J", imputer=imputer, dataset="synthetic", split=split, occlusion=occlusion,
                protocol="linear", seed=seed, profile="quick", pretrain_occlusion=pretrain or occlusion)
    labels = {kind: LABELS[kind][cell[kind]] for kind in ("method", "imputer", "protocol")}
    metrics = {"top1": top1} | ({} if occluded is None else {"occluded": occluded})
    return make_record(cell, metrics, {}, {"source": "occbench"}, labels)


def quality(imputer, seed, scale, *, occlusion="random@0.3"):
    """An imputation-quality record whose joint j has error scale * (j + 1) mm (the hands never occluded)."""
    per_joint = {name: None if "hand tip" in name else scale * (j + 1) / 1000.0
                 for j, name in enumerate(ntu.JOINT_NAMES)}
    known = [value for value in per_joint.values() if value is not None]
    cell = dict(method=None, stream=None, imputer=imputer, dataset="synthetic", split="xsub", occlusion=occlusion,
                protocol="imputation", seed=seed, profile="quick")
    metrics = {"mpjpe": statistics.fmean(known), "mpjpe_train": 0.05, "count": 100, "per_joint": per_joint,
               "occluded": LEVELS[occlusion]}
    return make_record(cell, metrics, {}, {"source": "occbench"})


def top1(method, imputer, level, seed):
    """A made-up accuracy: worse with severity, better with KNN, a seed's own offset."""
    return ACCURACY_OF[method] + IMPUTER_GAIN[imputer] - 20 * level + (1.5 if seed else -0.5)


@pytest.fixture
def grid():
    """2 methods x 2 imputers x 2 seeds on three random@ levels and clean data, and quality records."""
    records = [rec(method, imputer, top1(method, imputer, float(spec.split("@")[1]), seed), occlusion=spec,
                   seed=seed, occluded=fraction)
               for method in ACCURACY_OF for imputer in IMPUTER_GAIN for seed in (0, 1)
               for spec, fraction in LEVELS.items()]
    records += [rec(method, "none", top1(method, "none", 0, seed), occlusion="none", seed=seed, occluded=0.0)
                for method in ACCURACY_OF for seed in (0, 1)]
    records += [quality(imputer, seed, scale) for seed in (0, 1) for imputer, scale in
                (("none", 300.0), ("knn", 2.0 + seed), ("interp", 4.0 + seed))]
    return records


def bar_heights(ax) -> dict[str, float]:
    return {patch.get_gid(): patch.get_height() for patch in ax.patches if patch.get_gid()}


def error_lengths(ax) -> dict[float, float]:
    """Half the length of each error bar, by its x."""
    found = {}
    for container in ax.containers:
        if isinstance(container, ErrorbarContainer):
            for segment in container.lines[2][0].get_segments():
                if len(segment):
                    found[round(segment[0][0], 6)] = (segment[1][1] - segment[0][1]) / 2
    return found


def test_bars_are_the_means_with_the_stds_over_seeds(grid):
    made = {picture.name: picture.figure for picture in bars(grid)}
    assert list(made) == ["bars-random-0.1", "bars-random-0.3", "bars-random-0.5"]  # clean data has no bars
    ax = made["bars-random-0.3"].axes[0]
    runs = [top1("opstl", "knn", 0.3, seed) for seed in (0, 1)]
    assert bar_heights(ax)["opstl|J|knn"] == pytest.approx(statistics.fmean(runs))
    assert len(bar_heights(ax)) == 4
    patch = next(patch for patch in ax.patches if patch.get_gid() == "opstl|J|knn")
    centre = round(patch.get_x() + patch.get_width() / 2, 6)
    assert error_lengths(ax)[centre] == pytest.approx(statistics.stdev(runs))
    assert ax.get_ylabel() == ACCURACY
    assert [label.get_text() for label in ax.get_xticklabels()] == ["SkeletonCLR", "OPSTL"]
    assert "32.0% hidden" in ax.get_title()
    legend = made["bars-random-0.3"].legends[0]
    assert [text.get_text() for text in legend.get_texts()] == ["none", "knn"]
    assert "n = 2" in legend.get_title().get_text()


def test_one_seed_draws_no_error_bars_and_says_so():
    records = [rec(method, imputer, 50.0 + i) for i, (method, imputer) in
               enumerate([("skeletonclr", "none"), ("skeletonclr", "knn"), ("opstl", "none")])]
    (picture,) = bars(records)
    assert picture.name == "bars" and error_lengths(picture.figure.axes[0]) == {}
    assert "no error bars" in picture.figure.legends[0].get_title().get_text()
    assert sorted(bar_heights(picture.figure.axes[0]).values()) == [50.0, 51.0, 52.0]


def test_severity_lines_sit_at_the_measured_occluded_fraction(grid):
    (picture,) = severity(grid)
    ax = picture.figure.axes[0]
    lines = {line.get_gid(): line for line in ax.lines if line.get_gid()}
    assert set(lines) == {f"{method}|J|{imputer}" for method in ACCURACY_OF for imputer in IMPUTER_GAIN}
    line = lines["skeletonclr|J|knn"]
    # knn has no clean record of its own: it starts where no imputation does (nothing to impute)
    assert list(line.get_xdata()) == pytest.approx([0.0, 11.0, 32.0, 49.0])
    expected = [statistics.fmean(top1("skeletonclr", "none" if level == 0 else "knn", level, seed) for seed in (0, 1))
                for level in (0, 0.1, 0.3, 0.5)]
    assert list(line.get_ydata()) == pytest.approx(expected)
    assert line.get_linestyle() != lines["skeletonclr|J|none"].get_linestyle()
    assert ax.get_xlabel() == OCCLUDED and ax.get_ylabel() == ACCURACY
    assert error_lengths(ax)[11.0] > 0


def test_a_method_has_one_colour_in_every_picture(grid):
    (lines,) = severity(grid)
    bars_figure = bars(grid)[0].figure
    for method, colour in (("skeletonclr", PALETTE[0]), ("opstl", PALETTE[1])):
        line = next(line for line in lines.figure.axes[0].lines if line.get_gid() == f"{method}|J|knn")
        patch = next(patch for patch in bars_figure.axes[0].patches if patch.get_gid() == f"{method}|J|knn")
        assert to_hex(line.get_color()) == to_hex(patch.get_facecolor()) == colour.lower()
    # without a declared colour, the colour is the method's place among the methods the records name:
    # OPSTL alone is the first
    alone = [record for record in grid if record["cell"]["method"] != "skeletonclr"]
    assert bar_colour(bars(alone), "opstl|J|knn") == PALETTE[0].lower()


def test_a_declared_colour_holds_whichever_methods_a_picture_shows(grid):
    for record in grid:  # as a plugin's `colour` reaches its records (labels are shared: copy them)
        if record["cell"]["method"] == "opstl":
            record["labels"] = {**record["labels"], "method": {**record["labels"]["method"], "colour": "#882255"}}
    alone = [record for record in grid if record["cell"]["method"] == "opstl"]
    assert bar_colour(bars(grid), "opstl|J|knn") == bar_colour(bars(alone), "opstl|J|knn") == "#882255"
    assert bar_colour(bars(grid), "skeletonclr|J|knn") == PALETTE[0].lower()  # undeclared: the first free colour
    for record in alone:  # a declared palette colour is not handed to an undeclared method as well
        record["labels"]["method"]["colour"] = PALETTE[0]
    assert bar_colour(bars(grid), "opstl|J|knn") == PALETTE[0].lower()
    assert bar_colour(bars(grid), "skeletonclr|J|knn") == PALETTE[1].lower()


def bar_colour(pictures, gid):
    patch = next(patch for patch in pictures[0].figure.axes[0].patches if patch.get_gid() == gid)
    return to_hex(patch.get_facecolor())


def test_cells_pretrained_on_other_data_get_their_own_bars_and_stay_off_the_lines(grid):
    grid.append(rec("opstl", "knn", 20.0, occlusion="random@0.3", pretrain="none", occluded=0.32))
    made = {picture.name: picture.figure for picture in bars(grid)}
    assert bar_heights(made["bars-random-0.3-pretrain-none"].axes[0]) == {"opstl|J|knn": 20.0}
    assert "pretrained on none, evaluated on random@0.3" in made["bars-random-0.3-pretrain-none"].get_suptitle()
    assert bar_heights(made["bars-random-0.3"].axes[0])["opstl|J|knn"] > 50
    (lines,) = severity(grid)
    line = next(line for line in lines.figure.axes[0].lines if line.get_gid() == "opstl|J|knn")
    assert min(line.get_ydata()) > 50


def test_severity_without_the_measured_fraction_falls_back_to_the_severity_number():
    records = [rec("opstl", "knn", 60.0 - 10 * level, occlusion=f"random@{level}") for level in (0.2, 0.4)]
    (picture,) = severity(records)
    ax = picture.figure.axes[0]
    assert list(ax.lines[0].get_xdata()) == pytest.approx([20.0, 40.0])
    assert "severity" in ax.get_xlabel() and "not recorded" in ax.get_xlabel()


def test_joints_colour_each_joint_by_its_error_on_the_standing_body(grid):
    (picture,) = joints(grid)
    figure = picture.figure
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title().split("\n")[0] for ax in panels] == ["knn", "interp"]  # leaving the zeros left out
    dots = next(c for c in panels[0].collections if c.get_gid() == "mpjpe|knn")
    occluded = [j for j, name in enumerate(ntu.JOINT_NAMES) if "hand tip" not in name]
    # mean over seeds 0 and 1 of (2 + seed) * (j + 1) mm
    assert list(dots.get_array()) == pytest.approx([2.5 * (j + 1) for j in occluded])
    assert np.allclose(dots.get_offsets(), np.asarray(STANDING_POSE)[occluded])
    sizes = dots.get_sizes()
    assert sizes[-1] > sizes[0]  # a larger error, a larger marker
    assert len(panels[0].lines) == len(ntu.EDGES)  # the bones
    colourbar = next(ax for ax in figure.axes if ax.get_ylabel() == MPJPE)
    assert colourbar.get_ylim()[1] == pytest.approx(4.5 * 25)  # one scale for every panel: interp's largest


def test_pictures_are_written_as_png_and_pdf(grid, tmp_path):
    written = [path for picture in pictures(grid) for path in save(picture, tmp_path / "out")]
    names = {path.name for path in written}
    assert {"severity.png", "severity.pdf", "joints.png", "joints.pdf", "bars-random-0.3.png"} <= names
    for path in written:
        content = path.read_bytes()
        if path.suffix == ".png":
            height, width, _ = imread(path).shape
            assert content.startswith(b"\x89PNG\r\n\x1a\n") and 3.4 * DPI <= width <= 7.1 * DPI and height > 500
        else:
            assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF")


def test_the_command_writes_every_picture_the_records_allow(grid, tmp_path, capsys):
    for record in grid:
        write_record(record, tmp_path / "results")
    code = main(["plot", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "plots"), "--format", "png"])
    printed = capsys.readouterr().out.split()
    assert code == 0 and len(printed) == 5 and all(path.endswith(".png") for path in printed)
    assert sorted(path.name for path in (tmp_path / "plots").iterdir()) == sorted(
        path.rsplit("/", 1)[1] for path in printed)


def test_a_picture_the_records_cannot_make_is_a_one_line_error(tmp_path, capsys):
    results = tmp_path / "results"
    write_record(rec("opstl", "knn", 60.0, occlusion="realistic"), results)
    assert main(["plot", "severity", "--results", str(results), "--out", str(tmp_path / "plots")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no severity plot" in error and "realistic" in error
    assert main(["plot", "joints", "--results", str(results)]) == 2
    assert "no imputation-quality records" in capsys.readouterr().err
    # with no kind named, what can be made is made and what cannot is said
    assert main(["plot", "--results", str(results), "--out", str(tmp_path / "plots"), "--format", "pdf"]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [str(tmp_path / "plots" / "bars.pdf")] and "no severity plot" in captured.err


def test_bad_options_and_a_missing_folder_are_one_line_errors(tmp_path, capsys):
    assert main(["plot", "--results", str(tmp_path / "nowhere")]) == 2
    assert "no results folder" in capsys.readouterr().err
    write_record(rec("opstl", "knn", 60.0), tmp_path)
    assert main(["plot", "--results", str(tmp_path), "--format", "png,svg"]) == 2
    assert "--format 'png,svg'" in capsys.readouterr().err
    assert main(["plot", "pie", "--results", str(tmp_path)]) == 2
    assert "unknown plot 'pie'" in capsys.readouterr().err
