# AdReel — the two commands: `make demo` renders the demo ad, `make test` runs the tests.
# Both set everything up first (idempotent): system parts, ComfyUI, Python env.
SHELL := /bin/bash
PORT ?= 8188
RUNTIME := .runtime
ENV_FILE := $(RUNTIME)/env.sh
PYTEST_ARGS ?=
# Python keeps each module's compiled bytecode (__pycache__, ignored by git) even where the machine's image
# asks it not to: every ComfyUI start, test worker and fleet process would otherwise compile ComfyUI and the
# pack from source again (about 1.5 s of CPU a ComfyUI start)
unexport PYTHONDONTWRITEBYTECODE
# the tests run in three worker processes (pytest-xdist), each taking whole modules (see tests/conftest.py): on
# two cores a third keeps them busy while another waits on a server, a heartbeat or a poll
TEST_WORKERS ?= 3
PARALLEL := $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder,)

.PHONY: setup setup-demo setup-fleet setup-llm demo test serve bench bench-assembly bench-providers workflows music clean fleet-demo bench-fleet studio bench-api

# What each target sets up: the demo only what it needs; the tests everything (see scripts/setup_runtime.py).
setup:
	@python3 scripts/setup_runtime.py --for test

setup-demo:
	@python3 scripts/setup_runtime.py --for demo

setup-fleet:
	@python3 scripts/setup_runtime.py --for fleet

setup-llm:
	@python3 scripts/setup_runtime.py --for bench-llm

demo: setup-demo
	@source $(ENV_FILE) && ADREEL_PYTHON=$$ADREEL_PYTHON ADREEL_COMFYUI=$$ADREEL_COMFYUI \
	  $$ADREEL_PYTHON scripts/run_demo.py

# The whole suite on the pinned ComfyUI, then the integration tests that matter (marker `cores`: the demo,
# a corpus sample, the workflows, the editor on the frontend that core pins, the fleet) on the newer core.
test: setup
	@source $(ENV_FILE) && ADREEL_PYTHON=$$ADREEL_PYTHON ADREEL_COMFYUI=$$ADREEL_COMFYUI \
	  ADREEL_CURRENT_FRONTEND=$$ADREEL_CURRENT_FRONTEND \
	  ADREEL_NEXT_COMFYUI=$$ADREEL_NEXT_COMFYUI ADREEL_NEXT_PYTHON=$$ADREEL_NEXT_PYTHON \
	  $$ADREEL_PYTHON -m pytest tests $(PARALLEL) $(PYTEST_ARGS)
	@source $(ENV_FILE) && if [ -z "$$ADREEL_NEXT_COMFYUI" ]; then \
	  echo "[test] ComfyUI 0.33.0 is not set up (no ../shared/comfyui/ComfyUI-0.33.0.tar.gz): the suite ran on 0.3.75 alone"; \
	  else echo "[test] the integration tests marked 'cores' on ComfyUI 0.33.0 ($$ADREEL_NEXT_COMFYUI)"; \
	  ADREEL_TEST_PASS=next-core ADREEL_PYTHON=$$ADREEL_NEXT_PYTHON ADREEL_COMFYUI=$$ADREEL_NEXT_COMFYUI \
	  ADREEL_CURRENT_FRONTEND=$$ADREEL_CURRENT_FRONTEND \
	  $$ADREEL_NEXT_PYTHON -m pytest tests -m cores $(PARALLEL) $(PYTEST_ARGS); fi

serve: setup-demo
	@source $(ENV_FILE) && cd $$ADREEL_COMFYUI && $$ADREEL_PYTHON main.py --cpu --listen 127.0.0.1 --port $(PORT)

bench: setup
	@source $(ENV_FILE) && ADREEL_PYTHON=$$ADREEL_PYTHON ADREEL_COMFYUI=$$ADREEL_COMFYUI \
	  $$ADREEL_PYTHON tests/bench/bench_foundation.py

bench-assembly: setup
	@source $(ENV_FILE) && ADREEL_PYTHON=$$ADREEL_PYTHON ADREEL_COMFYUI=$$ADREEL_COMFYUI \
	  $$ADREEL_PYTHON tests/bench/bench_assembly.py

bench-providers: setup
	@source $(ENV_FILE) && $$ADREEL_PYTHON tests/bench/bench_providers_concurrency.py

# two small local models (SmolLM2-135M, Gemma 3 270M on llama-server, -c 4096) vs the template on 20 briefs → docs/local-llm-measurement.md
.PHONY: bench-llm
bench-llm: setup-llm
	@source $(ENV_FILE) && ADREEL_LLAMA_SERVER=$$ADREEL_LLAMA_SERVER ADREEL_LLAMA_MODEL=$$ADREEL_LLAMA_MODEL \
	  $$ADREEL_PYTHON tests/bench/bench_local_llm.py $(BENCH_LLM_ARGS)

# the fleet: a local Redis, SeaweedFS, two ComfyUI servers and two workers on loopback; four briefs through them
fleet-demo: setup-fleet
	@source $(ENV_FILE) && ADREEL_PYTHON=$$ADREEL_PYTHON ADREEL_COMFYUI=$$ADREEL_COMFYUI \
	  $$ADREEL_PYTHON tests/fleet/demo.py

# the job API on loopback: a local Redis, SeaweedFS, a ComfyUI with its worker, and python -m fleet api (Ctrl-C stops)
studio: setup-fleet
	@source $(ENV_FILE) && ADREEL_PYTHON=$$ADREEL_PYTHON ADREEL_COMFYUI=$$ADREEL_COMFYUI \
	  $$ADREEL_PYTHON tests/fleet/studio.py

# the job API's own cost: 100 submissions up to the cap, reads, event latency (a real Redis and the API, no worker)
bench-api: setup
	@source $(ENV_FILE) && $$ADREEL_PYTHON tests/bench/bench_api.py

# the fleet's scaling: one worker vs two on the same batch; a wait-bound ProviderRender batch on one vs three
bench-fleet: setup
	@source $(ENV_FILE) && ADREEL_PYTHON=$$ADREEL_PYTHON ADREEL_COMFYUI=$$ADREEL_COMFYUI \
	  $$ADREEL_PYTHON tests/bench/bench_fleet.py

music: setup
	@source $(ENV_FILE) && $$ADREEL_PYTHON scripts/make_music_bed.py

workflows: setup
	@source $(ENV_FILE) && ADREEL_PYTHON=$$ADREEL_PYTHON ADREEL_COMFYUI=$$ADREEL_COMFYUI \
	  $$ADREEL_PYTHON scripts/build_workflows.py

clean:
	rm -rf $(RUNTIME)/demo artifacts
