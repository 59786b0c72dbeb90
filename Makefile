# Set-up and the two commands the README promises.
#   make demo   - create .venv, install, run the main job on the built-in dataset
#   make test   - create .venv, install with test extras, run the test suite
#   make mediapipe - .venv-mediapipe: MediaPipe Tasks for tests/test_mediapipe.py (make test builds it)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# MediaPipe pulls OpenCV 5, which would replace the project's OpenCV 4: its own venv, pinned.
MP_VENV := .venv-mediapipe
MP_REQS := tests/mediapipe-requirements.txt
MP_STAMP := $(MP_VENV)/.installed

.PHONY: install demo test test-fast mediapipe clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mobilenets demo

# Built once, again only when the pinned list changes; three tries against network blips, and a
# failed build leaves no venv behind (tests/test_mediapipe.py then skips and quotes the log).
$(MP_STAMP): $(MP_REQS)
	@rm -rf $(MP_VENV)
	@for try in 1 2 3; do \
	  $(PY) -m venv $(MP_VENV) \
	  && $(MP_VENV)/bin/pip install -q --disable-pip-version-check --only-binary=:all: -r $(MP_REQS) \
	  && $(MP_VENV)/bin/python -c "from mediapipe.tasks.python import vision" \
	  && touch $@ && exit 0; \
	  echo "MediaPipe venv: try $$try failed" >&2; rm -rf $(MP_VENV); sleep 5; \
	done; exit 1

mediapipe: $(MP_STAMP)

test: $(STAMP)
	@# chromium renders the compare report in tests (skipped when it is missing); never fails the build
	@command -v chromium >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || true; }
	@# MediaPipe checks our .tflite files in tests; a failed build skips that test, never fails the build
	@$(MAKE) --no-print-directory $(MP_STAMP) >.venv-mediapipe.log 2>&1 \
	  || echo "MediaPipe venv not built (see .venv-mediapipe.log): tests/test_mediapipe.py will skip" >&2
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(MP_VENV) .venv-mediapipe.log build src/*.egg-info .pytest_cache
