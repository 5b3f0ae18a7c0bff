# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
JS := tests/interop/js

FUZZ := tests/protocol/test_fuzz_codec.py tests/protocol/test_jsonrpc.py tests/protocol/test_sdp.py \
	tests/media/test_fuzz_media.py tests/media/test_keyframe_detection.py tests/emulator/test_fuzz_config.py

.PHONY: build sanitize docker-steps fuzz soak run test install install-test js-deps media-deps browser-deps rtp-deps lint typecheck unit clean bench bench-quick bench-bridged bench-deps bench-throughput bench-media bench-composite

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py emulator/media/fastpath/_forward.c benchmarks/_loadgen.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml setup.py emulator/media/fastpath/_forward.c benchmarks/_loadgen.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## run: create the virtual environment, install, start the server with its defaults
run: install
	$(BIN)/kurento-emulator

## build: compile the media forwarding loop (emulator/media/fastpath/_forward.c) and the
## benchmark's load generator (benchmarks/_loadgen.c) in place (the
## editable install does it too); without a C compiler the server uses the Python loop
build: install
	$(BIN)/python setup.py -q build_ext --inplace

## sanitize: the forwarding loop built with ASan and UBSan, the data-path tests run on it, then
## the normal build put back
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g
SANITIZE_PRELOAD = $(shell gcc -print-file-name=libasan.so) $(shell gcc -print-file-name=libubsan.so)
SANITIZE_TESTS := tests/media/test_fastpath.py tests/media/test_datapath.py
sanitize: install-test
	CFLAGS="$(SANITIZE_FLAGS)" $(BIN)/python setup.py -q build_ext --inplace --force
	LD_PRELOAD="$(SANITIZE_PRELOAD)" ASAN_OPTIONS=detect_leaks=0 REQUIRE_COMPILED=1 \
		$(BIN)/python -m pytest -p no:xdist -p no:cacheprovider $(SANITIZE_TESTS); \
		status=$$?; $(BIN)/python setup.py -q build_ext --inplace --force; exit $$status

## js-deps: the official kurento-client 7.3.0 for the interop tests
js-deps: $(JS)/node_modules/.installed

$(JS)/node_modules/.installed: $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends

## media-deps: Debian packages the media tests use as real peers and tools
## (coturn for STUN/TURN, tshark to read the capture files)
media-deps:
	@command -v turnserver >/dev/null || ($(SUDO) apt-get update -qq && $(APT_INSTALL) coturn)
	@command -v tshark >/dev/null || ($(SUDO) apt-get update -qq && $(APT_INSTALL) tshark)

## browser-deps: Debian's chromium for tests/media/test_browser.py (never `playwright install`)
browser-deps:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && $(APT_INSTALL) chromium)

## rtp-deps: Debian's ffmpeg, the plain RTP/SRTP peer of the RtpEndpoint tests
rtp-deps:
	@command -v ffmpeg >/dev/null || ($(SUDO) apt-get update -qq && $(APT_INSTALL) ffmpeg)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

## docker-steps: the Dockerfile's RUN/COPY steps in a clean venv, then CMD and HEALTHCHECK (no
## Docker engine needed; tests/emulator/test_docker_build_steps.py runs it in `make test`)
docker-steps: install-test
	$(BIN)/python scripts/docker_build_steps.py

typecheck: install-test
	$(BIN)/mypy

## unit: the suite on one pytest-xdist worker per CPU this process may run on (nproc counts the
## affinity mask, as a CPU-pinned container sets it; `-n auto` counts the host's physical cores);
## override with `make unit WORKERS=4`, or WORKERS=0 for one process
WORKERS ?= $(shell nproc)
unit: install-test js-deps media-deps browser-deps rtp-deps
	$(BIN)/python -m pytest -n $(WORKERS)

## test: install the test extras and everything the tests need, then ruff, mypy and pytest
test: install-test js-deps lint typecheck unit

## fuzz: every property test with the long hypothesis profile (10,000 examples each), untimed
fuzz: install-test
	$(BIN)/python -m pytest -n $(WORKERS) --hypothesis-profile=long --timeout=0 \
		--hypothesis-show-statistics -k "fuzz or garbage" $(FUZZ)

## soak: SOAK_CYCLES full calls built, carried and released, without and with media workers;
## what the server still holds afterwards (benchmarks/results/soak-<date>-workers<N>.json)
SOAK_CYCLES ?= 500
SOAK_WARMUP ?= 100
soak: install-test rtp-deps
	$(BIN)/python -m benchmarks.soak --cycles $(SOAK_CYCLES) --warmup $(SOAK_WARMUP) --media-workers 1
	$(BIN)/python -m benchmarks.soak --cycles $(SOAK_CYCLES) --warmup $(SOAK_WARMUP) --media-workers 2

bench: install-test
	$(BIN)/python -m benchmarks.control_plane

bench-quick: install-test
	$(BIN)/python -m benchmarks.control_plane --quick

## bench-bridged: concurrent WebRTC Opus <-> RTP PCMA calls, transcoded, until loss > 1%
bench-bridged: install-test
	$(BIN)/python -m benchmarks.bridged_calls
## bench-deps: Debian's janus 1.1, the C baseline of the throughput benchmark
bench-deps:
	@command -v janus >/dev/null || ($(SUDO) apt-get update -qq && $(APT_INSTALL) janus)

## bench-throughput: media throughput sweep against the emulator and its baselines
bench-throughput: install-test
	$(BIN)/python -m benchmarks.throughput

## bench-media: players into WebRTC sinks and WebRTC sources into recorders, remux and transcode
bench-media: install-test
	$(BIN)/python -m benchmarks.media_elements
## bench-composite: N participants in one Composite (audio, audio + video): pace, CPU, latency
bench-composite: install-test
	$(BIN)/python -m benchmarks.composite

clean:
	rm -rf $(VENV) $(JS)/node_modules .mypy_cache .ruff_cache .pytest_cache
