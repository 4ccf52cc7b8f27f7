# Two jobs: `make demo` (the main job) and `make test`. Both create the
# environment in .venv on first use and reuse it afterwards.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mlskip-installed
PYTEST_ARGS ?=

.PHONY: setup demo test lint slow native auto-lirpa

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,trees]'
	@touch $(STAMP)

setup: $(STAMP) native

# Optional Rust kernel of the writer hook (Cargo.toml, native/): built when cargo
# exists (incremental, ~0.1 s when up to date); never fails the set-up, since
# metadata/native.py falls back to the numba reference without the library.
native:
	@if command -v cargo >/dev/null 2>&1; then \
	  cargo build --release --quiet || echo "warning: native kernel build failed; the numba reference is used"; \
	else echo "cargo not found: native kernel skipped (the numba reference is used)"; fi

demo: setup
	$(VENV)/bin/mlskip demo

lint: setup
	$(VENV)/bin/ruff check .

# pytest exits 5 when it collected no test: for this project that means the
# suite is broken (wrong path or marker), so it fails loudly instead of passing.
test: setup lint
	@if command -v cargo >/dev/null 2>&1; then cargo test --quiet; fi
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

slow: setup
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

# Optional: auto_LiRPA for the side-by-side verifier tests (tests/test_vs_auto_lirpa.py)
# and `mlskip bench verifier`. Its PyPI release (0.3) breaks on numpy 2 / torch 2, so
# it is installed from a source checkout (0.7.1 was tested):
#   git clone https://github.com/Verified-Intelligence/auto_LiRPA /path/to/auto_LiRPA
#   make auto-lirpa AUTO_LIRPA_SRC=/path/to/auto_LiRPA
# --no-deps keeps the pinned torch (its setup.py pins torch and torchvision ranges and
# test tools); appdirs, pyyaml, tqdm and graphviz (a Python package) are the imports it needs at run time.
AUTO_LIRPA_SRC ?=
auto-lirpa: setup
	@test -n "$(AUTO_LIRPA_SRC)" || { echo "set AUTO_LIRPA_SRC to an auto_LiRPA source checkout"; exit 2; }
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt appdirs pyyaml tqdm graphviz
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation $(AUTO_LIRPA_SRC)
	$(PY) -c "import auto_LiRPA; print('auto_LiRPA', auto_LiRPA.__version__, 'importable')"
