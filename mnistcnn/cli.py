"""Command line: parses arguments and calls the library, nothing more."""
from __future__ import annotations

import argparse
import shlex
import sys

from .errors import MnistCnnError


def _spec(args):
    from . import spec, zoo

    return spec.load(args.spec) if args.spec else zoo.get(args.arch)


def cmd_summary(args) -> int:
    from .summary import side_by_side

    s = _spec(args)
    if args.backend == "spec":
        s.summary()
    else:
        backends = ("torch", "keras") if args.backend == "both" else (args.backend,)
        print(side_by_side(s, backends))
    return 0


def cmd_zoo(args) -> int:
    from . import zoo

    for name in zoo.names():
        entry = zoo.ZOO[name]
        print(f"{name:30s} {zoo.get(name).trainable_params:>10,}  {entry.source}")
    return 0


def cmd_train(args) -> int:
    from . import train

    cfg = _config(args)
    out = args.out or f"runs/{_spec(args).name}-{args.backend}-seed{cfg.seed}"
    result = train.run(_spec(args), args.backend, cfg, out=out, data_dir=args.data_dir,
                       progress=not args.quiet, resume=args.resume)
    print(f"wrote {out}/result.json, {out}/epochs.csv and {out}/checkpoint/ "
          f"(test accuracy {result.test_acc:.4f})")
    return 0


def _config(args):
    from . import train

    return train.TrainConfig(**{k: v for k, v in vars(args).items()
                                if k in _config_fields() and v is not None})


def cmd_compare(args) -> int:
    from .compare import compare

    modes = ["harmonized"] + (["native"] if args.native else [])
    s = compare(_spec(args), args.out, seeds=args.seeds, cfg=_config(args), bn=not args.no_bn,
                modes=modes, ablate=args.ablate, workers=args.workers, isolate=not args.in_process,
                data_dir=args.data_dir, progress=not args.quiet, command=args.command_line)
    for p in s["paired"]:
        print(f"{p['variant']}, {p['mode']}: {p['verdict']}")
    print(f"report: {args.out}/report.md  plots: {', '.join(s['plots'])}  "
          f"data: {args.out}/results.json, results.csv")
    return 1 if any("error" in r for r in s["runs"]) else 0


def cmd_sweep(args) -> int:
    from .compare import parse_grid, sweep

    s = sweep(_spec(args), parse_grid(args.grid), args.out, seeds=args.seeds, cfg=_config(args),
              workers=args.workers, isolate=not args.in_process, data_dir=args.data_dir,
              progress=not args.quiet, command=args.command_line)
    print(f"table: {args.out}/sweep.md  data: {args.out}/sweep.json, sweep.csv")
    return 1 if any(r["errors"] for r in s["rows"]) else 0


def cmd_evaluate(args) -> int:
    import json

    from . import train

    r = train.evaluate_checkpoint(args.checkpoint, args.data_dir, args.dataset,
                                  args.normalization, args.backend)
    print(json.dumps({k: v for k, v in r.items() if k != "confusion"}))
    return 0


def _config_fields():
    from dataclasses import fields

    from .train import TrainConfig

    return {f.name: f for f in fields(TrainConfig)}


def _add_config_args(p):
    """One flag per TrainConfig field (--batch-size for batch_size), typed from its default."""
    from . import train

    choices = {"optimizer": train.OPTIMIZERS, "schedule": train.SCHEDULES,
               "defaults": train.DEFAULTS_MODES, "normalization": ("standard", "unit"),
               "init": ("glorot_uniform", "torch_default"), "dataset": ("mnist", "fashion-mnist")}
    floats = {"lr", "momentum", "beta1", "beta2", "eps", "rho", "weight_decay", "gamma"}
    for name, f in _config_fields().items():
        flag = "--" + name.replace("_", "-")
        helptext = f"default: {f.default!r}"
        if name == "nesterov":
            p.add_argument(flag, action="store_true", default=None, help="Nesterov momentum (SGD)")
        elif name == "milestones":
            p.add_argument(flag, type=int, nargs="+", help="multistep: 0-based epochs where lr *= gamma")
        elif name in choices:
            p.add_argument(flag, choices=choices[name], help=helptext)
        else:
            p.add_argument(flag, type=float if name in floats else int, help=helptext)


def _add_model_args(p):
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("arch", nargs="?", help="zoo model name (see `mnistcnn zoo`), e.g. seed000-cnn")
    g.add_argument("--spec", help="a spec JSON file instead of a zoo name")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnistcnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summary", help="layer table: shapes, params and mult-adds, per backend")
    _add_model_args(p)
    p.add_argument("--backend", choices=("spec", "torch", "keras", "both"), default="both",
                   help="'spec' for the arithmetic alone; a backend to check it against (default both)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("zoo", help="list the zoo's architectures and their sources")
    p.set_defaults(func=cmd_zoo)

    p = sub.add_parser("train", help="train one spec in one backend on MNIST",
                       description="Train under mnistcnn's shared protocol; writes result.json, "
                                   "epochs.csv and a checkpoint after every epoch.")
    _add_model_args(p)
    p.add_argument("--backend", choices=("torch", "keras"), required=True)
    _add_config_args(p)
    p.add_argument("--data-dir", help="directory of the MNIST IDX files (else $MNISTCNN_DATA_DIR, then the cache)")
    p.add_argument("--out", help="run directory (default runs/<spec>-<backend>-seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=cmd_train)

    def add_run_args(p, workers):
        _add_config_args(p)
        p.add_argument("--seeds", type=int, default=3, help="seeds per backend and variant (default 3)")
        p.add_argument("--workers", type=int, default=workers,
                       help=f"runs at a time, each in its own process (default {workers})")
        p.add_argument("--in-process", action="store_true",
                       help="run everything in this process (quick smoke runs; timings less fair)")
        p.add_argument("--data-dir", help="directory of the MNIST IDX files")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("compare", help="the comparison: both backends, with/without BN, over seeds",
                       description="Train one spec in both backends with and without batch norm over "
                                   "several seeds; write results.json/.csv, report.md and plots.")
    _add_model_args(p)
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--native", action="store_true", help="also run with each framework's native defaults")
    p.add_argument("--ablate", action="store_true",
                   help="native runs with one default at a time harmonized, to find the contributors")
    p.add_argument("--no-bn", action="store_true", help="only the spec as given, no BatchNorm pair")
    add_run_args(p, workers=1)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("sweep", help="a grid over variants of a spec, in both backends",
                       description="Each --grid key=v1,v2 is an axis: arch, activation, pooling, hidden, "
                                   "kernel, conv_blocks, or a training setting (lr, epochs, ...).")
    _add_model_args(p)
    p.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2")
    p.add_argument("--out", required=True, help="sweep directory (finished runs there are skipped)")
    add_run_args(p, workers=2)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("evaluate", help="test accuracy of a checkpoint (weights.npz) in a backend")
    p.add_argument("checkpoint", help="a neutral checkpoint, e.g. runs/x/checkpoint/weights.npz")
    p.add_argument("--backend", choices=("torch", "keras"), default="torch")
    p.add_argument("--data-dir")
    p.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default="mnist")
    p.add_argument("--normalization", choices=("standard", "unit"), default="standard")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv=None) -> int:
    parser = make_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["mnistcnn"] + argv)
    try:
        return args.func(args)
    except MnistCnnError as e:
        print(f"mnistcnn: error: {e}", file=sys.stderr)
        return 2
