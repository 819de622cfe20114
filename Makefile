# The README's commands. `make` targets set up .venv themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The genuine MNIST files: ../shared/data/mnist where it exists (developers and CI), else
# $MNISTCNN_DATA_DIR if set, else mnistcnn's own choice: the user's cache (~/.cache/mnistcnn),
# where missing files are downloaded and md5-checked.
ifneq ($(wildcard ../shared/data/mnist/train-images-idx3-ubyte.gz),)
MNISTCNN_DATA_DIR ?= $(abspath ../shared/data/mnist)
endif
ifdef MNISTCNN_DATA_DIR
export MNISTCNN_DATA_DIR
endif

.PHONY: setup main summary test lint results bench processes clean

setup: $(VENV)/.installed

# torch==2.13.0 first: it is the CPU build; a bare `torch` requirement would pull CUDA.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $@

# into runs/ (untracked): the committed example report stays in reports/seed000-cnn/
main: setup
	$(VENV)/bin/mnistcnn compare seed000-cnn --seeds 3 --epochs 2 --workers 2 --out runs/seed000-cnn

summary: setup
	$(VENV)/bin/mnistcnn summary seed000-cnn --backend both

# docs/results.md from the committed report directories (each records the command that
# made it; `mnistcnn reproduce all` trains the reference studies, about a day on 2 cores)
RESULT_DIRS = reports/seed000-cnn reports/seed000-cnn-3fw reports/seed000-pt-vs-tf reports/keras-activation-depth \
	reports/pytorch-width-pooling reports/bottleneck reports/sgd-models reports/sgd-lr-schedule reports/keras-deep-cnns reports/resnet-mini \
	reports/reproduce/000 reports/reproduce/001 reports/reproduce/002 reports/reproduce/003 reports/reproduce/004
results: setup
	$(VENV)/bin/mnistcnn results-doc $(RESULT_DIRS) --out docs/results.md

# throughput against hand-written loops and the matmul rate (about 15 minutes; run on a quiet machine)
bench: setup
	$(PY) benchmarks/bench.py --framework torch --out benchmarks/torch.json --time-to-accuracy
	$(PY) benchmarks/bench.py --framework keras --out benchmarks/keras.json --time-to-accuracy
	$(PY) benchmarks/bench.py --framework jax --out benchmarks/jax.json
	$(PY) benchmarks/bench.py --framework torch --profile --steps 20 --out benchmarks/profile-torch.json
	$(PY) benchmarks/bench.py --framework keras --profile --steps 20 --out benchmarks/profile-keras.json
	$(PY) benchmarks/bench.py --report benchmarks/torch.json benchmarks/keras.json benchmarks/jax.json \
		benchmarks/profile-torch.json benchmarks/profile-keras.json --md docs/performance.md

# whole processes: mnistcnn train against plain scripts, reused workers against a process per
# run, seconds to a verdict, make main (hours on 2 cores: every compare runs twice per round)
processes: setup
	$(PY) benchmarks/processes.py --rounds 2 --out benchmarks/processes.json
	$(PY) benchmarks/processes.py --report benchmarks/processes.json --md docs/processes.md

test: setup
	$(PY) -m pytest

# lint (ruff) and types (mypy), configured in pyproject.toml
lint: setup
	$(VENV)/bin/ruff check mnistcnn tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache
