# AdReel — the two commands: `make demo` renders the demo ad, `make test` runs the tests.
# Both set everything up first (idempotent): system parts, ComfyUI, Python env.
SHELL := /bin/bash
PORT ?= 8188
RUNTIME := .runtime
ENV_FILE := $(RUNTIME)/env.sh
PYTEST_ARGS ?=

.PHONY: setup demo test serve bench bench-assembly bench-providers workflows music clean fleet-demo bench-fleet studio bench-api

setup:
	@python3 scripts/setup_runtime.py

demo: setup
	@source $(ENV_FILE) && ADREEL_PYTHON=$$ADREEL_PYTHON ADREEL_COMFYUI=$$ADREEL_COMFYUI \
	  $$ADREEL_PYTHON scripts/run_demo.py

test: setup
	@source $(ENV_FILE) && ADREEL_PYTHON=$$ADREEL_PYTHON ADREEL_COMFYUI=$$ADREEL_COMFYUI \
	  ADREEL_CURRENT_FRONTEND=$$ADREEL_CURRENT_FRONTEND \
	  $$ADREEL_PYTHON -m pytest tests $(PYTEST_ARGS)

serve: setup
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
bench-llm: setup
	@source $(ENV_FILE) && ADREEL_LLAMA_SERVER=$$ADREEL_LLAMA_SERVER ADREEL_LLAMA_MODEL=$$ADREEL_LLAMA_MODEL \
	  $$ADREEL_PYTHON tests/bench/bench_local_llm.py $(BENCH_LLM_ARGS)

# the fleet: a local Redis, SeaweedFS, two ComfyUI servers and two workers on loopback; four briefs through them
fleet-demo: setup
	@source $(ENV_FILE) && ADREEL_PYTHON=$$ADREEL_PYTHON ADREEL_COMFYUI=$$ADREEL_COMFYUI \
	  $$ADREEL_PYTHON tests/fleet/demo.py

# the job API on loopback: a local Redis, SeaweedFS, a ComfyUI with its worker, and python -m fleet api (Ctrl-C stops)
studio: setup
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
