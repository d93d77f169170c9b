import argparse
import csv
import functools
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys

import pytest

from occbench.errors import OccbenchError
from occbench.paths import PUBLISHED as PAPER_RECORDS
from occbench.report import add_table_command, render, t_critical
from occbench.store import flat_rows, load_records, make_record, records_frame, write_record
from tests.conftest import SHARED

PAPER_MD = SHARED / "reference" / "paper-results.md"
LAYOUTS = ("imputers", "protocols", "summary", "stages", "imputation")
FORMATS = ("markdown", "latex", "csv", "json")


@functools.cache
def builtins():
    from occbench.plugins import load_plugins

    return load_plugins()


def rec(method, imputer, split, top1, *, stream="J", dataset="ntu60", protocol="linear", seed=0,
        occlusion="realistic", source="occbench", change_abs=None):
    """A record as the runner writes it, with the labels of the built-in plugins."""
    cell = dict(method=method, stream=stream, imputer=imputer, dataset=dataset, split=split, occlusion=occlusion,
                protocol=protocol, seed=seed, profile="paper")
    metrics = {"top1": top1} | ({} if change_abs is None else {"top1_change_abs": change_abs})
    return make_record(cell, metrics, {}, {"source": source, "citation": "Someone 2023" if source == "paper" else None},
                       builtins().labels(cell))


@pytest.fixture
def ours():
    """A small grid: SkeletonCLR with three seeds on xsub, 2s-CrosSCLR, OPSTL, and two semi-supervised cells."""
    records = [rec("skeletonclr", "none", "xsub", top1, seed=seed) for seed, top1 in enumerate([55.74, 56.74, 57.74])]
    records += [rec("skeletonclr", "knn", "xsub", top1, seed=seed) for seed, top1 in enumerate([57.0, 57.61, 58.22])]
    records += [rec("skeletonclr", "random", "xsub", 47.12), rec("skeletonclr", "none", "xview", 53.25),
                rec("skeletonclr", "knn", "xview", 64.43), rec("crossclr", "none", "xsub", 59.88, stream="J+M"),
                rec("crossclr", "knn", "xsub", 62.76, stream="J+M"),
                rec("opstl", "none", "xsub", 61.11), rec("opstl", "knn", "xsub", 67.11),
                rec("skeletonclr", "none", "xsub", 18.52, protocol="semi1"),
                rec("skeletonclr", "knn", "xsub", 31.99, protocol="semi1"),
                rec("skeletonclr", "knn", "xsub", 70.58, protocol="finetune")]
    return records


@pytest.fixture
def paper():
    return [rec("skeletonclr", "knn", "xsub", 57.61, seed=None, source="paper"),
            rec("skeletonclr", "none", "xsub", 56.74, seed=None, source="paper"),
            rec("skeletonclr", "knn", "xsub", 70.58, seed=None, source="paper", protocol="finetune", change_abs=3.22)]


def rows_of(markdown: str) -> dict[str, list[str]]:
    """Markdown table rows by their first two labels joined, cells stripped."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|--"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[" ".join(cells[:2])] = cells
    return rows


# ------------------------------------------------------------------------------------------ imputers


def test_imputers_show_the_change_against_none_with_arrows():
    records = [rec("skeletonclr", "none", "xsub", 56.74), rec("skeletonclr", "knn", "xsub", 57.61),
               rec("skeletonclr", "random", "xsub", 47.12), rec("skeletonclr", "random", "xview", 58.09)]
    text = render(records_frame(records), "imputers", "markdown")
    header, row = rows_of(text)["method stream"], rows_of(text)["SkeletonCLR J"]
    assert header == ["method", "stream", "none xsub", "random xsub", "random xview", "knn xsub"]
    assert row[2:] == ["56.74", "47.12 (-9.62 ↓)", "58.09", "57.61 (+0.87 ↑)"]  # no none xview: no change


def test_several_seeds_give_mean_and_standard_deviation(ours):
    text = render(records_frame(ours), "imputers", "markdown", dataset="ntu60")
    row = rows_of(text)["SkeletonCLR J"]
    # none: 55.74, 56.74, 57.74 -> 56.74 ± 1.00; knn: 57.00, 57.61, 58.22 -> 57.61 ± 0.61; the changes pair
    # seeds: knn - none = 1.26, 0.87, 0.48 (mean 0.87); random has seed 0 only: 47.12 - 55.74 = -8.62
    assert row[2] == "56.74 ± 1.00" and row[5] == "57.61 ± 0.61 (+0.87 ↑)" and row[4] == "47.12 (-8.62 ↓)"
    assert "over 1–3 seeds per cell" in text and "Seeds present on one side only are left out" in text
    assert rows_of(text)["2s-CrosSCLR J+M"][5] == "62.76 (+2.88 ↑)"


def test_a_seed_run_twice_counts_once_with_its_latest_result():
    runs = [(50.0, 0), (60.0, 0), (62.0, 1)]
    first, again, other = (rec("opstl", "knn", "xsub", top1, seed=seed) for top1, seed in runs)
    first["provenance"]["finished"], again["provenance"]["finished"] = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"
    text = render([again, first, other], "imputers", "markdown")
    assert "61.00 ± 1.41" in text and "over 2 seeds" in text


def test_one_table_per_dataset_and_occlusion_unless_filtered(ours):
    ours.append(rec("opstl", "knn", "xset", 58.25, dataset="ntu120"))
    text = render(ours, "imputers", "markdown")
    assert text.count("**Top-1") == 2 and text.index("NTU-60") < text.index("NTU-120")
    assert render(ours, "imputers", "markdown", dataset="ntu120").count("**Top-1") == 1


def test_the_imputer_filter_keeps_the_changes(ours):
    text = render(ours, "imputers", "markdown", imputer="knn")
    assert rows_of(text)["method stream"][2:] == ["knn xsub", "knn xview"]
    assert rows_of(text)["OPSTL J"][2] == "**67.11** (+6.00 ↑)"  # the best of knn xsub


def test_a_filter_that_matches_nothing_says_what_there_is(ours):
    with pytest.raises(OccbenchError, match=r"no results with dataset 'ntu61'; present: ntu60"):
        render(ours, "imputers", "markdown", dataset="ntu61")


# ------------------------------------------------------------------------------------ paired changes


def seeded(method, imputer, values, **fields):
    """One record per seed 0, 1, ... of the cell, with these top-1 values."""
    return [rec(method, imputer, "xsub", top1, seed=seed, **fields) for seed, top1 in enumerate(values)]


def knn_cell(records, **options):
    cells = json.loads(render(records, options.pop("layout", "imputers"), "json", **options))
    return next(cell for cell in cells if cell["imputer"] == "knn" and cell["method"] == "skeletonclr")


def test_the_t_quantile_is_the_printed_tables():
    # two-sided 95% critical values of Student's t as printed in statistics tables
    for df, printed in [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (10, 2.228), (30, 2.042)]:
        assert t_critical(df) == pytest.approx(printed, abs=5e-4)
    assert t_critical(9, 0.90) == pytest.approx(1.833, abs=5e-4)
    with pytest.raises(OccbenchError, match="degrees of freedom 0"):
        t_critical(0)


def test_a_change_is_the_mean_per_seed_difference_with_its_t_interval():
    # knn - none per seed: 51 - 50, 53 - 51, 56 - 52 = 1, 2, 4
    records = seeded("skeletonclr", "none", [50.0, 51.0, 52.0]) + seeded("skeletonclr", "knn", [51.0, 53.0, 56.0])
    mean = (1.0 + 2.0 + 4.0) / 3
    sd = math.sqrt(((1.0 - mean) ** 2 + (2.0 - mean) ** 2 + (4.0 - mean) ** 2) / (3 - 1))
    half = 4.303 * sd / math.sqrt(3)  # t(0.975, df 2) from the printed table
    assert (round(mean, 3), round(sd, 3), round(half, 3)) == (2.333, 1.528, 3.795)
    cell = knn_cell(records)
    assert cell["change"] == pytest.approx(mean) and cell["pairs"] == 3 and cell["unpaired"] == 0
    assert cell["change_low"] == pytest.approx(mean - half, abs=1e-3)
    assert cell["change_high"] == pytest.approx(mean + half, abs=1e-3)
    assert cell["distinct"] is False  # the interval holds 0: no mark
    text = render(records, "imputers", "markdown")
    assert rows_of(text)["SkeletonCLR J"][3] == "53.33 ± 2.52 (+2.33 ↑)"
    assert "two-sided 95% t interval (df = pairs - 1, over 3 pairs) excludes 0" in text


def test_a_change_whose_interval_excludes_zero_is_marked_in_every_format():
    # differences 1.0, 1.2, 0.8: mean 1.0, sd 0.2, half-width 4.303 * 0.2 / sqrt(3) = 0.497
    records = seeded("skeletonclr", "none", [50.0, 51.0, 52.0]) + seeded("skeletonclr", "knn", [51.0, 52.2, 52.8])
    cell = knn_cell(records)
    assert cell["change_low"] == pytest.approx(1.0 - 4.303 * 0.2 / math.sqrt(3), abs=1e-3)
    assert cell["distinct"] is True
    assert rows_of(render(records, "imputers", "markdown"))["SkeletonCLR J"][3] == "52.00 ± 0.92 (+1.00* ↑)"
    latex = render(records, "imputers", "latex")
    check_latex(latex)
    assert r"(+1.00* $\uparrow$)" in latex and r"95\% t interval" in latex
    row = next(csv.DictReader(io.StringIO(render(records, "imputers", "csv"))))
    assert {"change_low", "change_high", "pairs", "distinct"} <= set(row)


def test_seeds_on_one_side_only_are_left_out_and_one_pair_has_no_interval():
    records = seeded("skeletonclr", "none", [50.0, 51.0]) + seeded("skeletonclr", "knn", [52.0, 52.5, 60.0])
    cell = knn_cell(records)
    assert cell["change"] == pytest.approx(1.75) and cell["pairs"] == 2 and cell["unpaired"] == 1
    assert "Seeds present on one side only are left out of the pairing (1 run in 1 cell)" in render(records)
    single = knn_cell(records[:1] + records[2:3])
    assert single["change"] == pytest.approx(2.0) and single["pairs"] == 1 and single["change_low"] is None
    assert single["distinct"] is None
    disjoint = knn_cell(records[1:2] + records[2:3])  # none has seed 1, knn seed 0: nothing to pair
    assert disjoint["change"] is None and disjoint["unpaired"] == 2


def test_reference_compares_every_method_with_the_chosen_one():
    records = (seeded("skeletonclr", "none", [50.0, 51.0, 52.0]) + seeded("skeletonclr", "knn", [55.0, 55.0, 55.0])
               + seeded("opstl", "none", [53.0, 54.5, 55.0]) + seeded("opstl", "knn", [56.0, 56.0, 57.0])
               + seeded("crossclr", "knn", [60.0, 60.0, 60.0], stream="J+M"))
    text = render(records, "imputers", "markdown", reference="skeletonclr")
    rows = rows_of(text)
    assert rows["SkeletonCLR J"][2:] == ["51.00 ± 1.00", "55.00 ± 0.00"]  # the reference itself: no change
    # opstl - skeletonclr per seed, none: 3, 3.5, 3 (interval excludes 0); knn: 1, 1, 2
    assert rows["OPSTL J"][2:] == ["**54.17 ± 1.04** (+3.17* ↑)", "56.33 ± 0.58 (+1.33 ↑)"]
    assert rows["2s-CrosSCLR J+M"][3] == "**60.00 ± 0.00** (+5.00* ↑)"  # against the reference's only stream
    assert "change against SkeletonCLR on the same data and protocol" in text
    assert {cell["reference"] for cell in json.loads(render(records, "imputers", "json", reference="skeletonclr"))} \
        == {"skeletonclr"}
    with pytest.raises(OccbenchError, match=r"--reference mamp: no results of that method; methods present: "):
        render(records, "imputers", "markdown", reference="mamp")


def test_against_pairs_every_cell_with_the_same_cell_of_another_run():
    ours = seeded("skeletonclr", "none", [50.0, 51.0, 52.0]) + seeded("skeletonclr", "knn", [55.0, 55.0, 55.0])
    other = seeded("skeletonclr", "none", [49.0, 49.8, 51.2]) + seeded("skeletonclr", "knn", [56.0, 57.0, 52.0])
    # none: differences 1.0, 1.2, 0.8 (half-width 4.303 * 0.2 / sqrt(3) = 0.497: marked); knn: -1, -2, 3 (mean 0)
    text = render(ours, "imputers", "markdown", against=other, against_name="runs/before")
    assert rows_of(text)["SkeletonCLR J"][2:] == ["51.00 ± 1.00 (+1.00* ↑)", "55.00 ± 0.00 (0.00)"]
    assert "change against the same cell in runs/before. Runs pair by seed" in text
    cells = json.loads(render(ours, "imputers", "json", against=other))
    none = next(cell for cell in cells if cell["imputer"] == "none")
    assert none["change_low"] == pytest.approx(1.0 - 4.303 * 0.2 / math.sqrt(3), abs=1e-3) and none["pairs"] == 3
    assert knn_cell(ours, against=other)["distinct"] is False
    # seeds on one side only are left out, as against a column of the same run
    assert knn_cell(ours, against=other[3:5])["pairs"] == 2
    with pytest.raises(OccbenchError, match="--against and --reference: .* choose one"):
        render(ours, "imputers", "markdown", against=other, reference="skeletonclr")
    with pytest.raises(OccbenchError, match="--against runs/x: no results of ours there, method opstl"):
        render(ours + seeded("opstl", "none", [50.0]), "imputers", "markdown", against=other, against_name="runs/x",
               method="opstl")
    with pytest.raises(OccbenchError, match="^no results with split .xview.; present: xsub$"):  # ours lack it
        render(ours, "imputers", "markdown", against=other, split="xview")


def test_against_pairs_across_profiles_when_each_cell_there_has_one():
    def profiled(records, profile):
        for record in records:
            record["cell"]["profile"] = profile
        return records

    ours = profiled(seeded("opstl", "none", [40.0, 42.0]), "quick (data.pipeline=published)")  # as --cfg-options
    other = profiled(seeded("opstl", "none", [41.0, 40.0]), "quick")
    text = render(ours, "imputers", "markdown", against=other, against_name="mask-aware")
    assert rows_of(text)["OPSTL J"][2] == "41.00 ± 1.41 (+0.50 ↑)"
    assert "change against the same cell in mask-aware (profile quick)." in text
    same = profiled(seeded("opstl", "none", [41.0, 40.0]), ours[0]["cell"]["profile"])
    assert "(profile" not in render(ours, "imputers", "markdown", against=same)
    twice = other + profiled(seeded("opstl", "none", [30.0, 31.0]), "paper")
    with pytest.raises(OccbenchError, match=r"--against x: its records hold the same cell under several profiles "
                                            r"\(paper, quick\); give it the results folder of one run"):
        render(ours, "imputers", "markdown", against=twice, against_name="x")


def test_the_command_compares_with_another_results_folder(tmp_path, capsys):
    for record in seeded("opstl", "none", [40.0, 42.0]):
        write_record(record, tmp_path / "after")
    for record in seeded("opstl", "none", [41.0, 41.0]):
        write_record(record, tmp_path / "before")
    table("--results", str(tmp_path / "after"), "--against", str(tmp_path / "before"), "--format", "json")
    cell = json.loads(capsys.readouterr().out)[0]
    assert cell["change"] == pytest.approx(0.0) and cell["pairs"] == 2
    with pytest.raises(OccbenchError, match=r"--against .*nowhere: no such folder; give the --results folder"):
        table("--results", str(tmp_path / "after"), "--against", str(tmp_path / "nowhere"))
    with pytest.raises(OccbenchError, match=r"--against .*\.json: not a folder; give the --results folder"):
        table("--results", str(tmp_path / "after"), "--against", str(next((tmp_path / "before").rglob("*.json"))))
    (tmp_path / "empty").mkdir()
    with pytest.raises(OccbenchError, match=r"--against .*empty: no results of ours there to compare with"):
        table("--results", str(tmp_path / "after"), "--against", str(tmp_path / "empty"))


# ------------------------------------------------------------------------------ severity, pretraining


def level(method, imputer, occlusion, values, hidden, pretrain=None, split="xsub"):
    """Seeds 0, 1, ... of one cell at an occlusion level, each with its measured occluded fraction."""
    records = []
    for seed, top1 in enumerate(values):
        record = rec(method, imputer, split, top1, seed=seed, occlusion=occlusion)
        record["metrics"]["occluded"] = hidden + 0.001 * seed
        if pretrain is not None:
            record["cell"]["pretrain_occlusion"] = pretrain
        records.append(record)
    return records


@pytest.fixture
def sweep():
    """SkeletonCLR and OPSTL at random@0.1, 0.3, 0.5 (written in no order), none and knn, seeds 0-2."""
    records = []
    levels = [("random@0.5", 40.0, 0.496), ("random@0.1", 60.0, 0.101), ("random@0.3", 50.0, 0.3)]
    for occlusion, top1, hidden in levels:
        for method, gain in [("opstl", 2.0), ("skeletonclr", 0.0)]:
            records += level(method, "none", occlusion, [top1 + gain, top1 + gain + 1, top1 + gain + 2.5], hidden)
            records += level(method, "knn", occlusion, [top1 + gain + 3, top1 + gain + 4, top1 + gain + 5], hidden)
    return records


def test_severity_orders_levels_by_number_and_shows_what_they_hide(sweep):
    text = render(sweep, "severity", "markdown")
    rows = rows_of(text)
    assert rows["method stream"] == ["method", "stream", "imputer", "xsub random@0.1 (10.2% hidden)",
                                     "xsub random@0.3 (30.1% hidden)", "xsub random@0.5 (49.7% hidden)"]
    # each level against random@0.1 of the same method and imputer, per seed: -10, -10, -10
    assert rows["SkeletonCLR J"][3:] == ["61.17 ± 1.26", "51.17 ± 1.26 (-10.00* ↓)", "41.17 ± 1.26 (-20.00* ↓)"]
    labels = [line.split("|")[1:4] for line in text.splitlines() if line.startswith("| ")][1:]
    assert [[label.strip() for label in row] for row in labels] == [
        ["SkeletonCLR", "J", "none"], ["", "J", "knn"], ["OPSTL", "J", "none"], ["", "J", "knn"]]
    assert "change against the lowest level of the same occlusion kind" in text
    one_imputer = rows_of(render(sweep, "severity", "markdown", imputer="knn"))
    assert one_imputer["method stream"][:3] == ["method", "stream", "xsub random@0.1 (10.2% hidden)"]
    check_latex(render(sweep, "severity", "latex"))


def test_the_other_layouts_keep_one_level_per_table(sweep):
    text = render(sweep, "imputers", "markdown")
    titles = [line for line in text.splitlines() if line.startswith("**")]
    assert [title.split(" · ")[2] for title in titles] == [
        "random@0.1 occlusion (10.2% hidden)", "random@0.3 occlusion (30.1% hidden)",
        "random@0.5 occlusion (49.7% hidden)"]
    assert all(cell["seeds"] == 3 for cell in json.loads(render(sweep, "imputers", "json")))


def test_a_cell_pretrained_on_other_data_is_its_own_table(sweep):
    sweep += level("skeletonclr", "none", "random@0.3", [45.0, 46.0, 47.0], 0.3, pretrain="none")
    sweep += level("skeletonclr", "knn", "random@0.3", [48.0, 49.0, 50.0], 0.3, pretrain="none")
    text = render(sweep, "imputers", "markdown", occlusion="random@0.3")
    titles = [line for line in text.splitlines() if line.startswith("**")]
    assert len(titles) == 2 and "pretrained" not in titles[0]
    assert "pretrained on no occlusion, evaluated on random@0.3 occlusion (30.1% hidden)" in titles[1]
    assert "49.00 ± 1.00 (+3.00* ↑)" in text  # its change pairs with its own non-imputed cell
    severity = render(sweep, "severity", "markdown")
    assert "**Top-1 accuracy (%) · NTU-60 · pretrained on no occlusion · linear evaluation**" in severity
    cells = json.loads(render(sweep, "imputers", "json", pretrain_occlusion="none"))
    assert {(cell["occlusion"], cell["pretrain_occlusion"]) for cell in cells} == {("random@0.3", "none")}


def test_a_record_without_pretrain_occlusion_was_pretrained_on_what_it_evaluates():
    record = rec("opstl", "knn", "xsub", 67.11)
    record["cell"].pop("pretrain_occlusion", None)
    assert flat_rows([record])[0]["pretrain_occlusion"] == "realistic"
    assert records_frame([record])["pretrain_occlusion"].tolist() == ["realistic"]
    assert json.loads(render([record], "imputers", "json"))[0]["pretrain_occlusion"] == "realistic"


# ------------------------------------------------------------------------------------ other layouts


def test_protocols_rows_are_protocol_and_method_with_the_change_on_imputed_data(ours):
    every = render(records_frame(ours), "protocols", "markdown")  # one table per imputer, in their order
    assert every.index("random donors imputation") < every.index("cluster-agnostic KNN imputer imputation")
    text = render(records_frame(ours), "protocols", "markdown", imputer="knn")
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == [
        "protocol", "method", "stream", "NTU-60 xsub", "NTU-60 xview"]
    labels = [[cell.strip() for cell in line.strip("|").split("|")][:2] for line in lines[1:]]
    assert labels == [["finetune", "SkeletonCLR"], ["semi 1%", "SkeletonCLR"], ["linear", "SkeletonCLR"],
                      ["", "2s-CrosSCLR"], ["", "OPSTL"]]
    assert "31.99 (+13.47 ↑)" in text and " 70.58 |" in text  # finetune has no non-imputed run: no change
    assert "57.61 ± 0.61 (+0.87 ↑)" in text and "cluster-agnostic KNN imputer imputation" in text


def test_protocols_show_the_published_unsigned_change(paper):
    text = render(paper, "protocols", "markdown")
    assert "70.58 (Δ 3.22)" in text and "its sign was lost" in text and "57.61 (+0.87 ↑)" in text


def test_summary_is_baselines_without_imputation_and_iospstl(ours):
    text = render(ours, "summary", "markdown")
    rows = rows_of(text)
    assert list(rows) == ["method stream", "SkeletonCLR J", "2s-CrosSCLR J+M", "IosPSTL J"]
    # xview has one number: nothing to beat, no bold
    assert rows["IosPSTL J"][2:] == ["**67.11**", "–"] and rows["SkeletonCLR J"][2:] == ["56.74 ± 1.00", "53.25"]


def ablation():
    """Table V's four cells on NTU-120 (stage 1: knn-pstl or knn; stage 2: PSTL or OPSTL), two seeds, with
    non-imputed and random-imputed cells the layout leaves out."""
    records = [rec(method, imputer, split, top1 + seed, dataset="ntu120", seed=seed)
               for method, imputer, split, top1 in [
                   ("pstl", "knn-pstl", "xsub", 55.0), ("pstl", "knn-pstl", "xset", 54.0),
                   ("opstl", "knn-pstl", "xsub", 56.5), ("opstl", "knn-pstl", "xset", 55.5),
                   ("pstl", "knn", "xsub", 57.05), ("pstl", "knn", "xset", 57.94),
                   ("opstl", "knn", "xsub", 59.29), ("opstl", "knn", "xset", 58.25),
                   ("opstl", "none", "xsub", 55.65), ("opstl", "random", "xsub", 56.43)]
               for seed in (0, 1)]
    return records


def test_stages_is_table_five_stage_one_imputer_by_stage_two_method():
    text = render(ablation(), "stages", "markdown")
    assert text.count("**Top-1") == 1 and "realistic occlusion" in text and "linear evaluation" in text
    lines = [line for line in text.splitlines() if line.startswith("|") and not line.startswith("|--")]
    table = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert table[0] == ["stage 1 (imputer)", "stage 2 (method)", "NTU-120 xsub", "NTU-120 xset"]
    # stage 1 first in the imputers' order (PSTL's stage-1 encoder before OPSTL's), then stage 2; every
    # imputed cell (random has no stage-1 encoder, but a record does not say so), no non-imputed row, no
    # stream column (one stream), no change (no baseline in the table)
    assert [row[:2] for row in table[1:]] == [["random", "OPSTL"], ["knn (PSTL stage 1)", "PSTL"],
                                             ["knn (PSTL stage 1)", "OPSTL"], ["knn", "PSTL"], ["knn", "OPSTL"]]
    assert table[2][2:] == ["55.50 ± 0.71", "54.50 ± 0.71"]
    assert table[5][2:] == ["**59.79 ± 0.71**", "**58.75 ± 0.71**"] and "↑" not in text
    assert render(ablation(), "table5", "markdown") == text  # the paper's table number names the layout
    cells = json.loads(render(ablation(), "table5", "json"))
    assert {(c["imputer"], c["method"], c["split"]) for c in cells if c["imputer"] != "random"} == {
        (imputer, method, split) for imputer in ("knn", "knn-pstl") for method in ("pstl", "opstl")
        for split in ("xsub", "xset")} and {c["layout"] for c in cells} == {"stages"}


def test_stages_beside_the_paper_show_the_published_knn_cells_and_dashes_for_the_rest():
    """Table V's own numbers are not in the text we hold; its ASM/ASM and CSM-stage-2 cells on `knn` are
    Table III's, whose published numbers are shown."""
    text = render(ablation() + load_records(PAPER_RECORDS), "table5", "markdown", compare="paper")
    rows = rows_of(text)
    assert rows["knn OPSTL"][2:] == ["**59.79 ± 0.71** / 59.29", "**58.75 ± 0.71** / 58.25"]
    assert rows["knn PSTL"][2:] == ["57.55 ± 0.71 / 57.05", "58.44 ± 0.71 / 57.94"]
    assert rows["knn (PSTL stage 1) PSTL"][2:] == ["55.50 ± 0.71 / –", "54.50 ± 0.71 / –"]


def random_occlusion():
    """Table VI's grid: OPSTL on random occlusion, none and knn, four splits, two seeds."""
    return [rec("opstl", imputer, split, top1 + seed / 2, dataset=dataset, occlusion="random", seed=seed)
            for imputer, dataset, split, top1 in [
                ("none", "ntu60", "xsub", 40.0), ("none", "ntu60", "xview", 31.0), ("none", "ntu120", "xsub", 11.0),
                ("none", "ntu120", "xset", 5.0), ("knn", "ntu60", "xsub", 47.0), ("knn", "ntu60", "xview", 50.0),
                ("knn", "ntu120", "xsub", 20.0), ("knn", "ntu120", "xset", 18.0)]
            for seed in (0, 1)]


def test_imputation_is_table_six_one_method_before_and_after_imputation():
    records = random_occlusion() + [rec("skeletonclr", "none", "xsub", 50.0, occlusion="random")]
    text = render(records, "imputation", "markdown")
    assert render(records, "table6", "markdown") == text
    assert text.count("**Top-1") == 2  # one table per method
    opstl = text[text.index("· OPSTL ·"):]
    assert "random occlusion" in opstl.splitlines()[0]
    rows = {cells[0]: cells for cells in rows_of(opstl).values()}
    assert rows["imputer"] == ["imputer", "NTU-60 xsub", "NTU-60 xview", "NTU-120 xsub", "NTU-120 xset"]
    # rows by the imputers' titles, as the paper's Non-Imputed / Imputed; the imputed row with its change
    assert rows["no imputation"][1:] == ["40.25 ± 0.35", "31.25 ± 0.35", "11.25 ± 0.35", "5.25 ± 0.35"]
    assert rows["cluster-agnostic KNN imputer"][1:] == [
        "**47.25 ± 0.35** (+7.00* ↑)", "**50.25 ± 0.35** (+19.00* ↑)", "**20.25 ± 0.35** (+9.00* ↑)",
        "**18.25 ± 0.35** (+13.00* ↑)"]


def test_imputation_beside_the_paper_is_table_six_with_the_published_numbers():
    text = render(random_occlusion() + load_records(PAPER_RECORDS), "table6", "markdown", compare="paper")
    assert text.count("**Top-1") == 1  # the realistic-occlusion records of the paper have no cell of ours
    rows = {cells[0]: cells for cells in rows_of(text).values()}
    assert rows["no imputation"][1:] == ["40.25 ± 0.35 / 41.90", "31.25 ± 0.35 / 30.16", "11.25 ± 0.35 / 10.32",
                                         "5.25 ± 0.35 / 4.22"]
    assert rows["cluster-agnostic KNN imputer"][4] == "**18.25 ± 0.35** (+13.00* ↑) / 18.59"


def test_the_paper_table_numbers_name_the_layouts_of_their_suites(ours):
    from occbench.catalogue import load_catalogue
    from occbench.report import LAYOUT_ALIASES, LAYOUTS

    suites = load_catalogue().suites
    assert {name for name in suites if name.startswith("table")} == set(LAYOUT_ALIASES)
    assert set(LAYOUT_ALIASES.values()) <= set(LAYOUTS) and not set(LAYOUT_ALIASES) & set(LAYOUTS)
    assert render(ours, "table1", "markdown") == render(ours, "summary", "markdown")
    assert render(ours, "table4", "markdown") == render(ours, "protocols", "markdown")
    with pytest.raises(OccbenchError, match="unknown layout 'table7'; choose from .*stages, imputation.*table6"):
        render(ours, "table7")


# ------------------------------------------------------------------------------------------- quality


def quality(imputer, split, mpjpe, seed=0, dataset="synthetic"):
    cell = dict(method=None, stream=None, imputer=imputer, dataset=dataset, split=split, occlusion="realistic",
                protocol="imputation", seed=seed, profile="quick")
    return make_record(cell, {"mpjpe": mpjpe, "mpjpe_train": mpjpe, "count": 10, "per_joint": {}}, {},
                       {"source": "occbench"})


def test_quality_shows_each_imputers_error_in_mm_against_leaving_zeros(ours):
    records = [quality("none", "xsub", 3.2), quality("random", "xsub", 0.6), quality("knn", "xsub", 0.41),
               quality("knn", "xsub", 0.43, seed=1), quality("knn", "xview", 0.5)]
    text = render(records_frame(records + ours), "quality", "markdown")
    assert "MPJPE on the occluded joints of the test set (mm)" in text
    rows = {cells[0]: cells for cells in rows_of(text).values()}
    assert rows["imputer"] == ["imputer", "synthetic xsub", "synthetic xview"]
    assert rows["none"][1:] == ["3200.00", "–"]
    assert rows["random"][1:] == ["600.00 (-2600.00 ↓)", "–"]
    # knn's seed 1 has no none run to pair with: the change is seed 0's, 410 - 3200
    # lower is better: knn's error is the best of xsub; xview has knn alone, nothing to beat
    assert rows["knn"][1] == "**420.00 ± 14.14** (-2790.00 ↓)" and rows["knn"][2] == "500.00"
    assert "None" not in render(records_frame(records + ours), "imputers", "markdown")  # no method-less rows
    cells = json.loads(render(records, "quality", "json"))
    assert {c["imputer"]: c["mpjpe"] for c in cells if c["split"] == "xsub"} == {"none": 3200, "random": 600,
                                                                                  "knn": 420}


# ------------------------------------------------------------------------------------------ formats


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_layout_in_every_format(ours, paper, layout, fmt):
    text = render(records_frame(ours + paper), layout, fmt, compare="paper")
    assert text.strip()
    if fmt == "json":
        cells = json.loads(text)
        assert all({"top1", "top1_std", "seeds", "change", "paper_top1", "layout"} <= set(cell) for cell in cells)
    if fmt == "csv":
        cells = list(csv.DictReader(io.StringIO(text)))
        assert cells and all(cell["layout"] == layout for cell in cells)
    if fmt == "latex":
        check_latex(text)


def test_tidy_output_holds_the_unrounded_numbers(ours):
    cells = json.loads(render(ours, "imputers", "json"))
    knn = next(c for c in cells if c["method"] == "skeletonclr" and c["imputer"] == "knn" and c["split"] == "xsub")
    assert knn == knn | {"dataset": "ntu60", "occlusion": "realistic", "protocol": "linear", "top1": 57.61,
                         "seeds": 3, "change": 0.87, "source": "occbench"}
    assert knn["top1_std"] == pytest.approx(0.61)
    rows = list(csv.DictReader(io.StringIO(render(ours, "imputers", "csv"))))
    assert len(rows) == len(cells) and rows[0]["layout"] == "imputers"


def test_latex_uses_booktabs_multicolumns_and_math_symbols(ours):
    text = render(ours, "imputers", "latex")
    check_latex(text)
    assert r"\multicolumn{2}{c}{none}" in text and r"\cmidrule(lr){3-4}" in text
    assert r"57.61 $\pm$ 0.61 (+0.87 $\uparrow$)" in text and r"47.12 ($-$8.62 $\downarrow$)" in text
    assert r"semi 1\%" in render(ours, "protocols", "latex")


def test_latex_escapes_special_characters():
    text = render([rec("my_method", "none", "x&y", 50.0, dataset="big%set")], "imputers", "latex")
    check_latex(text)
    assert r"my\_method" in text and r"x\&y" in text and r"big\%set" in text


def check_latex(text: str) -> None:
    """Balanced braces and environments, booktabs rules in order, as many cells per row as columns."""
    assert text.isascii()
    plain = text.replace(r"\{", "").replace(r"\}", "")
    assert plain.count("{") == plain.count("}")
    stack = []
    for kind, name in re.findall(r"\\(begin|end)\{(\w+)\}", text):
        if kind == "begin":
            stack.append(name)
        else:
            assert stack.pop() == name
    assert not stack
    for tabular in re.findall(r"\\begin\{tabular\}.*?\\end\{tabular\}", text, re.S):
        columns = len(re.match(r"\\begin\{tabular\}\{([lcr]+)\}", tabular).group(1))
        assert tabular.index(r"\toprule") < tabular.index(r"\midrule") < tabular.index(r"\bottomrule")
        rows = [line for line in tabular.splitlines() if line.endswith(r"\\")]
        assert len(rows) >= 3
        for row in rows:
            cells = re.split(r"(?<!\\)&", row[:-2])
            spans = [int(m.group(1)) if (m := re.match(r"\s*\\multicolumn\{(\d+)\}", cell)) else 1 for cell in cells]
            assert sum(spans) == columns, row


# ------------------------------------------------------------------------- best in bold, label, resizebox


def best_cells(text: str) -> set[tuple]:
    """(method, imputer, protocol, split) of each cell a json table marks best; a quality cell, which has
    no method nor protocol: (imputer, None, None, split)."""
    return {(cell.get("method") or cell["imputer"], cell["imputer"] if cell.get("method") else None,
             cell.get("protocol"), cell["split"]) for cell in json.loads(text) if cell["best"]}


@pytest.fixture
def contest():
    """none xsub: OPSTL 61.11 beats 2s-CrosSCLR 59.88 and SkeletonCLR 56.74; none xview: SkeletonCLR
    (53.00, 53.50: 53.25) ties OPSTL (53.254, printed 53.25); knn xsub: OPSTL 67.11; knn xview: SkeletonCLR
    alone, nothing to beat."""
    return (seeded("skeletonclr", "none", [56.0, 57.48]) + [rec("skeletonclr", "none", "xview", 53.0, seed=0),
            rec("skeletonclr", "none", "xview", 53.5, seed=1), rec("skeletonclr", "knn", "xsub", 57.61),
            rec("skeletonclr", "knn", "xview", 64.43), rec("crossclr", "none", "xsub", 59.88, stream="J+M"),
            rec("opstl", "none", "xsub", 61.11), rec("opstl", "none", "xview", 53.254),
            rec("opstl", "knn", "xsub", 67.11)])


def test_the_best_of_each_column_is_bold_with_ties(contest):
    rows = rows_of(render(contest, "imputers", "markdown"))
    assert rows["OPSTL J"][2:] == ["**61.11**", "**53.25**", "**67.11** (+6.00 ↑)", "–"]
    assert rows["SkeletonCLR J"][2:] == ["56.74 ± 1.05", "**53.25 ± 0.35**", "57.61 (+1.61 ↑)", "64.43 (+11.43 ↑)"]
    assert rows["2s-CrosSCLR J+M"][2] == "59.88"
    latex = render(contest, "imputers", "latex")
    check_latex(latex)
    assert r"OPSTL & J & \textbf{61.11} & \textbf{53.25} & \textbf{67.11} (+6.00 $\uparrow$) & -- \\" in latex
    assert r"\textbf{53.25 $\pm$ 0.35}" in latex and latex.count(r"\textbf") == 4
    assert "Bold: the highest of each column, ties included." in latex
    assert best_cells(render(contest, "imputers", "json")) == {
        ("opstl", "none", "linear", "xsub"), ("opstl", "none", "linear", "xview"),
        ("skeletonclr", "none", "linear", "xview"), ("opstl", "knn", "linear", "xsub")}
    assert {row["best"] for row in csv.DictReader(io.StringIO(render(contest, "imputers", "csv")))} \
        == {"True", "False"}
    plain = render(contest, "imputers", "latex", bold=False)
    assert r"\textbf" not in plain and "Bold" not in plain
    plain_rows = rows_of(render(contest, "imputers", "markdown", bold=False))
    assert plain_rows["OPSTL J"][2] == "61.11" and not any("**" in cell for row in plain_rows.values() for cell in row)
    assert best_cells(render(contest, "imputers", "json", bold=False))  # csv/json keep the field


def test_published_numbers_beside_ours_do_not_compete(contest):
    published = [rec("skeletonclr", "none", "xsub", 99.0, seed=None, source="paper")]
    text = render(contest + published, "imputers", "markdown", compare="paper")
    rows = rows_of(text)
    assert rows["SkeletonCLR J"][2] == "56.74 ± 1.05 / 99.00" and rows["OPSTL J"][2] == "**61.11** / –"
    assert "among ours (the published numbers do not compete)" in text
    # alone, the published numbers are the table, and their best is bold as in the paper
    alone = render(published + [rec("opstl", "none", "xsub", 61.11, seed=None, source="paper")], "imputers")
    assert rows_of(alone)["SkeletonCLR J"][2] == "**99.00**"


def test_protocols_have_a_best_per_protocol():
    records = [rec("skeletonclr", "knn", "xsub", 70.58, protocol="finetune"),
               rec("opstl", "knn", "xsub", 75.43, protocol="finetune"),
               rec("skeletonclr", "knn", "xsub", 57.61), rec("opstl", "knn", "xsub", 67.11),
               rec("skeletonclr", "knn", "xsub", 31.99, protocol="semi1")]
    # one best per protocol (finetune's 75.43 is no rival of linear's 67.11); semi 1% has one number
    assert best_cells(render(records, "protocols", "json")) == {("opstl", "knn", "finetune", "xsub"),
                                                                 ("opstl", "knn", "linear", "xsub")}
    assert "highest of each column within each protocol" in render(records, "protocols", "markdown")


def test_the_quality_layout_bolds_the_lowest_error():
    # xsub: random and knn tie at 410 mm; xview: leaving the zeros (200 mm) beats knn (500 mm)
    errors = [quality("none", "xsub", 3.2), quality("random", "xsub", 0.41), quality("knn", "xsub", 0.41),
              quality("interp", "xsub", 0.9), quality("knn", "xview", 0.5), quality("none", "xview", 0.2)]
    assert best_cells(render(errors, "quality", "json")) == {
        ("random", None, None, "xsub"), ("knn", None, None, "xsub"), ("none", None, None, "xview")}
    text = render(errors, "quality", "markdown")
    rows = {cells[0]: cells[1:] for cells in rows_of(text).values()}
    assert rows["knn"] == ["**410.00**", "500.00"] and rows["random"] == ["**410.00**", "–"]
    assert rows["none"] == ["3200.00", "**200.00**"] and rows["interp"] == ["900.00", "–"]
    assert "Bold: the lowest of each column" in text


def test_several_tables_get_numbered_labels_and_one_keeps_the_name(ours):
    ours.append(rec("opstl", "knn", "xset", 58.25, dataset="ntu120"))
    text = render(ours, "imputers", "latex", label="tab:occluded")
    check_latex(text)
    assert re.findall(r"\\label\{([^}]*)\}", text) == ["tab:occluded-1", "tab:occluded-2"]
    one = render(ours, "imputers", "latex", label="tab:occluded", dataset="ntu60")
    assert re.findall(r"\\caption\{.*\}\n\\label\{([^}]*)\}\n", one) == ["tab:occluded"]
    assert r"\label" not in render(ours, "imputers", "latex")


def test_resizebox_wraps_each_tabular(ours):
    ours.append(rec("opstl", "knn", "xset", 58.25, dataset="ntu120"))
    text = render(ours, "imputers", "latex", resizebox=r"\columnwidth")
    check_latex(text)
    wrapped = re.findall(r"\\resizebox\{\\columnwidth\}\{!\}\{%\n\\begin\{tabular\}.*?\\end\{tabular\}\n\}\n"
                         r"\\end\{table\}", text, re.S)
    assert len(wrapped) == text.count(r"\begin{tabular}") == 2
    for given, width in [("0.9textwidth", r"0.9\textwidth"), (r"\linewidth", r"\linewidth"), ("8.5cm", "8.5cm")]:
        assert rf"\resizebox{{{width}}}{{!}}{{%" in render(ours, "imputers", "latex", resizebox=given, dataset="ntu60")
    assert r"\resizebox" not in render(ours, "imputers", "latex")


def test_bad_latex_options_are_one_line_errors(ours):
    for options, words in [({"resizebox": "wide"}, r"--resizebox 'wide' is not a LaTeX width"),
                           ({"resizebox": "10"}, "is not a LaTeX width"),
                           ({"label": "tab occluded"}, r"--label 'tab occluded': use letters"),
                           ({"label": "tab{x}"}, "use letters, digits"),
                           ({"fmt": "markdown", "label": "t"}, "--label applies only to LaTeX tables"),
                           ({"fmt": "csv", "resizebox": r"\columnwidth", "label": "t"},
                            "--resizebox and --label apply only to LaTeX tables")]:
        with pytest.raises(OccbenchError, match=words) as caught:
            render(ours, **({"layout": "imputers", "fmt": "latex"} | options))
        assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------------ compare


def test_compare_puts_the_published_number_beside_ours(ours, paper):
    text = render(records_frame(ours + paper), "imputers", "markdown", compare="paper")
    row = rows_of(text)["SkeletonCLR J"]
    assert row[2] == "56.74 ± 1.00 / 56.74" and row[5] == "57.61 ± 0.61 (+0.87 ↑) / 57.61"
    assert row[3] == "53.25 / –" and "ours / published" in text and "Someone 2023" in text


def test_without_compare_published_records_stay_out_of_our_tables(ours, paper):
    text = render(ours + paper, "imputers", "markdown")
    assert " / " not in text and "published" not in text.lower()


def test_only_published_records_show_the_published_numbers(paper):
    text = render(paper, "imputers", "markdown", compare="paper")
    assert rows_of(text)["SkeletonCLR J"][2:] == ["56.74", "57.61 (+0.87 ↑)"] and "published numbers" in text


def test_compare_without_published_records_is_an_error(ours):
    with pytest.raises(OccbenchError, match="no published records"):
        render(ours, "imputers", "markdown", compare="paper")


def test_bad_options_are_one_line_errors(ours):
    for kwargs, words in [({"layout": "tables"}, "unknown layout"), ({"fmt": "html"}, "unknown format"),
                          ({"compare": "arxiv"}, "unknown comparison"), ({"colour": "red"}, "unknown filter")]:
        with pytest.raises(OccbenchError, match=words):
            render(ours, **({"layout": "imputers", "fmt": "markdown"} | kwargs))


# ---------------------------------------------------------------------------------------------- CLI


def table(*argv: str) -> None:
    parser = argparse.ArgumentParser(prog="occbench")
    add_table_command(parser.add_subparsers())
    args = parser.parse_args(["table", *argv])
    args.func(args)


def test_an_empty_or_foreign_folder_says_so_in_one_line(tmp_path):
    for folder in (tmp_path / "empty", tmp_path / "foreign"):
        folder.mkdir()
    (tmp_path / "foreign" / "package.json").write_text('{"name": "x"}')
    for folder in (tmp_path / "empty", tmp_path / "foreign"):
        with pytest.raises(OccbenchError) as caught:
            table("--results", str(folder))
        assert str(caught.value).startswith(f"no occbench result records in {folder}: run `occbench run` first")
        assert "\n" not in str(caught.value)


def test_the_command_prints_or_writes_the_table(ours, tmp_path, capsys):
    for record in ours:
        write_record(record, tmp_path / "results" / "runs")
    table("--results", str(tmp_path / "results"), "--layout", "summary", "--format", "csv")
    assert capsys.readouterr().out.startswith("layout,occlusion,protocol")
    table("--results", str(tmp_path / "results"), "--split", "xsub", "--out", str(tmp_path / "t" / "table.tex"),
          "--format", "latex")
    assert "wrote" in capsys.readouterr().out and "\\toprule" in (tmp_path / "t" / "table.tex").read_text()


def test_the_command_takes_the_paper_table_numbers_as_layouts(tmp_path, capsys):
    for record in ablation() + random_occlusion():
        write_record(record, tmp_path / "results" / "runs")
    table("--results", str(tmp_path / "results"), "--layout", "table5", "--compare", "paper")
    out = capsys.readouterr().out
    assert "| stage 1 (imputer)" in out and "**59.79 ± 0.71** / 59.29" in out
    assert out.count("**Top-1") == 2 and "· random occlusion ·" in out  # the knn cells of Table VI: their own table
    table("--results", str(tmp_path / "results"), "--layout", "table6", "--compare", "paper", "--format", "latex")
    out = capsys.readouterr().out
    assert r"\caption{Top-1 accuracy (\%), OPSTL, random occlusion" in out and "/ 55.29" in out and "/ 41.90" in out


def test_the_command_takes_the_severity_layout_a_reference_and_the_pretraining_filter(sweep, tmp_path, capsys):
    sweep += level("opstl", "knn", "random@0.3", [48.0, 49.0, 50.0], 0.3, pretrain="none")
    for record in sweep:
        write_record(record, tmp_path)
    table("--results", str(tmp_path), "--layout", "severity", "--reference", "skeletonclr", "--imputer", "knn",
          "--format", "csv")
    cells = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    opstl = [cell for cell in cells if cell["method"] == "opstl" and cell["pretrain_occlusion"] == cell["occlusion"]]
    assert [cell["occlusion"] for cell in opstl] == ["random@0.1", "random@0.3", "random@0.5"]
    assert {cell["change"] for cell in opstl} == {"2.0"} and {cell["reference"] for cell in cells} == {"skeletonclr"}
    table("--results", str(tmp_path), "--layout", "severity", "--pretrain-occlusion", "none")
    assert "pretrained on no occlusion" in capsys.readouterr().out
    with pytest.raises(OccbenchError, match="the quality layout has none"):
        table("--results", str(tmp_path), "--layout", "quality", "--reference", "opstl")


def test_the_command_warns_about_a_damaged_file_and_goes_on(ours, tmp_path, capsys):
    write_record(ours[0], tmp_path)
    (tmp_path / "half.json").write_text('{"schema": 1')
    table("--results", str(tmp_path))
    captured = capsys.readouterr()
    assert "56.74" not in captured.err and "SkeletonCLR" in captured.out
    assert captured.err.startswith("occbench: warning: skipped ") and "half.json" in captured.err


def test_the_command_takes_bold_resizebox_and_label(ours, tmp_path, capsys):
    for record in ours:
        write_record(record, tmp_path)
    table("--results", str(tmp_path), "--format", "latex", "--resizebox", "--label", "tab:x", "--split", "xsub")
    text = capsys.readouterr().out
    assert r"\resizebox{\columnwidth}{!}{%" in text and r"\label{tab:x}" in text and r"\textbf{67.11}" in text
    table("--results", str(tmp_path), "--format", "latex", "--resizebox", r"\textwidth", "--no-bold")
    text = capsys.readouterr().out
    assert r"\resizebox{\textwidth}{!}{%" in text and r"\textbf" not in text
    with pytest.raises(OccbenchError, match="--resizebox applies only to LaTeX tables"):
        table("--results", str(tmp_path), "--resizebox")


def test_compare_finds_the_published_records_in_the_package(ours, tmp_path, capsys):
    for record in ours:
        write_record(record, tmp_path)
    table("--results", str(tmp_path), "--compare", "paper", "--dataset", "ntu60")
    assert "56.74 ± 1.00 / 56.74" in capsys.readouterr().out


def test_report_and_the_table_command_import_neither_torch_nor_pandas(tmp_path):
    write_record(rec("opstl", "knn", "xsub", 67.11), tmp_path)
    code = ("import argparse, sys; import occbench.report as r; p = argparse.ArgumentParser(); "
            "r.add_table_command(p.add_subparsers()); a = p.parse_args(['table', '--results', sys.argv[1]]); "
            "a.func(a); assert 'torch' not in sys.modules and 'pandas' not in sys.modules, 'heavy import'")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "67.11" in done.stdout


# -------------------------------------------------------------------------------- published numbers


SPLITS = [("ntu60", "xsub"), ("ntu60", "xview"), ("ntu120", "xsub"), ("ntu120", "xset")]
NAMES = {"SkeletonCLR": ("skeletonclr", "J"), "2s-CrosSCLR": ("crossclr", "J+M"), "AimCLR": ("aimclr", "J"),
         "PSTL": ("pstl", "J"), "OPSTL": ("opstl", "J"), "IosPSTL": ("opstl", "J"),
         "3s-CrosSCLR": ("crossclr", "J+M+B"), "AimCLR (joint, released weights)": ("aimclr", "J")}


def markdown_tables(text: str) -> dict[str, list[list[str]]]:
    """Body rows of each '## ' section's table, keyed by the section's first two words."""
    tables = {}
    for section in text.split("\n## ")[1:]:
        lines = [line for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]
        tables[" ".join(section.split()[:2]).rstrip(":")] = [
            [cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[1:]]
    return tables


def published_numbers() -> dict[tuple, tuple[float, float | None]]:
    """(method, stream, imputer, dataset, split, occlusion, protocol) -> (top-1, printed change) from the markdown."""
    tables = markdown_tables(PAPER_MD.read_text())
    numbers = {}

    def put(key, text):
        value, _, change = text.partition(" (")
        numbers.setdefault(key, []).append((float(value), float(change.rstrip(")")) if change else None))

    for name, dataset, splits in [("Table II", "ntu60", ("xsub", "xview")), ("Table III", "ntu120", ("xsub", "xset"))]:
        columns = [(imputer, split) for imputer in ("none", "random", "knn") for split in splits]
        for row in tables[name]:
            for (imputer, split), text in zip(columns, row[2:], strict=True):
                put((*NAMES[row[0]], imputer, dataset, split, "realistic", "linear"), text)
    for row in tables["Table I"]:
        for (dataset, split), text in zip(SPLITS, row[2:], strict=True):
            put((*NAMES[row[0]], "knn" if row[0] == "IosPSTL" else "none", dataset, split, "realistic", "linear"), text)
    protocols = {"finetune": "finetune", "semi 1%": "semi1", "semi 10%": "semi10"}
    for row in tables["Table IV"]:
        for (dataset, split), text in zip(SPLITS, row[3:], strict=True):
            put((*NAMES[row[1]], "knn", dataset, split, "realistic", protocols[row[0]]), text)
    for row in tables["Table VI"]:
        for (dataset, split), text in zip(SPLITS, row[1:], strict=True):
            put(("opstl", "J", {"non-imputed": "none", "imputed": "knn"}[row[0]], dataset, split, "random", "linear"),
                text)
    for row in tables["Clean (non-occluded)"]:
        for (dataset, split), text in zip(SPLITS, row[1:], strict=True):
            if text != "-":
                put((*NAMES[row[0]], "none", dataset, split, "none", "linear"), text)
    return numbers


needs_paper = pytest.mark.skipif(not PAPER_MD.exists(), reason=f"{PAPER_MD} not found")


NEW_METHODS_MD = PAPER_MD.parent / "new-methods.md"


@pytest.mark.skipif(not NEW_METHODS_MD.exists(), reason=f"{NEW_METHODS_MD} not found")
def test_the_masked_transformer_records_hold_the_numbers_of_the_research_notes():
    """SkeletonMAE §1.1 and MAMP §2.7 of new-methods.md, in the order of their sentences: NTU-60 xsub,
    xview, NTU-120 xsub, xset (semi-supervised: NTU-60 only)."""
    import re

    text = NEW_METHODS_MD.read_text()
    mae = text[text.index("Later numbers quoted for"):text.index("The two fine-tune sets disagree")]
    mamp = text[text.index("Paper values as reprinted in DIMOP"):text.index("transfer to PKU-II")]

    def numbers(passage, start, stop):
        piece = passage[passage.index(start):passage.index(stop, passage.index(start))]
        return [float(n) for n in re.findall(r"(?<![\d.])(\d{2}\.\d)(?![\d.])", piece)]

    expected = {
        ("skeletonmae", "linear"): numbers(mae, "linear (joint)", "\n"),
        ("skeletonmae", "finetune"): numbers(mae, "fine-tune:", "\n"),
        ("skeletonmae", "semi1"): numbers(mae, "1 % labels", "10 %"),
        ("skeletonmae", "semi10"): numbers(mae, "10 % labels", "\n"),
        ("mamp", "linear"): numbers(mamp, "linear", "; fine-tune"),
        ("mamp", "finetune"): numbers(mamp, "fine-tune", "; semi"),
        ("mamp", "semi1"): numbers(mamp, "1 %:", "10 %"),
        ("mamp", "semi10"): numbers(mamp, "10 %:", ";"),
    }
    held: dict = {}
    for record in load_records(PAPER_RECORDS):
        if record["provenance"]["tables"] == ["masked-transformers"]:
            cell = record["cell"]
            assert cell["occlusion"] == "none" and cell["imputer"] == "none" and cell["seed"] is None
            held.setdefault((cell["method"], cell["protocol"]), []).append(
                ((cell["dataset"], cell["split"]), record["metrics"]["top1"]))
    assert set(held) == set(expected)
    for key, values in expected.items():
        assert held[key] == list(zip(SPLITS[:len(values)], values, strict=True)), key


@needs_paper
def test_the_paper_records_hold_exactly_the_published_numbers():
    published = published_numbers()
    records = [r for r in load_records(PAPER_RECORDS) if r["provenance"]["tables"] != ["masked-transformers"]]
    assert len(records) == 138 and len(published) == 138  # Table I repeats 20 numbers of Tables II and III
    assert sum(len(values) for values in published.values()) == 158
    held = {}
    for record in records:
        cell, metrics = record["cell"], record["metrics"]
        key = tuple(cell[name] for name in ("method", "stream", "imputer", "dataset", "split", "occlusion", "protocol"))
        assert key not in held and record["provenance"]["source"] == "paper" and cell["seed"] is None
        held[key] = (metrics["top1"], metrics.get("top1_change_abs"))
    assert set(held) == set(published)
    for key, values in published.items():
        assert all(value == held[key][0] for value, _ in values), key  # Table I agrees with Tables II/III
        if key[6] != "linear":  # Table IV: the printed change is the unsigned change_abs
            assert held[key][1] == values[0][1], key


@needs_paper
def test_the_paper_tables_render_the_published_changes():
    frame = records_frame(PAPER_RECORDS)
    text = render(frame, "imputers", "markdown", occlusion="realistic", bold=False)
    cells = {cell for line in text.splitlines() for cell in map(str.strip, line.split("|"))}
    checked = 0
    for key, values in published_numbers().items():
        value, change = values[0]  # Tables II/III come first; Table I prints no change
        if key[5] == "realistic" and key[6] == "linear" and change is not None:
            arrow = "↑" if change > 0 else "↓"
            assert f"{value:.2f} ({change:+.2f} {arrow})" in cells, key
            checked += 1
    assert checked == 40


@needs_paper
def test_table_five_has_no_published_numbers_to_hold():
    """The text we hold of the paper lost Table V's numbers (its ablation sentences lost theirs too), so no
    record holds them and `--compare paper` shows a dash there; should they turn up in paper-results.md,
    this fails until they are records too."""
    assert "Table V" not in markdown_tables(PAPER_MD.read_text())
    assert not [r for r in load_records(PAPER_RECORDS) if "V" in r["provenance"]["tables"]]


@needs_paper
def test_the_paper_table_six_renders_as_published():
    text = render(load_records(PAPER_RECORDS), "table6", "markdown", occlusion="random", bold=False)
    rows = {cells[0]: cells for cells in rows_of(text).values()}
    names = {"non-imputed": "no imputation", "imputed": "cluster-agnostic KNN imputer"}
    for row in markdown_tables(PAPER_MD.read_text())["Table VI"]:
        shown = rows[names[row[0]]][1:]
        assert [cell.split(" (")[0] for cell in shown] == [f"{float(number):.2f}" for number in row[1:]]


@needs_paper
def test_the_paper_summary_is_table_one():
    text = render(load_records(PAPER_RECORDS), "summary", "markdown", occlusion="realistic", bold=False)
    rows = rows_of(text)
    for row in markdown_tables(PAPER_MD.read_text())["Table I"]:
        assert rows[f"{row[0]} {row[1]}"][2:] == [f"{float(number):.2f}" for number in row[2:]]


@pytest.mark.parametrize("layout", ["imputers", "protocols", "summary", "quality", "severity", "stages", "imputation"])
def test_latex_tables_compile_with_pdflatex_and_booktabs(layout, ours, sweep, tmp_path):
    """What users paste into papers: ours beside the published numbers, each layout with the best in bold,
    scaled to the column and labelled, in a minimal document that loads booktabs and graphicx and nothing
    else. CI installs pdflatex and sets OCCBENCH_REQUIRE_PDFLATEX, so there this cannot skip."""
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        if os.environ.get("OCCBENCH_REQUIRE_PDFLATEX"):
            pytest.fail("pdflatex is not installed (OCCBENCH_REQUIRE_PDFLATEX is set)")
        pytest.skip("pdflatex is not installed")
    errors = [quality("none", "xsub", 3.2), quality("knn", "xsub", 0.41), quality("random", "xsub", 0.6)]
    body = render(ours + sweep + errors + ablation() + random_occlusion() + load_records(PAPER_RECORDS), layout,
                  "latex", compare="paper",
                  resizebox=r"\columnwidth", label=f"tab:{layout}")
    labels = re.findall(r"\\label\{([^}]*)\}", body)
    assert len(set(labels)) == len(labels) == body.count(r"\begin{tabular}") == body.count(r"\resizebox{\columnwidth}")
    assert r"\textbf{" in body
    document = ("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n\\begin{document}\n"
                + body + "\n\\end{document}\n")
    (tmp_path / "tables.tex").write_text(document, encoding="utf-8")
    for _ in range(2):  # the second run reads the labels back, and warns of any defined twice
        done = subprocess.run([pdflatex, "-halt-on-error", "-interaction=nonstopmode", "tables.tex"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "tables.pdf").stat().st_size > 1000
    log = (tmp_path / "tables.log").read_text(encoding="latin-1")
    problems = [line for line in log.splitlines() if line.startswith("!") or "LaTeX Error" in line
                or "multiply defined" in line or "Overfull \\hbox" in line or "Undefined control" in line]
    assert not problems, problems
