#!/usr/bin/env bash
# The README's first command: set up, then the main job on the built-in simulator: build the default models
# once (cached in models/default) and compare them in closed loop on the simple circuit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# TensorFlow's C++ start-up chatter (CUDA probing on a machine without a GPU) is not the demo's output.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
.venv/bin/pilotnet demo "$@"
