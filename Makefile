# Quick start: `make demo` runs the main job, `make test` runs the whole suite.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export KERAS_BACKEND := torch

.PHONY: demo test lint fuzz bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[pytorch,keras,onnxruntime,search,ray,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/archspec build specs/mnv2_1.0.yaml --target onnx -o out/mnv2_1.0/onnx
	$(BIN)/archspec report specs/mnv2_1.0.yaml --activation-dtype float16 --format markdown \
		-o out/mnv2_1.0/report.md
	@echo "ONNX model: out/mnv2_1.0/onnx/mobilenet_v2_1_0_224.onnx (weights: out/mnv2_1.0/onnx/weights.npz)"
	@echo "Report:     out/mnv2_1.0/report.md"

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q -p no:cacheprovider

# The long fuzzing campaign: 10,000 cases per spec property (FUZZ_EXAMPLES=N to change), and
# 1,000 / 1,000 / 200 / 50 random specs built for PyTorch / ONNX / Keras / C.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider \
		tests/test_fuzz.py tests/test_fuzz_targets.py

lint: $(STAMP)
	$(BIN)/ruff format --check archspec tests benchmarks
	$(BIN)/ruff check archspec tests benchmarks

clean:
	rm -rf $(VENV) out build dist
