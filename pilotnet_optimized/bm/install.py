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

"""
``pilotnet bm-brain install BM_CHECKOUT``: put the brain where Behavior Metrics looks for it.

Writes ``behavior_metrics/brains/gazebo/f1/brain_f1_pilotnet_optimized.py`` (a small module whose
``Brain`` is :class:`pilotnet_optimized.bm.brain.Brain`, with this project on ``sys.path`` when it
is not installed in Behavior Metrics' Python) and an example config
``behavior_metrics/configs/gazebo/pilotnet_optimized.yml`` (``BrainPath``, ``Parameters.Model``,
``PilotTimeCycle: 50``, ``Stats.PerfectLap``). Files it did not write are never overwritten.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pilotnet_optimized.errors import PilotnetError

__all__ = ['BRAIN_FILE', 'CONFIG_FILE', 'add_arguments', 'run', 'install']

BRAIN_FILE = 'brain_f1_pilotnet_optimized.py'
CONFIG_FILE = 'pilotnet_optimized.yml'
MARKER = '# Written by pilotnet bm-brain install'
PROJECT = Path(__file__).resolve().parents[2]

BRAIN_TEMPLATE = '''{marker} (pilotnet_optimized, Apache-2.0).
"""Behavior Metrics brain: drives the F1 car with a pilotnet_optimized model (any backend)."""
import sys
from pathlib import Path

try:
    import pilotnet_optimized  # noqa: F401
except ImportError:
    sys.path.insert(0, {project!r})
from pilotnet_optimized.bm.brain import Brain as _Brain

BM_ROOT = Path(__file__).resolve().parents[3]


class Brain(_Brain):
    """pilotnet_optimized's brain, finding models in Behavior Metrics' models folder too."""

    def __init__(self, sensors, actuators, model=None, handler=None, config=None):
        super().__init__(sensors, actuators, model=model, handler=handler, config=config,
                         bm_root=BM_ROOT)
'''

CONFIG_TEMPLATE = """{marker}: an example, Behavior Metrics' noetic-devel keys.
# python driver_gazebo.py -c configs/gazebo/{config} -g
Behaviors:
    Robot:
        Sensors:
            Cameras:
                Camera_0:
                    Name: 'camera_0'
                    Topic: '/F1ROS/cameraL/image_raw'
            Pose3D:
                Pose3D_0:
                    Name: 'pose3d_0'
                    Topic: '/F1ROS/odom'
        Actuators:
            Motors:
                Motors_0:
                    Name: 'motors_0'
                    Topic: '/F1ROS/cmd_vel'
                    MaxV: 3
                    MaxW: 0.3
        BrainPath: 'brains/gazebo/f1/{brain}'
        PilotTimeCycle: 50
        Parameters:
            Model: '{model}'
            Backend: 'auto'
            NumThreads: 1
            GPU: False
            ImageTranform: ''
        Type: 'f1'
    Simulation:
        World: /opt/jderobot/share/jderobot/gazebo/launch/simple_circuit.launch
    Dataset:
        In: '/tmp/my_bag.bag'
        Out: ''
    Stats:
        Out: './'
        PerfectLap: './perfect_bags/lap-simple-circuit.bag'
    Layout:
        Frame_0:
            Name: frame_0
            Geometry: [1, 1, 2, 2]
            Data: rgbimage
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pilotnet bm-brain`` arguments."""
    parser.add_argument('action', choices=['install'], help='install: write the brain and config')
    parser.add_argument('checkout',
                        help="Behavior Metrics' checkout (or its behavior_metrics folder)")
    parser.add_argument('--model', default='models/default/pilotnet_nvidia.keras',
                        help='model for Parameters.Model (a path is written absolute)')
    parser.add_argument('--force', action='store_true', help='overwrite files we did not write')


def _root(checkout: Path) -> Path:
    for root in (checkout / 'behavior_metrics', checkout):
        if (root / 'brains').is_dir():
            return root
    raise PilotnetError(
        f'{checkout}: not a Behavior Metrics checkout (no behavior_metrics/brains)')


def _write(path: Path, text: str, force: bool) -> None:
    if path.exists() and not force and MARKER not in path.read_text(errors='replace'):
        raise PilotnetError(f'{path} exists and was not written by us: use --force')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def install(checkout: str | Path, model: str, force: bool = False) -> tuple[Path, Path]:
    """Write the brain and the example config into a Behavior Metrics checkout; return both."""
    root = _root(Path(checkout).expanduser())
    model_path = Path(model).expanduser()
    model_text = str(model_path.absolute()) if model_path.exists() else model
    brain = root / 'brains' / 'gazebo' / 'f1' / BRAIN_FILE
    config = root / 'configs' / 'gazebo' / CONFIG_FILE
    _write(brain, BRAIN_TEMPLATE.format(marker=MARKER, project=str(PROJECT)), force)
    _write(config, CONFIG_TEMPLATE.format(marker=MARKER, config=CONFIG_FILE, brain=BRAIN_FILE,
                                          model=model_text), force)
    return brain, config


def run(args: argparse.Namespace) -> int:
    """Run ``pilotnet bm-brain install``."""
    brain, config = install(args.checkout, args.model, args.force)
    print(f'brain:  {brain}\nconfig: {config}')
    return 0
