"""The `occbench` command line. Heavy modules are imported inside the commands so `--help` is instant."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from occbench import __version__, paths
from occbench.errors import OccbenchError

WHERE = f"""where things go (the same for every command):
  results       {paths.DEFAULT_RESULTS}/ in the current folder (--results); `occbench table` reads it
  stage cache   $OCCBENCH_HOME/work (--work)
  embedded data $OCCBENCH_HOME/embedded
  OCCBENCH_HOME defaults to {paths.DEFAULT_HOME}"""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as end:  # a usage error (already printed, in one line) or --help: its exit code
        return end.code if isinstance(end.code, int) else 2
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        args.func(args)
    except OccbenchError as err:
        print(f"occbench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("occbench: interrupted; completed stages are kept, re-run to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left early (`occbench plugins | head -1`): nothing to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 141  # as a shell reports a process ended by SIGPIPE
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="occbench", description="Self-supervised skeleton action recognition under occlusion."
    )
    parser.add_argument("--version", action="version", version=f"occbench {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND")
    data = commands.add_parser("data", help="make, prepare, occlude, preprocess and look at skeleton data")
    data_commands = data.add_subparsers(metavar="STEP")
    data.set_defaults(func=lambda _: data.print_help())

    p = data_commands.add_parser("pipeline", help="the embedded default: synth, prepare, occlude, preprocess, show")
    p.add_argument("--home", type=Path, help=f"where data is cached (default: $OCCBENCH_HOME or {paths.DEFAULT_HOME})")
    p.add_argument("--occlusion", default="realistic",
                   help="realistic, random or inferred, or with a severity: random@0.3 (default realistic)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--show", type=Path, default=Path("occbench-sample.png"), help="picture of one occluded sample")
    p.set_defaults(func=_pipeline)

    p = data_commands.add_parser("synth", help="write the procedural NTU-like dataset as .skeleton files")
    p.add_argument("--out", type=Path, required=True)
    for name, default in _synth_defaults().items():
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=default, help=f"default {default}")
    p.set_defaults(func=_synth)

    p = data_commands.add_parser("prepare", help="raw .skeleton folder -> arrays with the official splits")
    p.add_argument("--raw", type=Path, required=True, help="folder of .skeleton files (searched recursively)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--benchmark", choices=["ntu60", "ntu120", "synthetic"],
                   help="default: synthetic when --raw holds synthetic.json")
    p.add_argument("--skip-invalid", action="store_true", help="skip malformed files, listed in prepare_report.txt")
    p.add_argument("--workers", type=int, help="parsing processes (default: the available cores, at most 8)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_prepare)

    p = data_commands.add_parser("import", help="CrosSCLR/AimCLR/OPSTL .npy+.pkl or CTR-GCN .npz -> occbench")
    p.add_argument("path", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--benchmark", choices=["ntu60", "ntu120"], help="default: from the number of classes")
    p.add_argument("--keep-zeros", action="store_true",
                   help="treat x=y=z=0 joints as real positions, not as occluded (default: occluded)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_import)

    p = data_commands.add_parser("export", help="occbench dataset -> CrosSCLR/AimCLR .npy+.pkl or CTR-GCN/MAMP .npz")
    p.add_argument("dataset", type=Path, help="a prepared dataset (clean, occluded, imputed or preprocessed)")
    p.add_argument("--layout", required=True, help="crossclr ({split}/train_data.npy ...) or ctrgcn (NTU60_CS.npz ...)")
    p.add_argument("--out", type=Path, required=True, help="the folder to write")
    p.add_argument("--split", action="append", help="a split to write, repeatable (default: every split the "
                   "layout can express)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_export)

    p = data_commands.add_parser("occlude", help="apply realistic, random or Kinect-inferred occlusion")
    p.add_argument("--data", type=Path, required=True, help="a prepared dataset (camera space, before preprocess)")
    p.add_argument("--kind", required=True,
                   help="realistic, random or inferred, or with a severity in [0, 1]: random@0.3 (the fraction "
                        "of joints), realistic@0.2 (the furniture density)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fraction", type=float, help="random: the fraction of joints occluded (default 0.3)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_occlude)

    p = data_commands.add_parser("preprocess", help="relative coordinates, resize, y-rotation (--pipeline)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--pipeline", default="mask-aware",
                   help="mask-aware (default: occluded joints never enter the arithmetic, every frame rotated "
                        "exactly) or published (the CrosSCLR/AimCLR feeder's arithmetic, zeros and all)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_preprocess)

    p = data_commands.add_parser("show", help="draw a few frames of a sample, occluded joints marked")
    p.add_argument("sample", help="a .skeleton file, or a sample name or index in --data")
    p.add_argument("--data", type=Path, help="a prepared dataset")
    p.add_argument("--out", type=Path, required=True, help="the picture (.png)")
    p.add_argument("--frames", type=int, default=4)
    p.set_defaults(func=_show)

    p = data_commands.add_parser("info", help="summary of a prepared dataset: samples, splits, occlusion")
    p.add_argument("data", type=Path)
    p.set_defaults(func=_info)

    p = commands.add_parser("run", help="run a benchmark grid (default: the quick grid on the embedded dataset)",
                            epilog=WHERE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="quick", help="a suite of the catalogue: quick (default), robustness, "
                   "table1 to table6, or one of --registry's")
    p.add_argument("--methods", type=_names, help="comma-separated, or all")
    p.add_argument("--imputers", type=_names, help="e.g. none,interp,knn")
    p.add_argument("--protocols", type=_names, help="e.g. linear,semi1,semi10,finetune")
    p.add_argument("--datasets", type=_names, help="e.g. synthetic/xsub or ntu60 (all its splits)")
    p.add_argument("--occlusion", type=_specs, metavar="SPEC[,SPEC...]",
                   help="what the protocol evaluates on: realistic, random, inferred or none, a kind with a "
                   "severity in [0, 1] (random@0.3, realistic@0.2), or several levels, e.g. random@0.1,random@0.3")
    p.add_argument("--pretrain-occlusion", metavar="SPEC",
                   help="pretrain every encoder on this occlusion instead, e.g. none (default: each --occlusion)")
    p.add_argument("--profile", help="hyperparameter profile: paper or quick")
    p.add_argument("--seeds", type=_seeds, help=f"e.g. 0,1,2 (0 to {MAX_SEED})")
    p.add_argument("--data", action="append", default=[], metavar="DATASET=DIR",
                   help="where a prepared dataset is, e.g. ntu60=~/data/occbench/ntu60")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override any profile value, e.g. pretrain.epochs=10 methods.pstl.lambd=1e-3")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--launcher", choices=["local", "slurm"], default="local",
                   help="local: this machine (default); slurm: one submitit job per stage")
    p.add_argument("--slots", type=_positive, help="local: stages run in parallel (default: one per GPU; on CPU one "
                   "per core, at most 4; 1: one after another in this process)")
    p.add_argument("--gpus-per-cell", type=_positive, default=1,
                   help="processes per pretraining, data parallel through torchrun (one GPU each; gloo on CPU)")
    p.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="submitit parameter, e.g. slurm_partition=gpu timeout_min=600 (cluster=debug: in-process)")
    p.add_argument("--results", type=Path, default=paths.DEFAULT_RESULTS,
                   help=f"where result records go (default {paths.DEFAULT_RESULTS}/)")
    p.add_argument("--work", type=Path, help="stage cache (default $OCCBENCH_HOME/work)")
    p.add_argument("--registry", type=Path, help="a catalogue to use instead of the built-in one (a copy of "
                   "occbench/registry.yaml; `occbench plugins` prints where it is)")
    p.add_argument("--dry-run", action="store_true", help="print the plan: every stage, cached or to run")
    p.add_argument("--disable-plugin", action="append", default=[], metavar="NAME", help="block a plugin")
    p.set_defaults(func=_run)

    p = commands.add_parser("impute", help="fill occluded joints (none, random, knn, or a plugin's); report the "
                            "error on them")
    p.add_argument("--imputer", required=True, help="none, interp, meanpose, random, knn (or a plugin's)")
    p.add_argument("--data", type=Path, required=True, help="occluded dataset (raw-length or preprocessed)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--split", help="default: every split")
    p.add_argument("--frames-data", type=Path, help="the preprocessed occluded dataset knn embeds (default: --data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clusters", help="knn: a number or num_class (default)")
    p.add_argument("--neighbors", type=int, help="knn: donors per missing joint (default 5)")
    p.add_argument("--variant", choices=["donor", "uniform"], help="random: donor (default) or uniform")
    p.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                   help="any of the imputer's settings (a profile's imputers.NAME.KEY), e.g. max_iter=50")
    p.add_argument("--compare", type=_names,
                   help="imputers reported beside it, e.g. none,random (default: the one that leaves the zeros, none)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_impute)

    from occbench.plot import add_plot_command
    from occbench.report import add_table_command

    add_table_command(commands)
    add_plot_command(commands)

    p = commands.add_parser("plugins", help="list the installed plugins and what each registered")
    p.add_argument("--disable-plugin", action="append", default=[], metavar="NAME", help="block a plugin")
    p.set_defaults(func=_plugins)
    return parser


def _synth_defaults() -> dict[str, int]:
    from dataclasses import asdict

    from occbench.data.synth_config import SynthConfig

    return asdict(SynthConfig())


def _synth(args) -> None:
    from occbench.data.synth import SynthConfig, synthesize

    config = SynthConfig(**{name: getattr(args, name) for name in _synth_defaults()})
    files = synthesize(args.out, config, progress=True)
    print(f"wrote {len(files)} .skeleton files to {args.out}")
    print(f"next: occbench data prepare --raw {args.out} --out DIR")


def _prepare(args) -> None:
    from occbench.data.prepare import prepare

    dataset = prepare(args.raw, args.out, args.benchmark, skip_invalid=args.skip_invalid,
                      overwrite=args.overwrite, workers=args.workers, progress=True)
    print(_summary(dataset))
    skipped = dataset.meta["source"]["skipped"]
    if skipped:
        print(f"skipped {skipped} invalid file(s): listed in {dataset.path / 'prepare_report.txt'}")


def _import(args) -> None:
    from occbench.data.layouts import import_layout

    dataset = import_layout(args.path, args.out, benchmark=args.benchmark,
                            zeros_are_occluded=not args.keep_zeros, overwrite=args.overwrite, progress=True)
    print(_summary(dataset))


def _export(args) -> None:
    from occbench.data.export import export_layout

    out = export_layout(args.dataset, args.layout, args.out, splits=args.split, overwrite=args.overwrite,
                        progress=True)
    print(f"wrote {args.layout} layout to {out}")


def _occlude(args) -> None:
    from occbench.data.dataset import SkeletonDataset
    from occbench.data.occlusion import occlude, occlusion_report

    params = {} if args.fraction is None else {"fraction": args.fraction}
    dataset = occlude(SkeletonDataset(args.data), args.out, args.kind, seed=args.seed,
                      overwrite=args.overwrite, progress=True, **params)
    print(_summary(dataset))
    print(_report_table(occlusion_report(dataset)))


def _preprocess(args) -> None:
    from occbench.data.dataset import SkeletonDataset
    from occbench.data.preprocess import preprocess

    dataset = preprocess(SkeletonDataset(args.data), args.out, frames=args.frames,
                         overwrite=args.overwrite, progress=True, pipeline=args.pipeline)
    print(_summary(dataset))


def _show(args) -> None:
    from occbench.data.show import show_sample

    print(f"wrote {show_sample(args.sample, args.out, data=args.data, frames=args.frames)}")


def _info(args) -> None:
    from occbench.data.dataset import SkeletonDataset
    from occbench.data.occlusion import occlusion_report

    dataset = SkeletonDataset(args.data)
    print(_summary(dataset))
    stages = " -> ".join(stage["stage"] + (f"({stage['kind']})" if "kind" in stage else "")
                         for stage in dataset.meta.get("stages", []))
    print(f"stages: {stages}")
    print(_report_table(occlusion_report(dataset)))


def _pipeline(args) -> None:
    import numpy as np

    from occbench.data.embedded import embedded_datasets
    from occbench.data.occlusion import occlusion_report
    from occbench.data.show import show_sample

    sets = embedded_datasets(home=args.home, occlusion=args.occlusion, seed=args.seed, progress=True)
    for role, dataset in sets.items():
        print(f"{role:>14}: {dataset.path}")
    print(_summary(sets["occluded"]))
    print(_report_table(occlusion_report(sets["occluded_raw"])))
    occluded = sets["occluded_raw"]
    # A typical picture: the sample whose occluded fraction is nearest a third.
    hidden = (occluded.present[:, :, None, :] & ~occluded.mask).sum(axis=(1, 2, 3))
    fraction = hidden / np.maximum(occluded.present.sum(axis=(1, 2)) * 25, 1)
    typical = int(np.abs(fraction - 1 / 3).argmin())
    print(f"wrote {show_sample(occluded.names[typical], args.show, data=occluded.path)}")


def _key_value(item: str, option: str) -> tuple[str, object]:
    import yaml

    key, sep, value = item.partition("=")
    if not sep or not key:
        raise OccbenchError(f"{option} {item!r}: expected KEY=VALUE, e.g. timeout_min=600")
    return key, yaml.safe_load(value)


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more comma-separated names, or all")
    return names


def _specs(text: str) -> list[str]:
    """Comma-separated occlusion specs (checked when the grid is planned: occbench.plan.occlusion_spec)."""
    specs = [spec.strip() for spec in text.split(",") if spec.strip()]
    if not specs:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more comma-separated occlusions, e.g. "
                                         "random@0.1,random@0.3")
    return specs


MAX_SEED = 2**32 - 1  # numpy's generators take seeds below 2**32


def _seeds(text: str) -> list[int]:
    seeds = []
    for item in _names(text):
        try:
            seed = int(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not a whole number; e.g. --seeds 0,1,2") from None
        if not 0 <= seed <= MAX_SEED:
            raise argparse.ArgumentTypeError(f"{seed}: seeds go from 0 to {MAX_SEED}")
        seeds.append(seed)
    return seeds


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: use 1 or more")
    return value


def _run(args) -> None:
    from occbench.catalogue import load_catalogue
    from occbench.plan import build_stages, resolve_grid
    from occbench.plugins import load_plugins

    host = load_plugins(disabled=args.disable_plugin)
    catalogue = load_catalogue(args.registry)
    grid = resolve_grid(catalogue, host, args.suite, methods=args.methods, imputers=args.imputers,
                        protocols=args.protocols, datasets=args.datasets, occlusion=args.occlusion,
                        pretrain_occlusion=args.pretrain_occlusion, profile=args.profile, seeds=args.seeds,
                        overrides=args.cfg_options, world_size=args.gpus_per_cell)
    sources = {}
    for item in args.data:
        name, sep, folder = item.partition("=")
        if not sep:
            raise OccbenchError(f"--data {item!r}: expected DATASET=DIR, e.g. ntu60=~/data/occbench/ntu60")
        sources[name] = str(Path(folder).expanduser().resolve())
    stages = build_stages(grid, catalogue, host, sources)
    work = paths.work_folder(args.work)
    _execute(stages, work, args, host, grid)


def _execute(stages, work, args, host, grid) -> None:
    import torch

    from occbench.launchers import default_slots, failure_summary, run_local, submit_slurm, wait_debug_jobs
    from occbench.runner import Context, is_done, run_stage

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise OccbenchError(f"--device {device}: use cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise OccbenchError(f"--device {device}: no CUDA device on this machine; use --device cpu")
    folders = (("--results", Path(args.results)), ("--work", Path(work)))
    for option, folder in folders:
        if folder.exists() and not folder.is_dir():  # found now, not after the first pretraining
            raise OccbenchError(f"{option} {folder}: a file, not a folder; choose another {option}")
    context = Context(work=work, results=args.results, host=host, device=device, disabled=tuple(args.disable_plugin))
    done = [stage for stage in stages if is_done(stage, context)]
    cells = sum(stage.kind == "evaluate" for stage in stages)
    slots = args.slots or default_slots([s for s in stages if s not in done], device, args.gpus_per_cell)
    where = f"{slots} slots" if args.launcher == "local" and slots > 1 else args.launcher
    print(f"plan: {len(stages)} stages ({cells} result cells), {len(done)} already done; {where}; work {work}")
    print(f"occlusion: {_occlusion_levels(grid)}")
    if args.dry_run:
        for stage in stages:
            print(f"  {'cached' if stage in done else 'to run':>6}  {stage.kind:<8} {stage.key}  {stage.label}")
        return
    for option, folder in folders:
        _check_writable(folder, option)
    for stage in done:  # cached: nothing runs, but their records join this run's results folder
        run_stage(stage, context)
    if args.launcher == "slurm":
        options = dict(_key_value(item, "--slurm-option") for item in args.slurm_option)
        folder = paths.slurm_folder(work)
        jobs = submit_slurm(stages, context, folder, options, gpus_per_cell=args.gpus_per_cell)
        if options.get("cluster") != "debug":
            print(f"submitted {len(jobs)} jobs ({', '.join(job.job_id for job in jobs.values()) or 'none'}); "
                  f"logs in {folder}; when they finish: occbench table --results {args.results}")
            return
        failures = wait_debug_jobs(jobs, stages)
    else:
        failures = run_local(stages, context, slots=slots, gpus_per_cell=args.gpus_per_cell)
    if any(stage.kind == "evaluate" and is_done(stage, context) for stage in stages):
        _print_tables(stages, args, grid)
    if failures:
        raise OccbenchError(failure_summary(failures, stages, context))


def _check_writable(folder: Path, option: str) -> None:
    """A results or work folder that cannot be written (read-only, not ours, a full disk): found now, not
    after the first pretraining."""
    import tempfile

    from occbench.errors import write_error

    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise write_error(folder, err, option) from None


def _occlusion_levels(grid) -> str:
    """The grid's occlusions as the plan names them: each level, and `A -> B` where the encoder is
    pretrained on A and evaluated on B."""
    return ", ".join(evaluated if pretrained == evaluated else f"{pretrained} -> {evaluated}"
                     for pretrained, evaluated in grid.occlusion_pairs())


def _print_tables(stages, args, grid) -> None:
    import pandas as pd

    from occbench.report import render
    from occbench.store import records_frame

    frame = records_frame(args.results)

    def profiles(kind: str) -> list[str]:  # the profile, or it with --cfg-options where they changed a cell
        present = set(frame["profile"])  # records cached before cells named their overrides say the profile
        return [p for p in dict.fromkeys(stage.cell.profile for stage in stages if stage.kind == kind) if p in present]

    def levels(kind: str) -> list[str]:  # the occlusion levels of this run's cells, one table each
        return list(dict.fromkeys(stage.cell.occlusion for stage in stages if stage.kind == kind))

    def recorded(**cell) -> bool:  # a table only where some record has these cell values
        return bool(frame[[name for name in cell]].eq(pd.Series(cell)).all(axis=1).any())

    print("\n\n".join(render(frame, "imputers", "markdown", profile=profile, occlusion=occlusion, protocol=protocol)
                      for profile in profiles("evaluate") for occlusion in levels("evaluate")
                      for protocol in grid.protocols if recorded(profile=profile, occlusion=occlusion,
                                                                 protocol=protocol)))
    for profile in profiles("impute"):
        for occlusion in levels("impute"):
            if recorded(profile=profile, occlusion=occlusion, protocol="imputation"):
                print("\n" + render(frame, "quality", "markdown", profile=profile, occlusion=occlusion))


def _impute(args) -> None:
    import yaml

    from occbench.impute import impute_command

    settings = {}
    if args.clusters:
        settings["clusters"] = int(args.clusters) if args.clusters.isdigit() else args.clusters
    if args.neighbors:
        settings["n_neighbors"] = args.neighbors
    if args.variant:
        settings["variant"] = args.variant
    for item in args.setting:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OccbenchError(f"--setting {item!r}: expected KEY=VALUE, e.g. --setting max_iter=50")
        settings[key] = yaml.safe_load(value)
    result = impute_command(args.imputer, args.data, args.out, split=args.split, frames=args.frames_data,
                            seed=args.seed, settings=settings, compare=tuple(args.compare) if args.compare else None,
                            overwrite=args.overwrite, progress=True)
    for split, made in result["outputs"].items():
        print(f"{split}: imputed {made['data']}, preprocessed {made['frames']}")
    print(result["report"] or "no ground truth at this frame count: no quality report")


def _plugins(args) -> None:
    from tabulate import tabulate

    from occbench.plugins import load_plugins

    host = load_plugins(disabled=args.disable_plugin)
    rows = [
        (info.name, info.distribution, info.version,
         "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.registered.items()) or "-")
        for info in host.plugins
    ]
    print(tabulate(rows, headers=["plugin", "distribution", "version", "registered"], tablefmt="simple"))
    print(f"\ncatalogue: {paths.CATALOGUE}  (copy it to change suites or profiles; pass the copy with --registry)")


def _summary(dataset) -> str:
    meta = dataset.meta
    splits = ", ".join(
        f"{split} {len(parts['train'])}/{len(parts['val'])}" for split, parts in dataset.splits.items()
    )
    return (f"{dataset.path}: {meta['benchmark']}, {len(dataset)} samples, {meta['num_class']} classes, "
            f"{dataset.frames} frames; train/val: {splits}")


def _report_table(report) -> str:
    from tabulate import tabulate

    return tabulate(report, headers="keys", tablefmt="simple", floatfmt=".3f", showindex=False)


if __name__ == "__main__":
    sys.exit(main())
