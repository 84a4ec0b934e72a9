#!/usr/bin/env bash
# The README's first command: set up, then the main job on the built-in simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/pilotnet circuits
echo
.venv/bin/pilotnet drive-expert --circuit simple --laps 1 "$@"
