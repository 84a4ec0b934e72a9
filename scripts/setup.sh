#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv from the pinned requirements.
#   scripts/setup.sh          core + ROS 2 PyPI wheels (for machines without a ROS 2 distro)
#   scripts/setup.sh --test   the same plus the test tools (pytest, colcon, flake8)
#   PILOTNET_ROS_FROM_DISTRO=1 scripts/setup.sh   skip the ROS wheels: rclpy comes from a sourced distro
# It is quick when nothing changed: a stamp of the requirement files' hash skips pip entirely.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
files=(requirements/core.txt)
if [[ "${PILOTNET_ROS_FROM_DISTRO:-0}" != 1 ]]; then files+=(requirements/ros-pypi.txt); fi
if [[ "${1:-}" == --test ]]; then files+=(requirements/test.txt); fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[setup] creating $VENV with $($PYTHON --version)"
  if [[ "${PILOTNET_ROS_FROM_DISTRO:-0}" == 1 ]]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"   # sees the distro's rclpy
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi

stamp="$VENV/.pilotnet-requirements"
want="$(cat "${files[@]}" setup.py | sha256sum | cut -d' ' -f1) ${files[*]}"
if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$want" ]]; then
  echo "[setup] installing pinned requirements: ${files[*]} (first time: about 2 minutes, 3 GB)"
  reqs=()
  for f in "${files[@]}"; do reqs+=(-r "$f"); done
  # Some machines' pip configuration names local index folders that do not exist; hide that noise only.
  quiet_pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }
  quiet_pip install --quiet --disable-pip-version-check "${reqs[@]}"
  # --no-deps: every dependency is pinned above; editable so the checkout is what runs.
  quiet_pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi

# setup.cfg sends console scripts to lib/pilotnet_optimized (for `ros2 run`); make sure `pilotnet` is on the
# venv's PATH whichever way this pip placed it.
if [[ ! -x "$VENV/bin/pilotnet" ]]; then
  ln -sf "$(pwd)/$VENV/lib/pilotnet_optimized/pilotnet" "$VENV/bin/pilotnet"
fi
echo "[setup] ready: $VENV ($("$VENV/bin/python" -c 'import pilotnet_optimized as p; print("pilotnet_optimized", p.__version__)'))"
