# The README's commands. `make` targets set up .venv themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The genuine MNIST files; missing ones are downloaded (md5-checked) into this directory.
MNISTCNN_DATA_DIR ?= $(abspath ../shared/data/mnist)
export MNISTCNN_DATA_DIR

.PHONY: setup main summary test clean

setup: $(VENV)/.installed

# torch==2.13.0 first: it is the CPU build; a bare `torch` requirement would pull CUDA.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $@

main: setup
	$(VENV)/bin/mnistcnn compare seed000-cnn --seeds 3 --epochs 2 --out reports/seed000-cnn

summary: setup
	$(VENV)/bin/mnistcnn summary seed000-cnn --backend both

test: setup
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
