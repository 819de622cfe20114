"""mnistcnn: train the same CNN in PyTorch and in Keras (on TensorFlow or JAX) on MNIST and
compare them honestly (same weights, batches and rules, paired statistics over seeds),
reproduce the reference reports' studies, and check that the backends compute the same function.

The command line parses arguments and calls the library; nothing else lives here. Each
subcommand is a function `cmd_<name>` registered by `@command` with its help text and
the function that declares its arguments, which stands just above it; `make_parser`
builds one subparser per registered command, in the order they are registered."""
from __future__ import annotations

import argparse
import errno
import functools
import os
import re
import shlex
import sys
from collections.abc import Callable
from typing import NamedTuple

from .backends import BACKENDS, PAIR
from .errors import MnistCnnError


class Command(NamedTuple):
    run: Callable  # cmd_<name>(args) -> exit status
    add_args: Callable | None  # declares the command's arguments on its subparser
    help: str  # its line in `mnistcnn --help`
    description: str | None  # the top of `mnistcnn <name> --help`


#: every subcommand by name, in the order `mnistcnn --help` lists them
COMMANDS: dict[str, Command] = {}


def command(name: str, add_args: Callable | None = None, *, help: str, description: str | None = None):
    """Register the decorated function as the subcommand ``name``."""
    def register(run):
        COMMANDS[name] = Command(run, add_args, help, description)
        return run
    return register


# --- arguments several commands share -------------------------------------------------

def _add_model_args(p, required: bool = True):
    p.add_argument("model", nargs="?", metavar="MODEL",  # "?": --arch/--spec may name it instead
                   help="a zoo name (see `mnistcnn zoo`; e.g. seed000-cnn, bottleneck-cnn:features=8) or a "
                        "spec JSON file" + ("" if required else " (optional)"))
    p.add_argument("--arch", dest="arch_flag", help=argparse.SUPPRESS)  # older spellings of MODEL
    p.add_argument("--spec", help=argparse.SUPPRESS)


def _spec(args):
    """The model the user named: one MODEL, a zoo name or a spec JSON file (--arch and
    --spec are older spellings of the same, kept working)."""
    from . import spec
    from .errors import ConfigError

    given = [v for v in (args.model, args.arch_flag, args.spec) if v]
    if len(given) != 1:
        raise ConfigError("Name one model: a zoo name (see `mnistcnn zoo`) or a spec JSON file, e.g. "
                          f"`mnistcnn {args.command} seed000-cnn`." + (f" Received {given}." if given else ""))
    name = given[0]
    if args.spec:
        return spec.load(name)
    from .importers import load_model

    return load_model(name)[0]  # a zoo name, a spec JSON, a .keras or TorchScript file, module:Class


#: --backend's choices beyond one backend: both (the reports' two frameworks), all
BACKEND_GROUPS = {"both": PAIR, "all": tuple(BACKENDS)}


def _add_backend_arg(p, helptext: str, also: tuple = ()) -> None:
    """--backend: one backend, both or all (default both), or one of ``also``."""
    p.add_argument("--backend", choices=(*also, *BACKENDS, *BACKEND_GROUPS), default="both", help=helptext)


def _backends(args) -> tuple:
    return BACKEND_GROUPS.get(args.backend, (args.backend,))


def _add_backends_arg(p, what: str) -> None:
    """--backends B1,B2,... (default torch,keras)."""
    p.add_argument("--backends", type=_backend_list, default=PAIR, metavar="B1,B2,...",
                   help=f"{what} (default {','.join(PAIR)})")


def _backend_list(text: str) -> tuple:
    """--backends torch,keras,jax"""
    names = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown backend(s) {', '.join(map(repr, unknown)) or repr(text)}: "
                                         f"expected a comma-separated list of {', '.join(BACKENDS)}")
    return names


def _add_data_dir_arg(p) -> None:
    p.add_argument("--data-dir", type=_path, help="directory of the MNIST IDX files (else $MNISTCNN_DATA_DIR, then "
                                                  "the cache)")


def _path(text: str) -> str:
    """A file or directory the user names: an empty one would mean the working directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: name a file or directory")
    return text


def _count(text: str) -> int:
    """A number of things the command line uses itself (the library never sees it): >= 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return n


def _config_fields():
    from dataclasses import fields

    from .config import TrainConfig

    return {f.name: f for f in fields(TrainConfig)}


def _add_config_args(p, leave_out: tuple = ()):
    """One flag per TrainConfig field (--batch-size for batch_size): its type from the field's
    annotation (so a flag cannot be typed differently from the field it fills), its choices
    and help text from config.CHOICES and config.HELP. Every flag defaults to None, so
    that the config can tell a flag given from one left out. ``leave_out``: the fields
    that the command decides itself (no flag: giving one is an error, not ignored)."""
    import typing

    from . import config

    hints = typing.get_type_hints(config.TrainConfig)
    for name in _config_fields():
        if name in leave_out:
            continue
        flag, kind = "--" + name.replace("_", "-"), hints[name]
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)  # X | None -> X
        helptext = config.HELP[name]
        if base is bool:
            p.add_argument(flag, action="store_true", default=None, help=helptext)
        elif base is tuple:  # a list of values: choices, or integers
            p.add_argument(flag, nargs="+", help=helptext,
                           **({"choices": config.CHOICES[name]} if name in config.CHOICES else {"type": int}))
        elif name in config.CHOICES:
            p.add_argument(flag, choices=config.CHOICES[name], help=helptext)
        else:
            p.add_argument(flag, type=base, help=helptext, metavar=name.upper())


def _config(args):
    """The TrainConfig the flags given fill; unset flags keep its defaults. It validates
    them, and refuses a flag given that does not apply (e.g. --momentum with Adam, even at 0)."""
    from .config import TrainConfig

    names = _config_fields()
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    cfg = TrainConfig(**given)
    cfg.check_applies(given)
    return cfg


def _add_run_args(p, workers: int, leave_out: tuple = ()):
    """What compare and sweep share: the training settings, backends, seeds and execution."""
    from .runner import EXECUTORS

    _add_config_args(p, leave_out)
    _add_backends_arg(p, "the backends to compare, every pair paired by seed: torch, keras (Keras on "
                         "TensorFlow), jax (Keras on JAX)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per backend and variant (default 3)")
    p.add_argument("--workers", type=int, default=workers,
                   help=f"runs at a time, each worker a process of its own (default {workers})")
    p.add_argument("--in-process", action="store_true",
                   help="run everything in this process (quick smoke runs; timings less fair)")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: on this machine, a process per worker that runs its consecutive runs of one "
                        "backend (default); fresh: a new process for every run; ray: each run a Ray task, "
                        "on a local Ray instance or the cluster at --address (needs the ray extra)")
    p.add_argument("--address", help="with --executor ray: the cluster to join, e.g. ray://head:10001 or auto "
                                     "(default: start a local instance)")
    _add_data_dir_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _int_list(text: str) -> tuple:
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,2,3, got {text!r}") from None


# --- the commands, each below the function that declares its arguments ---------------

def _summary_args(p):
    _add_model_args(p)
    _add_backend_arg(p, "'spec' for the arithmetic alone; a backend to check it against; both: torch and keras; "
                        "all: torch, keras and jax (default both)", also=("spec",))


@command("summary", _summary_args, help="layer table: shapes, params and mult-adds, per backend")
def cmd_summary(args) -> int:
    from .summary import side_by_side

    s = _spec(args)
    if args.backend == "spec":
        s.summary()
    else:
        from .errors import SpecError
        from .spec.memory import check_memory

        try:
            check_memory(s)  # the backends build the model: refused before they try to allocate it
        except SpecError as e:
            raise SpecError(f"{e} Its summary alone needs no memory: `backend='spec'`.") from None
        print(side_by_side(s, _backends(args)))
    return 0


@command("zoo", help="list the zoo's architectures and their sources")
def cmd_zoo(args) -> int:
    from . import zoo

    print(f"{'name':30s} {'trainable':>10s} {'BN stats':>9s} {'mult-adds':>12s}  source")
    for name in zoo.names():
        spec = zoo.get(name)
        print(f"{name:30s} {spec.trainable_params:>10,} {spec.state_params:>9,} {spec.macs:>12,}  "
              f"{zoo.ZOO[name].source}")
    return 0


def _train_args(p):
    _add_model_args(p)
    _add_backend_arg(p, "the framework to train in (jax: Keras on JAX); both trains one run in torch and one "
                        "in keras (into --out/torch and --out/keras), all also one in jax (default both)")
    _add_config_args(p)
    _add_data_dir_arg(p)
    p.add_argument("--out", type=_path, help="run directory (default runs/<spec>-<backend>-seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")


@command("train", _train_args, help="train one spec on MNIST in one backend, both or all",
         description="Train under mnistcnn's shared protocol; writes result.json, "
                     "epochs.csv and a checkpoint after every epoch.")
def cmd_train(args) -> int:
    from . import train
    from .backends import call

    cfg, spec = _config(args), _spec(args)
    backends = _backends(args)
    for backend in backends:
        if args.out is not None:
            out = args.out if len(backends) == 1 else f"{args.out}/{backend}"
        else:
            out = f"runs/{spec.name}-{backend}-seed{cfg.seed}"
        # in this process, or (Keras on JAX after Keras on TensorFlow) in a child of its own
        result = call(backend, train.run, spec, backend, cfg, out=out, data_dir=args.data_dir,
                      progress=not args.quiet, resume=args.resume, overwrite=args.overwrite,
                      tune_allocator=True)  # the command line's own process
        print(f"wrote {out}/result.json, {out}/epochs.csv and {out}/checkpoint/ "
              f"({backend} test accuracy {result.test_acc:.4f})")
    return 0


def _compare_args(p):
    _add_model_args(p)
    p.add_argument("--out", type=_path, required=True, help="report directory")
    p.add_argument("--native", action="store_true", help="also run with each framework's native defaults")
    p.add_argument("--ablate", action="store_true",
                   help="native runs with one default at a time harmonized, to find the contributors")
    bn = p.add_mutually_exclusive_group()
    bn.add_argument("--no-bn", action="store_true", help="only the spec as given, no BatchNorm pair (what a "
                    "model that is not a zoo name gets by default)")
    bn.add_argument("--bn-pair", action="store_true",
                    help="train the BatchNorm pair (the model without BatchNorm, and with it after each hidden "
                         "layer) instead of the model as given (what a zoo name gets by default)")
    p.add_argument("--ci-target", type=float, metavar="PP",
                   help="add seeds (the same to every backend, from --seeds, at least 3) until every paired 95%% CI "
                        "of test accuracy is within +-PP percentage points, or --max-seeds (a fixed-width "
                        "sequential interval: the rule looks at the width, never at significance)")
    p.add_argument("--max-seeds", type=int, help="with --ci-target: the most seeds to run (default 30)")
    # compare trains each mode of --native/--ablate itself: no --defaults or --harmonize
    _add_run_args(p, workers=1, leave_out=("defaults", "harmonize"))


@command("compare", _compare_args,
         help="the comparison: the backends (default torch and keras), with/without BN, over seeds",
         description="Train one spec in each backend (--backends) with and without batch norm over "
                     "several seeds; write results.json/.csv, report.md and plots.")
def cmd_compare(args) -> int:
    from .compare import compare

    modes = ["harmonized"] + (["native"] if args.native else [])
    from .zoo import ZOO

    named = args.model or args.arch_flag  # a zoo name stands for its study's BatchNorm pair; anything else as given
    zoo_name = bool(named) and not os.path.exists(named) and named.partition(":")[0] in ZOO
    bn = False if args.no_bn else args.bn_pair or zoo_name
    s = compare(_spec(args), args.out, seeds=args.seeds, cfg=_config(args), bn=bn,
                modes=modes, ablate=args.ablate, workers=args.workers, isolate=not args.in_process,
                backends=args.backends,
                data_dir=args.data_dir, progress=not args.quiet, command=args.command_line,
                executor=args.executor, address=args.address, ci_target_pp=args.ci_target,
                max_seeds=args.max_seeds)
    for p in s.paired:
        print(f"{p['variant']}, {p['mode']}: {p['verdict']}")
    print(f"report: {args.out}/report.md  plots: {', '.join(s.plots)}  "
          f"data: {args.out}/results.json, results.csv")
    return 1 if any("error" in r for r in s.runs) else 0


def _sweep_args(p):
    _add_model_args(p)
    p.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2",
                   help="an axis of the grid, repeatable: e.g. --grid activation=relu,tanh --grid lr=0.01,0.001")
    p.add_argument("--out", type=_path, required=True, help="sweep directory (finished runs there are skipped)")
    _add_run_args(p, workers=2)


@command("sweep", _sweep_args, help="a grid over variants of a spec, in each backend",
         description="Each --grid key=v1,v2 is an axis: arch, activation, pooling, hidden, "
                     "kernel, conv_blocks, or a training setting (lr, epochs, ...).")
def cmd_sweep(args) -> int:
    from .compare import parse_grid, sweep

    s = sweep(_spec(args), parse_grid(args.grid), args.out, seeds=args.seeds, cfg=_config(args),
              backends=args.backends, workers=args.workers, isolate=not args.in_process, data_dir=args.data_dir,
              progress=not args.quiet, command=args.command_line, executor=args.executor, address=args.address)
    print(f"table: {args.out}/sweep.md  data: {args.out}/sweep.json, sweep.csv")
    return 1 if any(r["errors"] for r in s["rows"]) else 0


def _reproduce_args(p):
    p.add_argument("report", choices=["000", "001", "002", "003", "004", "all"],
                   help="the reference report (see ../shared/seeds or docs/results.md), or all")
    p.add_argument("--out", type=_path, default="reports/reproduce",
                   help="parent directory (default reports/reproduce)")
    p.add_argument("--seeds", type=int, help="seeds per setting (default: each study's own, 2 or 3)")
    p.add_argument("--workers", type=int, default=1,
                   help="runs at a time, each worker a process of its own (default 1)")
    p.add_argument("--smoke", action="store_true", help="a few hundred images, one seed, in this process: "
                                                         "checks the machinery, gives no results")
    _add_backends_arg(p, "the frameworks of the study's two-framework runs (torch,keras,jax adds Keras on JAX)")
    p.add_argument("--table-only", action="store_true",
                   help="train nothing: tabulate the runs that have finished (a study under way)")
    p.add_argument("--only", metavar="SETTING[,SETTING]",
                   help="train only these settings of the report (e.g. keras3-cnn,keras3-cnn-axis1); the "
                        "table still shows every setting's finished runs")
    _add_data_dir_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


@command("reproduce", _reproduce_args,
         help="a reference report's study under its own protocol, in each backend (default torch and keras)",
         description="Runs report 000 ... 004 (or all) as the report did it: its epochs, batch "
                     "size, optimizer, schedule, split and normalisation, in each backend, native "
                     "and harmonized, over seeds; writes reproduce.json/.md per report. Finished "
                     "runs are skipped, so an interrupted study continues where it stopped.")
def cmd_reproduce(args) -> int:
    from .errors import ConfigError
    from .reproduce import STUDIES, reproduce

    if args.only and args.report == "all":
        raise ConfigError("--only names settings of one report: give the report (e.g. reproduce 004 --only "
                          "keras3-cnn), not all.")
    # all: a study whose seeds continue to a precision (report 000's, for hours) last
    reports = (sorted(STUDIES, key=lambda r: any(s.precision for s in STUDIES[r].settings))
               if args.report == "all" else [args.report])
    failed = False
    for report in reports:
        s = reproduce(report, args.out, smoke=args.smoke, seeds=args.seeds, workers=args.workers,
                      data_dir=args.data_dir, progress=not args.quiet, command=args.command_line,
                      train=not args.table_only, backends=args.backends,
                      only=args.only and args.only.split(","))
        outside = [r["what"] for r in s["rows"] if r.get("inside") is False]
        print(f"report {report}: {args.out}/{report}/reproduce.md ({len(s['rows'])} rows; "
              f"published value outside its framework's 95% prediction interval: {len(outside)})")
        failed |= not s["complete"] and not args.table_only
    return 1 if failed else 0


def _parity_args(p):
    _add_model_args(p)
    p.add_argument("--tiers", default=(1, 2, 3), type=_int_list, metavar="1,2,3",
                   help="comma-separated tiers: 1 forward, 2 loss and gradients, 3 drift (default 1,2,3)")
    p.add_argument("--images", type=_count, default=64, help="real MNIST test images used (default 64)")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps for tier 3 (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled weights (default 0)")
    _add_backends_arg(p, "the frameworks to check against each other and the numpy reference")
    _add_data_dir_arg(p)
    p.add_argument("--json", type=_path, help="also write the full result as JSON here")


@command("parity", _parity_args,
         help="do the backends (default torch and keras) and a numpy reference compute the same thing?",
         description="Tier 1: per-layer forward outputs; tier 2: loss and gradients; "
                     "tier 3: weight drift over optimizer steps. Exit status 1 if tier 1 or 2 "
                     "exceeds its tolerance.")
def cmd_parity(args) -> int:
    import json

    from . import data, parity

    ds = data.load("mnist", args.data_dir)
    x, y = data.normalize(ds.x_test[:args.images]), ds.y_test[:args.images]
    tiers = args.tiers
    result = parity.run(_spec(args), x, y, tiers=tiers, steps=args.steps, seed=args.seed, backends=args.backends)
    print(parity.format_report(result))
    if args.json:
        from ._io import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    failed = [t for t in ("forward", "gradients") if t in result and not result[t]["ok"]]
    return 1 if failed else 0


def _defaults_args(p):
    _add_model_args(p, required=False)
    p.add_argument("--markdown", action="store_true", help="a Markdown table")
    _add_backends_arg(p, "the frameworks whose defaults to read (jax: Keras on JAX)")


@command("defaults", _defaults_args, help="the defaults ledger: each backend's native defaults vs harmonized",
         description="Every implicit setting, read from the installed frameworks; with a "
                     "model, also lint warnings for known mistakes.")
def cmd_defaults(args) -> int:
    from . import defaults

    rows = defaults.ledger(args.backends)
    if args.markdown:
        print(defaults.ledger_markdown(rows))
    else:
        for r in rows:
            mark = "DIFFERS" if r["differs"] else "same"
            print(f"{r['label']} [{mark}]\n" + "".join(f"  {b + ':':12s}{r[b]}\n" for b in args.backends)
                  + f"  harmonized: {r['harmonized']}")
    if args.model or args.arch_flag or args.spec:
        from .spec.lint import lint

        for w in lint(_spec(args)):
            print(f"warning: {w}")
    return 0


def _results_doc_args(p):
    p.add_argument("reports", nargs="*", help="compare or sweep output directories")
    p.add_argument("--out", type=_path, default="docs/results.md",
                   help="the Markdown file to write (default docs/results.md)")


@command("results-doc", _results_doc_args, help="write docs/results.md from report directories")
def cmd_results_doc(args) -> int:
    from ._io import atomic_write_text
    from .documents import results_doc

    atomic_write_text(args.out, results_doc(args.reports, doc_dir=os.path.dirname(os.path.abspath(args.out))))
    print(f"wrote {args.out}")
    return 0


def _import_args(p):
    p.add_argument("model", metavar="MODEL", help="a .keras file, a TorchScript file, module:Class, or a state dict "
                                                  "with --torch-class")
    p.add_argument("--torch-class", metavar="MODULE:CLASS",
                   help="the PyTorch class whose state dict MODEL holds (built without arguments)")
    p.add_argument("--input-shape", type=int, nargs=3, default=(1, 28, 28), metavar=("C", "H", "W"),
                   help="the input a PyTorch model takes (default 1 28 28)")
    p.add_argument("--out", type=_path, help="output directory (default imported/<model name>)")


@command("import", _import_args, help="a Keras or PyTorch model of yours as a spec JSON and neutral weights",
         description="Reads a .keras file, a TorchScript file, 'package.module:Class' (a PyTorch "
                     "module built without arguments) or a state dict (.pt/.pth) with --torch-class; "
                     "writes spec.json and weights.npz. Exact or refused: a layer the spec cannot "
                     "represent is named with its argument.")
def cmd_import(args) -> int:
    from pathlib import Path

    from . import spec as specs
    from . import weights as W
    from .importers import from_state_dict, load_model

    if args.torch_class:  # a state dict for a class of the user's
        spec, weights = from_state_dict(args.model, args.torch_class, tuple(args.input_shape))
    else:
        spec, weights = load_model(args.model, tuple(args.input_shape))
    out = Path(args.out or f"imported/{spec.name}")
    specs.save(spec, out / "spec.json")
    written = [str(out / "spec.json")]
    if weights is not None:
        W.save(out / "weights.npz", spec, weights, {"from": str(args.model)})
        written.append(str(out / "weights.npz"))
    print(f"{spec.name}: {len(spec.layers)} layers, {spec.total_params:,} parameters; wrote {', '.join(written)}")
    print(f"next: mnistcnn summary {out / 'spec.json'}  |  mnistcnn compare {out / 'spec.json'} --out reports/mine"
          + (f"  |  mnistcnn evaluate {out / 'weights.npz'}" if weights is not None else ""))
    return 0


def _tensorboard_args(p):
    p.add_argument("directory", type=_path, help="a run, compare, sweep or reproduce output directory")
    p.add_argument("--overwrite", action="store_true", help="rewrite event files that exist")


@command("tensorboard", _tensorboard_args, help="write TensorBoard event files for the runs under a directory",
         description="Runs write their event files while they train when the tensorboard "
                     "package is installed; this writes them afterwards from result.json (for "
                     "runs made without it, or committed results), one log per run, so that "
                     "`tensorboard --logdir DIR` overlays PyTorch and Keras runs.")
def cmd_tensorboard(args) -> int:
    from pathlib import Path

    from .callbacks import TENSORBOARD_DIR, write_tensorboard
    from .errors import ConfigError
    from .results import RunResult

    root = Path(args.directory)
    results = sorted(root.rglob("result.json")) if root.is_dir() else []
    if not results:
        raise ConfigError(f"No run results (result.json) under {root}: give a run, compare, sweep or "
                          "reproduce output directory.")
    written = 0
    for path in results:
        logdir = path.parent / TENSORBOARD_DIR
        if logdir.exists() and not args.overwrite:
            continue
        if logdir.exists():
            import shutil

            shutil.rmtree(logdir)
        write_tensorboard(RunResult.read(path), logdir)
        written += 1
    print(f"event files for {written} of {len(results)} runs ({len(results) - written} had them already); "
          f"view with: tensorboard --logdir {root}")
    return 0


def _evaluate_args(p):
    from .config import CHOICES

    p.add_argument("checkpoint", type=_path,
                   help="a neutral checkpoint (e.g. runs/x/checkpoint/weights.npz), or a .keras or "
                                      "TorchScript model file")
    _add_backend_arg(p, "the framework to evaluate in; both (torch and keras) or all (also jax) give one line "
                        "per framework (default both)")
    _add_data_dir_arg(p)
    p.add_argument("--dataset", choices=CHOICES["dataset"],
                   help="override the dataset the checkpoint records (older checkpoints: mnist)")
    p.add_argument("--normalization", choices=CHOICES["normalization"],
                   help="override the normalisation the checkpoint records (older checkpoints: standard)")


@command("evaluate", _evaluate_args, help="test accuracy of a checkpoint (weights.npz) in one backend, both or all")
def cmd_evaluate(args) -> int:
    import json

    from . import train
    from .backends import call

    for backend in _backends(args):
        r = call(backend, train.evaluate_checkpoint, args.checkpoint, args.data_dir, args.dataset,
                 args.normalization, backend)
        print(json.dumps({k: v for k, v in r.items() if k != "confusion"}))
    return 0


def make_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="mnistcnn", description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--version", action="version", version=f"mnistcnn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, c in COMMANDS.items():
        p = sub.add_parser(name, help=c.help, description=c.description)
        if c.add_args:
            c.add_args(p)
        flags = {a.dest: max(a.option_strings, key=len) for a in p._actions if a.option_strings}
        p.set_defaults(func=c.run, flags=flags)
    return parser


#: the library's names of arguments whose flag is spelt otherwise
ARGUMENT_FLAGS = {"ci_target_pp": "ci_target"}


def in_flags(error, flags: dict) -> str:
    """The message of a mnistcnn error in the command line's words: each argument it names
    (``error.arguments``) that is one of this command's ``flags`` (dest -> flag) is
    written as the flag: `lr` -> --lr, `resume=True` -> --resume, `lr=0.1` and lr=0.1 ->
    --lr 0.1, `milestones=(5, 10)` -> --milestones 5 10."""
    text = str(error)
    for name in error.arguments:
        flag = flags.get(ARGUMENT_FLAGS.get(name, name))
        if flag is None:
            continue
        text = re.sub(rf"`{name}(?:=([^`]*))?`", functools.partial(_flag_with_value, flag), text)
        text = re.sub(rf"(?<![\w`.-]){name}=(\([^)]*\)|\[[^\]]*\])?", functools.partial(_flag_received, flag), text)
    return text


def _flag_with_value(flag: str, match: re.Match) -> str:
    """`name` or `name=True` -> the flag; `name=value` -> the flag and the value."""
    return flag if match[1] in (None, "True") else f"{flag} {_flag_value(match[1])}"


def _flag_received(flag: str, match: re.Match) -> str:
    """A value received, bare: lr=0.1 -> --lr 0.1 (a tuple or a list as the flag's words)."""
    return f"{flag} {_flag_value(match[1] or '')}"


def _flag_value(text: str) -> str:
    """A Python value as a flag's words: 'adam' -> adam, (5, 10) -> 5 10."""
    if text[:1] + text[-1:] in ("()", "[]"):
        return " ".join(_flag_value(t.strip()) for t in text[1:-1].split(",") if t.strip())
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


#: what to do about an operating-system error on a path, by its errno
OS_FIXES = {
    errno.ENOSPC: "the disk is full: free some space, or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free some space, or write elsewhere",
    errno.EFBIG: "the file would be larger than this system allows (ulimit -f): raise the limit, or write elsewhere",
    errno.EACCES: "permission denied: choose a place you may use, or change its permissions",
    errno.EPERM: "not permitted: choose a place you may use, or change its permissions",
    errno.EROFS: "a read-only file system: choose a writable place",
    errno.ENOTDIR: "a part of this path is a file, not a directory: choose another path",
    errno.EISDIR: "this is a directory where a file belongs: name a file",
    errno.ENOENT: "no such file or directory: check the path",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
    errno.EEXIST: "this is not a directory, and a directory belongs there: choose another path",
}


def os_error(e: OSError) -> str:
    """An operating-system error on a path the user named (or the place a command writes
    to), as one line: the path, what is wrong and what to do."""
    fix = OS_FIXES.get(e.errno or 0, e.strerror or str(e))
    # an atomic write's temporary file (mnistcnn._io: .NAME.XXXXXXXX.tmp) stands for NAME
    paths = " -> ".join(re.sub(r"\.([^/]+)\.\w+\.tmp$", r"\1", str(p)) for p in (e.filename, e.filename2)
                        if p is not None)
    if paths:
        return f"{paths}: {fix}."
    return f"{fix} ({e.strerror or e})." if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else f"{e}."


def _report_bug(args, e) -> None:
    """A bug, or a failure no check foresaw: one line, the traceback in the user's cache
    (on the terminal where that cannot be written)."""
    import traceback

    try:
        from .data import default_dir

        path = default_dir().parent / "last-error.txt"  # the user's cache, ~/.cache/mnistcnn
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{args.command_line}\n\n{''.join(traceback.format_exception(e))}")
        where = f"the full traceback is in {path}; --debug shows it here"
    except Exception as unwritable:  # noqa: BLE001 - the handler must not fail in its turn
        traceback.print_exception(e)
        where = f"the traceback is above: it could not be written to the cache ({unwritable})"
    print(f"mnistcnn: unexpected error: {type(e).__name__}: {e}\n({where})", file=sys.stderr)


def main(argv=None) -> int:
    parser = make_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["mnistcnn"] + argv)
    import signal

    from .errors import Terminated, raise_terminated

    previous = signal.signal(signal.SIGTERM, raise_terminated)  # SIGTERM ends like Ctrl-C
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
        return code
    except MnistCnnError as e:  # one error boundary: the user's inputs, files and places
        print(f"mnistcnn: error: {in_flags(e, args.flags)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        again = args.command_line if getattr(args, "resume", True) or args.command != "train" \
            else args.command_line + " --resume"
        print(f"mnistcnn: {'terminated' if isinstance(e, Terminated) else 'interrupted'}; finished epochs "
              f"and runs are saved: resume with: {again}", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except BrokenPipeError as e:
        if _stdout_closed():  # `mnistcnn ... | head`: the reader has what it wanted
            return 141  # as a shell reports a process ended by SIGPIPE
        if args.debug:
            raise
        _report_bug(args, e)
        return 1
    except OSError as e:  # a path the user named: unwritable, full, a file where a directory belongs
        print(f"mnistcnn: error: {os_error(e)}", file=sys.stderr)
        return 2
    except Exception as e:
        if args.debug:
            raise
        _report_bug(args, e)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (poll says so); if so, it
    is pointed at /dev/null so that the interpreter's last flush stays quiet."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        if not any(events & select.POLLERR for _, events in poll.poll(0)):
            return False
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return True
    except (OSError, ValueError):  # no file descriptor: not a pipe of ours
        return False
