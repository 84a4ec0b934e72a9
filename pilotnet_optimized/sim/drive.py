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
``pilotnet drive-expert`` and ``pilotnet drive``.

One car round one circuit in the built-in simulator, ROS-free and in lock-step, with Behavior
Metrics' lap figures (and, for a model, its inference times).

Exit code 0 when every lap asked for was completed, 3 when the run ended sooner (off the road,
trapped, timed out), as the simulator node's.
"""

from __future__ import annotations

import argparse

from pilotnet_optimized.argtypes import positive_int
from pilotnet_optimized.sim.circuits import get_circuit
from pilotnet_optimized.sim.episodes import drive_expert, drive_pilot

__all__ = ['add_expert_arguments', 'run_expert', 'add_arguments', 'run']

#: The exit code of a run that ended before its laps were done.
LAPS_NOT_DONE = 3


def _laps_done(percentage_completed: float, laps: int) -> bool:
    return percentage_completed >= 100 * laps - 1e-6


def add_expert_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pilotnet drive-expert`` arguments."""
    parser.add_argument(
        '--circuit',
        default='simple',
        help='built-in name, perfect-lap bag or x,y CSV (default: simple)',
    )
    parser.add_argument('--laps', type=positive_int, default=1, help='laps to drive (default: 1)')
    parser.add_argument(
        '--start',
        metavar='X,Y,YAW',
        help="where the car starts (m, m, rad; default: the circuit's start, a Behavior Metrics "
        "bag's world spawn pose); --start=-74.3,37.7,-0.5 when x is negative",
    )
    parser.add_argument('--seed', type=int, default=0, help='seed for --perturb (default: 0)')
    parser.add_argument('--perturb', action='store_true', help='add random steering disturbances')
    parser.add_argument(
        '--trajectory-out', metavar='CSV', help='also write the driven trajectory (t,x,y,yaw)'
    )
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')


def run_expert(args: argparse.Namespace) -> int:
    """``pilotnet drive-expert``: the expert's laps."""
    from pilotnet_optimized.evaluate.report import print_mapping
    from pilotnet_optimized.laps import save_trajectory_csv
    result = drive_expert(
        get_circuit(args.circuit, start=args.start),
        laps=args.laps,
        seed=args.seed,
        perturb=args.perturb,
    )
    if args.trajectory_out:
        save_trajectory_csv(result.trajectory, args.trajectory_out)
    print_mapping(result.to_dict(), args.json)
    return 0 if _laps_done(result.metrics.percentage_completed, args.laps) else LAPS_NOT_DONE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pilotnet drive`` arguments."""
    from pilotnet_optimized.backends import BACKEND_CHOICES
    parser.add_argument(
        '--model', required=True, help='model file: .keras, SavedModel folder, .tflite, .onnx'
    )
    parser.add_argument('--backend', default='auto', choices=BACKEND_CHOICES,
                        help='inference runtime (default: auto, from the model file)')
    parser.add_argument('--threads', type=int, default=1, help='inference threads (default: 1)')
    parser.add_argument(
        '--circuit', default='simple', help='built-in name, perfect-lap bag or x,y CSV'
    )
    parser.add_argument('--laps', type=positive_int, default=1)
    parser.add_argument(
        '--start',
        metavar='X,Y,YAW',
        help="where the car starts (m, m, rad; default: the circuit's start, a Behavior Metrics "
        "bag's world spawn pose); --start=-74.3,37.7,-0.5 when x is negative",
    )
    parser.add_argument('--trajectory-out', metavar='CSV', help='also write the driven trajectory')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')


def run(args: argparse.Namespace) -> int:
    """``pilotnet drive``: a model's laps."""
    from pilotnet_optimized.backends import load_backend
    from pilotnet_optimized.evaluate.report import print_mapping
    from pilotnet_optimized.laps import save_trajectory_csv
    circuit = get_circuit(args.circuit, start=args.start)
    pilot = load_backend(args.model, args.backend, num_threads=args.threads)
    result = drive_pilot(circuit, pilot, laps=args.laps)
    if args.trajectory_out:
        save_trajectory_csv(result.result.trajectory, args.trajectory_out)
    print_mapping({'model': str(args.model), **pilot.describe(), **result.to_dict()}, args.json)
    return (
        0 if _laps_done(result.result.metrics.percentage_completed, args.laps) else LAPS_NOT_DONE
    )
