# Two commands a newcomer types: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install browser test test-fast lint demo demo-app demo-single demo-multi weights clean-demo

$(STAMP): requirements.txt requirements-dev.txt requirements-app.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt -r requirements-dev.txt -r requirements-app.txt
	# visdom 0.2.4's setup.py imports pkg_resources: build it with an older setuptools, no isolation.
	$(PY) -m pip install "setuptools<81" wheel
	# this checkout itself, editable (pyproject.toml): scripts/ and benchmarks/ import its packages from anywhere
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	$(PY) -m pip install --no-build-isolation visdom==0.2.4
	touch $(STAMP)

install: $(STAMP)

# The web page's tests (tests/app/test_app.py) drive Debian's chromium headless ($CHROMIUM names another);
# install it when missing (apt-get, through sudo unless already root). Playwright from PyPI drives it.
browser:
	@[ -n "$$CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The slow tests train with the real ImageNet VGG16, so `make test` fetches it first (`make weights`).
test: install lint weights browser
	$(PY) -m pytest -q tests

# Everything but the tests marked slow (no VGG16 download needed).
test-fast: install lint
	$(PY) -m pytest -q -m "not slow" tests

weights: install
	$(PY) scripts/download_vgg16.py

demo: install weights
	bash scripts/demo.sh

# The web page (app.py) on the embedded demo's model; trains nothing: `make demo` makes the model.
demo-app: install
	@if [ -f checkpoints/demo_photo2painting/latest_net_G.pth ]; then \
	  $(PY) app.py --name demo_photo2painting; \
	else \
	  echo "no demo model in checkpoints/demo_photo2painting: run 'make demo' first (about 8 minutes on 2 CPU cores)"; \
	  exit 2; \
	fi

# One photo painted like one painting (--model sinsc), about 4 minutes on 2 idle CPU cores.
demo-single: install weights
	bash scripts/demo_sinsc.sh

# One photo in, several paintings out (--model mmsc), about 10 minutes on 2 idle CPU cores.
demo-multi: install weights
	bash scripts/demo_mmsc.sh

clean-demo:
	rm -rf checkpoints/demo_photo2painting results/demo_photo2painting
