"""Shared by the example scripts: run one `mnistcnn` command, full or smoke.

Arguments: --smoke for the tiny version; --out PARENT for where the report directory
goes (default reports/); anything else is passed on to `mnistcnn`."""
import sys

from mnistcnn.cli import main

SMOKE = ["--seeds", "1", "--epochs", "1", "--train-limit", "256", "--val-size", "128",
         "--test-limit", "500", "--in-process", "--quiet"]


def study(name: str, args: list, full: list, argv=None) -> int:
    """``args``: the study's own arguments; ``full``: its full-size settings."""
    argv = sys.argv[1:] if argv is None else argv
    smoke = "--smoke" in argv
    rest = [a for a in argv if a != "--smoke"]
    parent = "reports"
    if "--out" in rest:  # a parent directory: a script may run more than one study
        i = rest.index("--out")
        parent = rest[i + 1]
        del rest[i:i + 2]
    out = ["--out", f"{parent}/{name}" + ("-smoke" if smoke else "")]
    return main(args + out + (SMOKE if smoke else full) + rest)
