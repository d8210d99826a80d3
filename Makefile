# The README's two commands live here: `make sweep` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch that lies on local disk; see pyproject.toml.
TORCH_PIN := torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install prepare test test-fast bench clean sweep serve stop fashion-mnist fonts compiler

install: $(VENV)/.installed

# Re-run only when the dependency list changes: a second `make install` is a no-op.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH_PIN)"
	# compat mode puts the checkout itself on sys.path, so packages added later (flows/)
	# import without a reinstall; the default strict mode freezes the package list.
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
	@touch $@

# Fashion-MNIST comes from Debian's dataset-fashion-mnist package; nothing is downloaded at
# run time. Installed here when we are root with apt; otherwise say what to do.
FMNIST_DIR := /usr/share/datasets/fashion-mnist
fashion-mnist:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Fashion-MNIST (Debian package dataset-fashion-mnist)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else \
	  echo "Fashion-MNIST is missing from $(FMNIST_DIR). Install it with" >&2; \
	  echo "  sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist" >&2; \
	  echo "or put the four idx.gz files in a directory and set data.datasets.*.raw_dir in params.yaml." >&2; \
	  exit 1; \
	fi

# The default data's glyphs are drawn by the CJK fonts of these Debian packages (one file per
# family: dml_core/data/fonts.py). Installed here when we are root with apt; otherwise say what to do.
FONT_PACKAGES := fonts-arphic-ukai fonts-arphic-uming fonts-arphic-bkai00mp fonts-arphic-gbsn00lp \
  fonts-wqy-zenhei fonts-wqy-microhei fonts-ipafont-gothic fonts-ipafont-mincho fonts-seto fonts-klee \
  fonts-hanazono fonts-vlgothic fonts-droid-fallback fonts-cwtex-kai fonts-cwtex-ming fonts-lxgw-wenkai \
  fonts-noto-cjk
fonts:
	@missing=$$(for p in $(FONT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing the CJK fonts of the glyphs dataset:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
	  echo "The glyphs dataset needs these Debian font packages:" $$missing >&2; \
	  echo "Install them with" >&2; \
	  echo "  sudo apt-get update && sudo apt-get install -y $(FONT_PACKAGES)" >&2; \
	  exit 1; \
	fi

# The native kernels (dml_core/kernels/*.cpp) are compiled on first use for the machine that
# runs them. Without a C++ compiler trials run torch's kernels (slower) and the kernel tests fail.
compiler:
	@if command -v "$${CXX:-g++}" >/dev/null || command -v c++ >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing a C++ compiler for the native kernels (Debian package g++)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ >/dev/null; \
	else \
	  echo "No C++ compiler: the native kernels fall back to torch's (slower), and their tests fail." >&2; \
	  echo "Install one with  sudo apt-get update && sudo apt-get install -y g++  (or set CXX)." >&2; \
	fi

# The DVC stage runs `python`: the venv must come first on PATH.
prepare: install fashion-mnist fonts
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/dvc repro prepare

test: install compiler
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install compiler
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: install
	$(PY) benchmarks/losses.py
	$(PY) benchmarks/losses_structured.py
	$(PY) benchmarks/data.py
	$(PY) benchmarks/eval.py
	$(PY) benchmarks/training.py

# The default sweep, end to end: install, prepare the data (DVC stage), run the flow on
# Prefect's ephemeral API, a local Ray and MLflow on a local SQLite file, write the report.
PROFILE ?= quick
SET ?=
sweep: prepare compiler
	$(VENV)/bin/dml sweep --profile $(PROFILE) $(foreach s,$(SET),--set $(s))

# A Prefect server, work pool, deployments, worker and an MLflow server on 127.0.0.1.
serve: install
	scripts/serve.sh

stop:
	scripts/stop.sh

clean:
	rm -rf $(VENV) .pytest_cache
