"""Command line: parses arguments and calls the library, nothing more."""
from __future__ import annotations

import argparse
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

    cfg = train.TrainConfig(**{k: v for k, v in vars(args).items()
                               if k in _config_fields() and v is not None})
    out = args.out or f"runs/{_spec(args).name}-{args.backend}-seed{cfg.seed}"
    result = train.run(_spec(args), args.backend, cfg, out=out, data_dir=args.data_dir,
                       progress=not args.quiet, resume=args.resume)
    print(f"wrote {out}/result.json, {out}/epochs.csv and {out}/checkpoint/ "
          f"(test accuracy {result.test_acc:.4f})")
    return 0


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
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except MnistCnnError as e:
        print(f"mnistcnn: error: {e}", file=sys.stderr)
        return 2
