# mask-edge: make run | make test | make model | make lint | make bench | make install
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
DATA ?= $(SHARED)/data/larxel-face-mask
YUNET ?= $(SHARED)/models/face-detectors/yunet/face_detection_yunet_2023mar.onnx
MODEL_VERSION ?= 1.0.0

.PHONY: run test lint model bench check-config install clean convert-env

# The device install: runtime dependencies plus the developer tools.
$(BIN)/.device: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The workstation install: TensorFlow and legacy Keras 2 loading as well.
$(BIN)/.convert: $(BIN)/.device
	$(BIN)/pip install --quiet -e '.[convert,dev]'
	$(BIN)/pip install --quiet --no-deps 'tf-keras>=2.16'
	touch $@

convert-env: $(BIN)/.convert

run: $(BIN)/.device
	SHARED=$(SHARED) BIN=$(BIN) scripts/demo.sh

test: $(BIN)/.convert lint
	MASK_EDGE_SHARED=$(SHARED) $(BIN)/pytest -q

lint: $(BIN)/.device
	$(BIN)/ruff check edge_agent convert tests bench scripts
	$(BIN)/ruff format --check edge_agent convert tests bench scripts
	$(BIN)/mypy edge_agent convert

model: $(BIN)/.convert
	time $(BIN)/edge-convert train --data $(DATA) --detector-model $(YUNET) \
		--out models/mask-classifier --version $(MODEL_VERSION)

bench: $(BIN)/.convert
	MASK_EDGE_SHARED=$(SHARED) $(BIN)/python bench/classifier_latency.py
	MASK_EDGE_SHARED=$(SHARED) $(BIN)/python bench/agent_fps.py
	MASK_EDGE_SHARED=$(SHARED) $(BIN)/python bench/decisions.py
	$(BIN)/python bench/outbox_cost.py
	$(BIN)/python bench/camera_recovery.py
	MASK_EDGE_SHARED=$(SHARED) $(BIN)/pytest -q -s tests/test_faults.py

check-config: $(BIN)/.device
	$(BIN)/edge-agent check-config config/agent.yaml

# The device install, as root on the device: a virtual environment in PREFIX,
# YuNet (YUNET_FILE=path when there is no internet), the model, the config,
# the mask-edge user and the systemd unit. DESTDIR=folder stages the files
# only. README.md, "Deploy on a Raspberry Pi", walks through it.
PREFIX ?= /opt/mask-edge
install:
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' MODEL='$(MODEL)' \
		YUNET_FILE='$(YUNET_FILE)' PYTHON='$(PYTHON)' PIP_ARGS='$(PIP_ARGS)' \
		CONFIG_PYTHON='$(CONFIG_PYTHON)' scripts/install-device.sh

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
