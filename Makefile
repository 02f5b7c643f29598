# The project's commands. Each target bootstraps .venv first (fast when nothing changed).
#   make example   run examples/research_agent.py (embedded SQLite, no API key)
#   make test      lint, then the whole test suite against SQLite and PostgreSQL
#                  (pytest args: make test ARGS="-k plan -x"; SKIP_LINT=1 skips lint)
#   make bench     run every bench/*.py
#   make lint      ruff check, ruff format --check, mypy
#   make format    ruff check --fix, ruff format
#   make clean     remove .venv, caches and a private test PostgreSQL cluster

SHELL := /bin/bash
VENV := .venv/bin

.PHONY: example test bench lint format clean bootstrap

bootstrap:
	@bash scripts/bootstrap.sh

example:
	bash scripts/example.sh

test:
	bash scripts/test.sh $(ARGS)

bench:
	bash scripts/bench.sh

lint: bootstrap
	$(VENV)/ruff check src tests
	$(VENV)/ruff format --check src tests
	$(VENV)/mypy

# Remaining, unfixable findings are printed but do not stop the formatting.
format: bootstrap
	$(VENV)/ruff check --fix --exit-zero src tests
	$(VENV)/ruff format src tests

clean:
	-bash scripts/postgres.sh stop
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
