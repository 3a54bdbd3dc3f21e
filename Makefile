# Two commands a newcomer types: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint demo demo-single demo-multi weights clean-demo

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt -r requirements-dev.txt
	# visdom 0.2.4's setup.py imports pkg_resources: build it with an older setuptools, no isolation.
	$(PY) -m pip install "setuptools<81" wheel
	$(PY) -m pip install --no-build-isolation visdom==0.2.4
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(PY) -m ruff check .

# The slow tests train with the real ImageNet VGG16, so `make test` fetches it first (`make weights`).
test: install lint weights
	$(PY) -m pytest -q tests

# Everything but the tests marked slow (no VGG16 download needed).
test-fast: install lint
	$(PY) -m pytest -q -m "not slow" tests

weights: install
	$(PY) scripts/download_vgg16.py

demo: install weights
	bash scripts/demo.sh

# One photo painted like one painting (--model sinsc), about 4 minutes on 2 idle CPU cores.
demo-single: install weights
	bash scripts/demo_sinsc.sh

# One photo in, several paintings out (--model mmsc), about 10 minutes on 2 idle CPU cores.
demo-multi: install weights
	bash scripts/demo_mmsc.sh

clean-demo:
	rm -rf checkpoints/demo_photo2painting results/demo_photo2painting
