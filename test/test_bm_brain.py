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

"""The Behavior Metrics brain, loaded and driven exactly as Behavior Metrics' pilot does."""

from __future__ import annotations

import importlib
from pathlib import Path
import subprocess
import sys

from helpers import assert_one_line_error, REPO
import numpy as np
from pilotnet_optimized.bm.install import BRAIN_FILE, CONFIG_FILE, install
from pilotnet_optimized.laps import EndReason
from pilotnet_optimized.sim import get_circuit, SimConfig, Simulator
from pilotnet_optimized.sim.episodes import run_closed_loop
import pytest
import yaml

MODEL = REPO / 'models' / 'default' / 'pilotnet_nvidia.keras'


class _Image:

    def __init__(self) -> None:
        self.data = np.zeros((3, 3, 3), np.uint8)   # Behavior Metrics' camera before a frame


class _Camera:

    def __init__(self) -> None:
        self.image = _Image()

    def getImage(self) -> _Image:  # noqa: N802 (Behavior Metrics' name)
        return self.image


class _Motors:

    def __init__(self) -> None:
        self.v = self.w = None

    def sendV(self, v: float) -> None:  # noqa: N802
        self.v = v

    def sendW(self, w: float) -> None:  # noqa: N802
        self.w = w


class _Sensors:

    def __init__(self) -> None:
        self.camera = _Camera()

    def get_camera(self, name: str) -> _Camera:
        assert name == 'camera_0'
        return self.camera


class _Actuators:

    def __init__(self) -> None:
        self.motors = _Motors()

    def get_motor(self, name: str) -> _Motors:
        assert name == 'motors_0'
        return self.motors


class _Handler:

    def __init__(self) -> None:
        self.frames = 0

    def update_frame(self, frame_id: str, data: np.ndarray) -> None:
        self.frames += 1


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / 'BehaviorMetrics'
    for sub in ('behavior_metrics/brains', 'behavior_metrics/brains/gazebo',
                'behavior_metrics/brains/gazebo/f1'):
        (root / sub).mkdir(parents=True)
        (root / sub / '__init__.py').write_text('')
    (root / 'behavior_metrics' / 'configs' / 'gazebo').mkdir(parents=True)
    return root


def test_install_writes_the_brain_and_config_and_the_brain_drives_a_lap(tmp_path, monkeypatch):
    root = _checkout(tmp_path)
    brain_path, config_path = install(root, str(MODEL))
    bm = root / 'behavior_metrics'
    assert brain_path == bm / 'brains' / 'gazebo' / 'f1' / BRAIN_FILE
    assert config_path == bm / 'configs' / 'gazebo' / CONFIG_FILE
    robot = yaml.safe_load(config_path.read_text())['Behaviors']['Robot']
    assert robot['BrainPath'] == f'brains/gazebo/f1/{BRAIN_FILE}'
    assert robot['PilotTimeCycle'] == 50 and robot['Parameters']['Model'] == str(MODEL)
    assert yaml.safe_load(config_path.read_text())['Behaviors']['Stats']['PerfectLap']
    install(root, str(MODEL))       # ours: rewritten without --force

    # Behavior Metrics' brains_handler: import brains.gazebo.f1.<module>, Brain(...); the pilot:
    # Parameters.Model as model, the other Parameters as config, execute() every 50 ms.
    monkeypatch.syspath_prepend(str(bm))
    module = importlib.import_module(f'brains.gazebo.f1.{BRAIN_FILE[:-3]}')
    params = dict(robot['Parameters'])
    model = params.pop('Model')
    sensors, actuators, handler = _Sensors(), _Actuators(), _Handler()
    brain = module.Brain(sensors, actuators, model=model, handler=handler, config=params)
    brain.execute()                 # no frame yet: a zero command, no inference
    assert (actuators.motors.v, actuators.motors.w) == (0.0, 0.0) and not brain.inference_times
    sim = Simulator(get_circuit('simple'), SimConfig(control_period=0.05))

    def pilot_cycle(s: Simulator) -> tuple[float, float]:
        sensors.camera.image.data = s.frame()
        brain.execute()
        return actuators.motors.v, actuators.motors.w

    result = run_closed_loop(sim, pilot_cycle, laps=1)
    assert result.end_reason is EndReason.LAPS_DONE, result.to_dict()
    assert result.metrics.percentage_completed >= 99.5
    frames = len(result.trajectory.t) - 1
    assert len(brain.inference_times) == frames and 0 < np.median(brain.inference_times) < 1.0
    assert len(brain.suddenness_distance) == frames - 1
    assert brain.first_image.shape == (480, 640, 3) and brain.gpu_inference is False
    assert handler.frames == frames


def test_install_refuses_what_is_not_a_checkout_and_files_not_ours(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'pilotnet_optimized.cli', 'bm-brain', 'install',
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert_one_line_error(proc, 'not a Behavior Metrics checkout')
    root = _checkout(tmp_path)
    brain = root / 'behavior_metrics' / 'brains' / 'gazebo' / 'f1' / BRAIN_FILE
    brain.write_text('# somebody else\n')
    with pytest.raises(Exception, match='was not written by us'):
        install(root, str(MODEL))
    assert brain.read_text() == '# somebody else\n'
