#!/usr/bin/env bash
# The README's second command (and CI's): set up with the test tools, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
# The ament linters (flake8 at 99 columns, pep257, copyright, xmllint) are tests in test/.
# pytest exits 5 when it collects nothing: that is a failure here too, as is any other non-zero code.
.venv/bin/python -m pytest -q "$@"
