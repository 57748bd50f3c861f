#!/usr/bin/env bash
# Install ngshare with its test dependencies in .venv, lint, and run the whole suite
# (one pytest worker per CPU).
# Usage: bash scripts/test.sh [pytest args...]
# NGSHARE_TEST_DB=postgresql runs it against PostgreSQL on 127.0.0.1:5432 (default: sqlite).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# rfc3987-syntax builds ~35 parsers on import and every JupyterHub start pays ~2 s for it;
# only jsonschema's "iri" format check uses it (see SLOW_IMPORTS in bench/venvs.py)
.venv/bin/python -m pip uninstall --quiet --yes rfc3987-syntax
.venv/bin/ruff format --check src tests bench
.venv/bin/ruff check src tests bench
# -n auto: one pytest worker per CPU (pytest-xdist); every test has its own ports,
# directories and database, so they run side by side. --dist loadscope keeps each
# module on one worker: some modules are a story told in order over one module-scoped
# server (the browser tests create a course, then use it), and their fixtures start once.
# --durations: the slowest tests in every log, to keep the suite under its time budget
exec .venv/bin/pytest -n auto --dist loadscope --durations=15 "$@"
