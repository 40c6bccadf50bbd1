# trashpole: `make demo` runs the whole job on the built-in synthetic data, `make test` the tests.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.10 2>/dev/null)
VENV := .venv
PY := $(VENV)/bin/python
DATA := datasets/trashpole
RUN := output/demo
CONFIG := configs/mask_rcnn_R_18_FPN_cpu_quick.yaml

.PHONY: venv demo data train evaluate predict test benchmark clean

$(VENV)/.installed: setup.py
	@if [ -z "$(PYTHON)" ]; then \
	  echo "error: python3.10 not found. trashpole needs Python 3.10 (the detectron2 wheel is built for it):"; \
	  echo "  install it (e.g. 'pyenv install 3.10' or your OS package) or run 'make PYTHON=/path/to/python3.10'"; \
	  exit 1; fi
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' || \
	  { echo "error: $(PYTHON) is not Python 3.10"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e ".[dev,export]"
	touch $@

venv: $(VENV)/.installed

$(DATA)/.complete: | $(VENV)/.installed
	$(PY) -m trashpole.data.synthetic --out $(DATA) --num-images 200 --seed 0
	touch $@

data: $(DATA)/.complete

train: data
	$(PY) tools/train_net.py --config-file $(CONFIG) --dataset-root $(DATA) OUTPUT_DIR $(RUN)

evaluate:
	$(PY) tools/train_net.py --config-file $(RUN)/config.yaml --eval-only --eval-split test \
	  MODEL.WEIGHTS $(RUN)/model_final.pth

predict:
	$(PY) tools/predict.py --run $(RUN) --input $(DATA)/test --output $(RUN)/predictions

demo: venv
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory data && t1=$$(date +%s) && \
	$(MAKE) --no-print-directory train && t2=$$(date +%s) && \
	$(MAKE) --no-print-directory evaluate && t3=$$(date +%s) && \
	$(MAKE) --no-print-directory predict && t4=$$(date +%s) && \
	$(PY) tools/show_results.py $(RUN) --times data=$$((t1-start)) train=$$((t2-t1)) \
	  evaluate=$$((t3-t2)) predict=$$((t4-t3))

test: venv
	$(PY) -m pytest -q tests

benchmark: venv
	$(PY) tools/benchmark.py --output output/benchmark

clean:
	rm -rf output $(DATA)
