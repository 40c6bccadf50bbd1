# trashpole: `make demo` runs the whole job on the built-in synthetic data, `make test` the tests.
SHELL := /bin/bash
# PYTHON: the interpreter of the venv (default: the newest CPython 3.10-3.13 found, see
# tools/find_python.sh). VENV: where it goes.
PYTHON ?=
VENV ?= .venv
PY := $(VENV)/bin/python
DATA := datasets/trashpole
RUN := output/demo
CONFIG := configs/mask_rcnn_R_18_FPN_cpu_quick.yaml
# the demo's training seed, fixed so that `make demo` gives the figures docs/training.md quotes
# (CPU training is deterministic here; `make demo SEED=1` trains another, a few points of test
# segm AP50 apart)
SEED := 0

.PHONY: venv clean-venv demo data train evaluate predict test benchmark clean lock

# built from scratch, and marked done only at the end (tools/make_venv.sh)
$(VENV)/.installed: setup.py constraints.txt $(wildcard locks/*.txt) tools/install_detectron2.py \
  tools/make_venv.sh
	@tools/make_venv.sh "$(PYTHON)" "$(VENV)"

venv: $(VENV)/.installed

$(DATA)/.complete: | $(VENV)/.installed
	$(PY) tools/make_synthetic.py --out $(DATA) --num-images 200 --seed 0
	touch $@

data: $(DATA)/.complete

train: data
	$(PY) tools/train_net.py --config-file $(CONFIG) --dataset-root $(DATA) SEED $(SEED) \
	  OUTPUT_DIR $(RUN)

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

# re-resolve locks/python3.X.txt for every supported Python found (needs the package index)
lock:
	python3 tools/lock_env.py

clean:
	rm -rf output $(DATA)

clean-venv:
	rm -rf $(VENV)
