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
ROS-free built-in simulator.

Circuits, camera renderer, car kinematics, expert driver, dataset writer.
"""

from pilotnet_optimized.sim.camera import CameraModel, CameraRenderer, CircuitTexture, Lighting
from pilotnet_optimized.sim.car import CarState, PlanarCar, V_RANGE, W_RANGE
from pilotnet_optimized.sim.circuit import Circuit, Projection
from pilotnet_optimized.sim.circuits import BUILTIN_CIRCUITS, circuit_names, get_circuit, SPLITS
from pilotnet_optimized.sim.expert import ExpertConfig, ExpertDriver, Perturbation
from pilotnet_optimized.sim.simulation import SimConfig, Simulator

__all__ = [
    'BUILTIN_CIRCUITS',
    'SPLITS',
    'V_RANGE',
    'W_RANGE',
    'CameraModel',
    'CameraRenderer',
    'CarState',
    'Circuit',
    'CircuitTexture',
    'ExpertConfig',
    'ExpertDriver',
    'Lighting',
    'Perturbation',
    'PlanarCar',
    'Projection',
    'SimConfig',
    'Simulator',
    'circuit_names',
    'get_circuit',
]
