# Quick start:  make demo   |   make test
# Both do the whole (idempotent) set-up first: .venv, the pinned stack,
# mmcv built from source (cached under ~/.cache/mmltm), toy data.
PY := .venv/bin/python

.PHONY: setup demo test toy-data clean-toy

setup:
	bash tools/setup_env.sh

toy-data: setup
	$(PY) tools/misc/make_toy_data.py --out data/toy --if-missing

demo: setup
	$(PY) tools/demo.py

test: setup
	$(PY) -m pytest tests

clean-toy:
	rm -rf data/toy
