# Benchmark helpers (bench/README.md). Never part of `make test`.
# The Makefile's own `bench` target belongs to the core; these sit beside it.
BENCH_ARGS ?=

.PHONY: bench-all bench-quick bench-aa bench-profile bench-search bench-cold bench-tracing

## Full run: HTTP matrix (both eras, c=1/8/32/64), stdio, cold start, memory, pipeline, search 10k/100k/1M.
bench-all: install-dev
	$(VENV)/bin/python -m bench.run_all $(BENCH_ARGS)

## About a minute: checks the harness end to end (search at 10k only).
bench-quick: install-dev
	$(VENV)/bin/python -m bench.run_all --quick $(BENCH_ARGS)

## A/A run: the bare SDK against itself; shows the harness and the machine's noise.
bench-aa: install-dev
	$(VENV)/bin/python -m bench.run_all --quick --candidate baseline --skip search,pipeline $(BENCH_ARGS)

## Full run plus py-spy profiles of both HTTP servers and the candidate's import times.
bench-profile: install-dev
	$(VENV)/bin/python -m bench.run_all --profile $(BENCH_ARGS)

bench-search: install-dev
	$(VENV)/bin/python -m bench.search_notes $(BENCH_ARGS)

bench-cold: install-dev
	$(VENV)/bin/python -m bench.cold_start --runs 10 $(BENCH_ARGS)

## Tracing off vs on (and vs an earlier revision with BENCH_ARGS="--before <rev>"): cold start, calls/s, CPU/call.
bench-tracing: install-dev
	$(VENV)/bin/python -m bench.tracing_cost $(BENCH_ARGS)
