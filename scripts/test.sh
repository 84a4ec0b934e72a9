#!/usr/bin/env bash
# The README's second command (and CI's): set up with the test tools, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/python -m flake8 pilotnet_optimized test setup.py launch
# pytest exits 5 when it collects nothing: that is a failure here too, as is any other non-zero code.
.venv/bin/python -m pytest -q "$@"
