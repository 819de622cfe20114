"""What users wait for, as whole processes: start-up, data loading and training, timed
from outside with the machine's other work alike for both sides.

- train-torch / train-keras: `mnistcnn train` against a plain hand-written script
  (benchmarks/plain_torch.py, plain_keras.py) on the same images.
- verdict: seconds until `mnistcnn compare seed000-cnn --no-bn --ci-target 0.1` (harmonized)
  has its verdict, with a fresh process per run (`--executor fresh`, how every run started
  before worker reuse) against the default local executor (reused worker processes).
- main: `make main`'s command, fresh against local.
- startup: 8 runs that train for about a second each, fresh against local: what a process
  per run costs, resolved per run.

Each case runs its two commands in rounds, the order alternating (A B, B A, ...) so that
a drift of the machine's speed falls on both; a ratio is the median of the per-round
ratios. The CPU is recorded with the numbers.

    python benchmarks/processes.py --cases train-torch,train-keras,verdict,main --rounds 2 --out benchmarks/processes.json
    python benchmarks/processes.py --report benchmarks/processes.json --md docs/processes.md
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import cpu_facts  # noqa: E402

from mnistcnn._io import atomic_write_text  # noqa: E402

MNISTCNN = [sys.executable, "-m", "mnistcnn"]
VERDICT = ["compare", "seed000-cnn", "--no-bn", "--epochs", "2", "--ci-target", "0.1", "--max-seeds", "10",
           "--workers", "2", "--quiet"]
MAIN = ["compare", "seed000-cnn", "--seeds", "3", "--epochs", "2", "--workers", "2", "--quiet"]
#: runs whose training takes about a second: what a process per run costs, resolved per run
STARTUP = ["compare", "simple-fc", "--no-bn", "--seeds", "4", "--epochs", "1", "--train-limit", "1024", "--val-size",
           "0", "--test-limit", "1000", "--workers", "2", "--quiet"]


def cases(data_dir: str, n_train: int) -> dict:
    """case -> (what it measures, {side: argv with {out} for a fresh output directory})."""
    train = ["train", "seed000-cnn", "--epochs", "1", "--train-limit", str(n_train), "--val-size", "0",
             "--quiet", "--data-dir", data_dir, "--out", "{out}"]
    return {
        "train-torch": (f"one epoch of seed000-cnn on {n_train:,} images, process start to exit",
                        {"plain": [sys.executable, str(HERE / "plain_torch.py"), data_dir, str(n_train)],
                         "mnistcnn": MNISTCNN + train + ["--backend", "torch"]}),
        "train-keras": (f"one epoch of seed000-cnn on {n_train:,} images, process start to exit",
                        {"plain": [sys.executable, str(HERE / "plain_keras.py"), data_dir, str(n_train)],
                         "mnistcnn": MNISTCNN + train + ["--backend", "keras"]}),
        "verdict": ("mnistcnn " + " ".join(VERDICT),
                    {side: MNISTCNN + VERDICT + ["--executor", side, "--data-dir", data_dir, "--out", "{out}"]
                     for side in ("fresh", "local")}),
        "main": ("mnistcnn " + " ".join(MAIN) + " (make main)",
                 {side: MNISTCNN + MAIN + ["--executor", side, "--data-dir", data_dir, "--out", "{out}"]
                  for side in ("fresh", "local")}),
        "startup": ("mnistcnn " + " ".join(STARTUP) + " (8 runs of about a second each)",
                    {side: MNISTCNN + STARTUP + ["--executor", side, "--data-dir", data_dir, "--out", "{out}"]
                     for side in ("fresh", "local")}),
    }


def wall(argv: list, scratch: Path) -> dict:
    out = Path(tempfile.mkdtemp(dir=scratch))
    t = time.perf_counter()
    proc = subprocess.run([a.replace("{out}", str(out)) for a in argv], capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    record = {"seconds": seconds}
    results = out / "results.json"
    if results.exists():  # a compare: how many seeds its verdict took, and why it stopped
        s = json.loads(results.read_text())
        record["runs"] = len(s["runs"])
        if s.get("sequential"):
            record["seeds"], record["stopped"] = s["sequential"]["seeds"], s["sequential"]["stopped"]
    shutil.rmtree(out)
    return record


def measure(names: list, rounds: int, data_dir: str, n_train: int, save) -> list:
    """The cases, ``save(found)`` after every measurement (a long sitting that is cut
    short keeps what it measured)."""
    table = cases(data_dir, n_train)
    scratch = Path(tempfile.mkdtemp(prefix="mnistcnn-processes-"))
    found = []
    try:
        for name in names:
            what, sides = table[name]
            a, b = list(sides)
            record = {"case": name, "what": what, "sides": {a: [], b: []},
                      "commands": {k: " ".join(v) for k, v in sides.items()}, "ratios": []}
            found.append(record)
            for r in range(rounds):
                for side in (a, b) if r % 2 == 0 else (b, a):
                    record["sides"][side].append(wall(sides[side], scratch))
                    print(name, side, f"{record['sides'][side][-1]['seconds']:.1f} s", flush=True)
                    # above 1: the second side (mnistcnn against a plain script, reuse against fresh) is faster
                    record["ratios"] = [x["seconds"] / y["seconds"]
                                        for x, y in zip(record["sides"][a], record["sides"][b])]
                    save(found)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return found


def markdown(sittings: list) -> str:
    """The cases of one or more benchmark files, each file with its command, machine and
    what else ran meanwhile."""
    lines = ["# Time to a verdict, as whole processes", "",
             "Each case ran its two commands in rounds, the order alternating (A B, B A, ...); the ratio is "
             "the first side's seconds over the second's (above 1: the second is faster), median of the rounds.",
             ""]
    for d in sittings:
        cpu = d["cpu"]
        lines += [f"`{d['command']}` ({d['date']}): {cpu['name']}, {cpu['cores']} cores, vector extensions "
                  f"{', '.join(cpu['vector_extensions']) or 'none'}; {d['note']}.", "",
                  "| case | what | first | second | seconds, first | seconds, second | ratio (per round) |",
                  "|---|---|---|---|---|---|---|"]
        for c in d["cases"]:
            a, b = list(c["sides"])
            secs = {k: ", ".join(f"{x['seconds']:.0f}" for x in v) for k, v in c["sides"].items()}
            lines.append(f"| {c['case']} | {c['what']} | {a} | {b} | {secs[a]} | {secs[b]} | "
                         + (f"**{statistics.median(c['ratios']):.2f}** ({', '.join(f'{r:.2f}' for r in c['ratios'])}) |"
                          if c["ratios"] else "not measured (the sitting ended first) |"))
        lines.append("")
        for c in d["cases"]:
            seeds = {x.get("seeds") for v in c["sides"].values() for x in v} - {None}
            if seeds:
                stops = {x["stopped"] for v in c["sides"].values() for x in v}
                lines += [f"{c['case']}: the verdict took {', '.join(map(str, sorted(seeds)))} seeds per backend "
                          f"({'; '.join(sorted(stops))}).", ""]
    notes = HERE / "processes-notes.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    lines += ["Commands (`{out}`: a fresh directory per run of the command):", ""]
    lines += [f"- {c['case']}, {side}: `{cmd.replace(sys.executable, 'python').replace(str(HERE.parent) + '/', '')}`"
              for d in sittings for c in d["cases"] for side, cmd in c["commands"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="train-torch,train-keras,verdict,main")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--train-images", type=int, default=10_000, help="images of the train cases (default 10,000)")
    p.add_argument("--data-dir", default=os.environ.get("MNISTCNN_DATA_DIR", "../shared/data/mnist"))
    p.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    p.add_argument("--out")
    p.add_argument("--report", nargs="*", help="JSON files to turn into Markdown (--md)")
    p.add_argument("--md")
    args = p.parse_args(argv)
    if args.report:
        atomic_write_text(args.md, markdown([json.loads(Path(f).read_text()) for f in args.report]))
        return 0
    import datetime

    d = {"command": "python benchmarks/processes.py " + " ".join(sys.argv[1:] if argv is None else argv),
         "date": datetime.date.today().isoformat(), "cpu": cpu_facts(), "note": args.note}
    measure(args.cases.split(","), args.rounds, os.path.abspath(args.data_dir), args.train_images,
            lambda found: atomic_write_text(args.out, json.dumps(d | {"cases": found}, indent=2) + "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
