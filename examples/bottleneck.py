"""The bottleneck study: features squeezed through 2, 4, 8 or 32 ReLU units before the
1024-wide hidden layer (report 002's model; `mnistcnn reproduce 002` runs its protocol). The report compared 10 vs 20 epochs on the full set; on 2 CPU
cores this script runs the longest honest version: 2 vs 4 epochs on 10,000 images."""
import sys

from _study import study

ARCHS = ",".join(f"bottleneck-cnn:features={k}" for k in (2, 4, 8, 32))

if __name__ == "__main__":
    smoke = "--smoke" in sys.argv
    sys.exit(study("bottleneck", ["sweep", "seed000-cnn", "--grid", f"arch={ARCHS}"]
                   + ([] if smoke else ["--grid", "epochs=2,4"]),
                   full=["--seeds", "1", "--train-limit", "10000"]))
