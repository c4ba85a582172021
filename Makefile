# Two entry points for a fresh machine: `make train` and `make test`.
# Both create .venv and install the package into it on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install train test docs clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# make train ARGS="--data-dir ~/data --preset fast" trains with those flags instead.
ARGS ?= --dataset cifar10 --data-dir data --download

train: install
	$(BIN)/resnet-cifar train $(ARGS)

test: install
	$(BIN)/python -m pytest

docs: install
	$(BIN)/python -m resnet_cifar.docs docs

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
