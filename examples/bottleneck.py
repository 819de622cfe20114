"""The bottleneck study: features squeezed through 2, 4, 8 or 32 units before the
1024-wide hidden layer, trained 10 vs 20 epochs. The full run is long on 2 CPU cores;
pass e.g. --epochs 2 to shorten (the grid's epochs axis then overrides it)."""
import sys

from _study import study

ARCHS = ",".join(f"bottleneck-cnn:features={k}" for k in (2, 4, 8, 32))

if __name__ == "__main__":
    smoke = "--smoke" in sys.argv
    sys.exit(study("bottleneck", ["sweep", "seed000-cnn", "--grid", f"arch={ARCHS}"]
                   + ([] if smoke else ["--grid", "epochs=10,20"]),
                   full=["--seeds", "1"]))
