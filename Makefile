# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv/ if absent and
# install the project with the CPU build of torch pinned (an unpinned torch would pull a multi-GB CUDA build).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.genmotion-installed
PROMPT ?= a red ball bouncing to the left
FRAMES ?= 48

.PHONY: install demo test lint typecheck pytest clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[dev,decord,mesh]"
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p out
	$(VENV)/bin/genmotion video --prompt "$(PROMPT)" --frames $(FRAMES) -o out/demo.mp4

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy genmotion video image_core panorama rigging world

pytest: $(STAMP)
	$(PY) -m pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
