"""ROS-free built-in simulator: circuits, camera renderer, car kinematics, expert driver, dataset writer."""

from pilotnet_optimized.sim.camera import CameraModel, CameraRenderer, CircuitTexture, Lighting
from pilotnet_optimized.sim.car import V_RANGE, W_RANGE, CarState, PlanarCar
from pilotnet_optimized.sim.circuit import Circuit, Projection
from pilotnet_optimized.sim.circuits import BUILTIN_CIRCUITS, SPLITS, circuit_names, get_circuit, split_of
from pilotnet_optimized.sim.expert import ExpertConfig, ExpertDriver, Perturbation
from pilotnet_optimized.sim.simulation import SimConfig, Simulator

__all__ = [
    'BUILTIN_CIRCUITS', 'SPLITS', 'V_RANGE', 'W_RANGE',
    'CameraModel', 'CameraRenderer', 'CarState', 'Circuit', 'CircuitTexture', 'ExpertConfig',
    'ExpertDriver', 'Lighting', 'Perturbation', 'PlanarCar', 'Projection', 'SimConfig', 'Simulator',
    'circuit_names', 'get_circuit', 'split_of',
]
