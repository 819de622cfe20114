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
    return parser


def main(argv=None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except MnistCnnError as e:
        print(f"mnistcnn: error: {e}", file=sys.stderr)
        return 2
