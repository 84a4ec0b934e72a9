# Copyright 2026 pilotnet_optimized contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""The ROS 2 package as colcon sees it: a real `colcon build` into a scratch workspace."""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLCON = Path(sys.executable).with_name('colcon')


def test_package_xml_is_format_3_ament_python():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'pilotnet_optimized'
    assert root.find('export/build_type').text == 'ament_python'
    deps = {e.text for e in root.findall('exec_depend')}
    assert {'rclpy', 'sensor_msgs', 'geometry_msgs', 'nav_msgs', 'std_msgs'} <= deps


def test_setup_py_and_package_xml_agree():
    from catkin_pkg.package import parse_package
    pkg = parse_package(str(ROOT / 'package.xml'))  # also validates the maintainer e-mail
    setup_py = (ROOT / 'setup.py').read_text()
    assert f"version='{pkg.version}'" in setup_py
    import pilotnet_optimized
    assert pilotnet_optimized.__version__ == pkg.version


@pytest.mark.skipif(not COLCON.exists(), reason='colcon is installed by scripts/setup.sh --test')
def test_colcon_build_installs_ros2_run_executables(tmp_path):
    ws = tmp_path / 'ws'
    src = ws / 'src' / 'pilotnet_optimized'
    src.parent.mkdir(parents=True)
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            '.venv', '.git', 'build', 'install', 'log', 'data', 'runs', '__pycache__', '*.egg-info'
        ),
    )
    env = {**os.environ, 'COLCON_HOME': str(tmp_path / 'colcon_home')}
    listed = subprocess.run(
        [str(COLCON), 'list'], cwd=ws, capture_output=True, text=True, env=env, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    # Demoted to a plain python package if package.xml did not parse: then ros2 run would not find
    # it.
    assert (
        'pilotnet_optimized' in listed.stdout and '(ros.ament_python)' in listed.stdout
    ), listed.stdout
    build = subprocess.run([str(COLCON), 'build', '--event-handlers', 'console_cohesion-'], cwd=ws,
                           capture_output=True, text=True, env=env, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    install = ws / 'install' / 'pilotnet_optimized'
    exe = install / 'lib' / 'pilotnet_optimized' / 'pilotnet'
    assert exe.is_file() and os.access(exe, os.X_OK)
    share = install / 'share' / 'pilotnet_optimized'
    assert (share / 'package.xml').is_file()
    assert (
        install / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'pilotnet_optimized'
    ).is_file()
    # The installed executable runs (its package comes from the workspace's site-packages).
    site = next(install.glob('lib/python3*/site-packages'))
    # Every sub-package is installed: one without __init__.py is skipped by find_packages, and an
    # editable install next to the test would hide that.
    for sub in sorted(p.parent for p in (ROOT / 'pilotnet_optimized').glob('*/*.py')):
        assert (
            site / 'pilotnet_optimized' / sub.name / '__init__.py'
        ).is_file(), f'{sub.name} not installed'
    run = subprocess.run(
        [sys.executable, str(exe), 'circuits', '--json'],
        capture_output=True,
        text=True,
        env={**env, 'PYTHONPATH': f'{site}{os.pathsep}{env.get("PYTHONPATH", "")}'},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert '"simple"' in run.stdout
