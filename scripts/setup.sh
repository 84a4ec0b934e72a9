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

# --test on Debian/Ubuntu as root or with passwordless sudo: ROS 1 (Noetic's packages from the distro) for
# the tests of the ROS 1 bridge (test/test_ros1_bridge.py; elsewhere they skip and say why). Quick when present.
ros1_debs=(ros-core python3-rospy python3-sensor-msgs python3-nav-msgs python3-geometry-msgs python3-std-srvs
  python3-rosgraph-msgs python3-rosbag)
ros1_present() { [[ "$(dpkg-query -W -f='${Status}\n' "${ros1_debs[@]}" 2>/dev/null | grep -c 'install ok installed')" == "${#ros1_debs[@]}" ]]; }
if [[ "${1:-}" != --test ]] || ! command -v dpkg-query >/dev/null || ros1_present; then
  :  # not asked for, not Debian/Ubuntu, or already installed
elif [[ "${1:-}" == --test ]] && command -v apt-get >/dev/null; then
  sudo_=(); if [[ "$(id -u)" != 0 ]]; then sudo_=(sudo -n); fi
  if [[ "$(id -u)" == 0 ]] || sudo -n true 2>/dev/null; then
    echo "[setup] installing ROS 1 from the distro for the bridge tests: ${ros1_debs[*]}"
    if ! { "${sudo_[@]}" apt-get install -y -qq "${ros1_debs[@]}" >/dev/null 2>&1 \
        || { "${sudo_[@]}" apt-get update -qq >/dev/null 2>&1 \
             && "${sudo_[@]}" apt-get install -y -qq "${ros1_debs[@]}" >/dev/null 2>&1; }; }; then
      echo "[setup] could not install ROS 1 with apt-get: the ROS 1 bridge tests will skip" >&2
    fi
  else
    echo "[setup] not root and no passwordless sudo: ROS 1 not installed, the ROS 1 bridge tests will skip" >&2
  fi
fi

# setup.cfg sends console scripts to lib/pilotnet_optimized (for `ros2 run`); make sure `pilotnet` is on the
# venv's PATH whichever way this pip placed it.
if [[ ! -x "$VENV/bin/pilotnet" ]]; then
  ln -sf "$(pwd)/$VENV/lib/pilotnet_optimized/pilotnet" "$VENV/bin/pilotnet"
fi
echo "[setup] ready: $VENV ($("$VENV/bin/python" -c 'import pilotnet_optimized as p; print("pilotnet_optimized", p.__version__)'))"
