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
The ``pilotnet`` command.

One table of subcommands over the ROS-free core, each printing a table or ``--json``.

Every subcommand lives beside the code it drives, as a module with ``add_arguments(parser)`` and
``run(args)`` (the names in the table's ``entry`` when a module holds two commands). The table
below is the only list: the parser, ``--help`` and its examples are built from it. A module is
imported only when its command is parsed, so ``pilotnet --help`` imports neither TensorFlow nor
rclpy and answers at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
import importlib
import sys

from pilotnet_optimized import __version__
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.store import DEFAULT_MODELS_DIR

__all__ = ['COMMANDS', 'Command', 'build_parser', 'main']


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, the module that holds it, one line of help and an example."""

    name: str
    module: str
    summary: str
    example: str
    #: ``(add_arguments, run)`` function names in ``module``.
    entry: tuple[str, str] = ('add_arguments', 'run')


_PKG = 'pilotnet_optimized'
_BAG = '../shared/behavior_metrics/perfect_bags/lap-simple-circuit.bag'

COMMANDS: tuple[Command, ...] = (
    Command(
        'circuits',
        f'{_PKG}.sim.circuits',
        'List the built-in circuits with their lengths, tightest radii and splits, or preview a'
        ' generated one (gen:SEED): its figures and a PNG of its layout and curvature.',
        'pilotnet circuits --generate 17 --out gen17.png',
    ),
    Command(
        'drive-expert',
        f'{_PKG}.sim.drive',
        "Drive the expert round a circuit and print Behavior Metrics' lap figures.",
        f'pilotnet drive-expert --circuit {_BAG} --laps 1 --json',
        ('add_expert_arguments', 'run_expert'),
    ),
    Command(
        'render',
        f'{_PKG}.sim.camera',
        'Render one camera frame at a position along the circuit.',
        'pilotnet render --circuit simple --s 120 --out frame.png',
    ),
    Command(
        'dataset',
        f'{_PKG}.sim.dataset',
        'Write a DeepLearningStudio-layout dataset (N.png + data.csv with v,w) from the expert'
        ' driving with disturbances.',
        'pilotnet dataset --split train --frames 5000 --out data',
    ),
    Command(
        'bench-sim',
        f'{_PKG}.sim.bench',
        'Measure camera rendering frames/s and kinematics steps/s.',
        'pilotnet bench-sim --threads 1 --json',
    ),
    Command(
        'train',
        f'{_PKG}.models.train',
        'Train a PilotNet on dataset folders (fixed seed, flips, photometric augmentation,'
        ' oversampled bends, early stopping).',
        'pilotnet train --data data/train --val data/val --out models/pilotnet.keras',
    ),
    Command(
        'steer',
        f'{_PKG}.models.steering',
        'Choose a steering gain in closed loop on validation circuits (the smallest of those that'
        ' complete the most laps); --apply folds it into the Keras model.',
        'pilotnet steer models/pilotnet.keras --circuits hairpins,gen:10000,gen:10001 --apply',
    ),
    Command(
        'drive',
        f'{_PKG}.sim.drive',
        'Drive a model round a circuit in the built-in simulator (ROS-free, lock-step) and print'
        " Behavior Metrics' figures and inference times.",
        'pilotnet drive --model models/pilotnet.keras --circuit simple',
    ),
    Command(
        'optimize',
        f'{_PKG}.optimize.pipeline',
        'Write every optimised variant of a trained model (TFLite float32, dynamic range, float16,'
        ' int8, QAT, pruning, clustering, SavedModel, ONNX, slim, ...), one line each.',
        'pilotnet optimize models/pilotnet.keras --methods all --data data/train --val data/val '
        f'--out {DEFAULT_MODELS_DIR}',
    ),
    Command(
        'evaluate',
        f'{_PKG}.evaluate.offline',
        "The seed's table for every model in a folder: size, MSE and MAE on a held-out circuit,"
        ' batch-1 latency percentiles, ratios against Keras and the TFLite baseline.',
        f'pilotnet evaluate {DEFAULT_MODELS_DIR} --data data/test --threads 1',
    ),
    Command(
        'demo',
        f'{_PKG}.demo',
        "The README's first command: build the default models once (small dataset, NVIDIA's"
        ' PilotNet, baseline and optimised TFLite/ONNX files; cached in models/default), then'
        ' compare them in closed loop on the simple circuit.',
        'pilotnet demo --circuit simple --laps 1',
    ),
    Command(
        'compare',
        f'{_PKG}.evaluate.generalisation',
        "The seed's simulation table: each model drives the circuit in lock-step; total and lap"
        ' time, average speed, percentage completed, deviation, inference ms, brain and loop Hz,'
        ' real-time factor; writes compare.md, compare.json and a PNG of the trajectories. With'
        ' --circuits or --split: the same on several circuits, and the generalisation table.',
        'pilotnet compare --models baseline,dynamic,int8 --circuits simple,hairpins --laps 1',
        ('add_compare_arguments', 'run_compare'),
    ),
    Command(
        'bench-latency',
        f'{_PKG}.nodes.bench_latency',
        'Image-to-Twist latency through the real graph per model: the inference node as a process,'
        " camera frames one at a time, the node's stamp-to-publish time and the round trip"
        ' (p50/p90/p99) against raw inference, per DDS transport.',
        'pilotnet bench-latency --models baseline,dynamic,int8 --frames 300 --transports'
        ' SHM_LARGE,DEFAULT',
    ),
    Command(
        'bag-eval',
        f'{_PKG}.evaluate.bag',
        'Replay the camera frames of a recorded drive (rosbag2 folder, .mcap, ROS 1 .bag) through'
        ' models and compare with the recorded commands: MSE, MAE of v and w, latency.',
        'pilotnet bag-eval runs/lap1/bag --models baseline,dynamic,models/pilotnet.keras --out'
        ' runs/lap1/eval',
    ),
    Command(
        'run',
        f'{_PKG}.nodes.runner',
        'Start the ROS 2 graph (simulator + inference node) like `ros2 launch pilotnet_optimized '
        'sim.launch.py`, from the same graph description, on machines without launch_ros.',
        'pilotnet run model:=dynamic circuit:=simple laps:=1 record:=true',
    ),
    Command(
        'laps',
        f'{_PKG}.laps.metrics',
        "Behavior Metrics' lap figures of a recorded run against a perfect lap (a cut-off bag is"
        ' read read-only, with a warning).',
        f'pilotnet laps --trajectory runs/lap1/bag --perfect-lap {_BAG} --json',
    ),
    Command(
        'bm-brain',
        f'{_PKG}.bm.install',
        'Install the Behavior Metrics brain (any model of this project, any backend) into a'
        ' Behavior Metrics checkout: brains/gazebo/f1/ and an example config.',
        'pilotnet bm-brain install ~/BehaviorMetrics --model models/default/pilotnet_nvidia.keras',
    ),
    Command(
        'bag-repair',
        f'{_PKG}.bags.repair',
        'Repair, in place, MCAP bags a killed recorder left (drop the cut-off record, write the'
        ' summary and metadata.yaml) and list their topics.',
        'pilotnet bag-repair runs/lap1/bag',
    ),
    Command(
        'ros1-bridge',
        f'{_PKG}.nodes.ros1_bridge_node',
        "Bridge Behavior Metrics' ROS 1 (Noetic) Gazebo car to the ROS 2 graph: camera, odometry,"
        ' /clock and commands, and the Gazebo reset/pause services (rospy runs in the system'
        ' Python); frame counts and latency at exit.',
        'pilotnet ros1-bridge --report runs/bridge.json',
    ),
    Command(
        'ros1-car',
        f'{_PKG}.nodes.ros1.car',
        "The built-in simulator as Behavior Metrics' ROS 1 Gazebo car (/F1ROS/cameraL/image_raw,"
        ' /F1ROS/odom, /clock, /F1ROS/cmd_vel, /gazebo/reset_world and pause services) on a'
        ' ROS 1 master, in real time; what it published at exit.',
        'pilotnet ros1-car --circuit simple --paused --report runs/car.json',
    ),
)


def _epilog() -> str:
    return 'examples:\n' + '\n'.join(f'  {c.example}' for c in COMMANDS)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """
    Return the parser of every subcommand.

    Only the module of the command named in ``argv`` is imported.

    With ``argv=None`` (``--help``, tests listing the commands) every subcommand is listed but none
    is imported.
    """
    parser = argparse.ArgumentParser(
        prog='pilotnet',
        description=(
            'Compressed PilotNet driving models for the Formula-1 car: simulator, lap metrics,'
            ' datasets, training, optimisation, evaluation, closed-loop comparison, the ROS 2'
            ' graph.'
        ),
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    # The command is the first word that is not an option (only --help and --version come before
    # it).
    named = next((word for word in argv or () if not word.startswith('-')), None)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.summary, description=command.summary,
                           epilog=f'example:\n  {command.example}',
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if command.name == named:
            module = importlib.import_module(command.module)
            add_arguments, run = (getattr(module, name) for name in command.entry)
            add_arguments(p)
            p.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Parse the arguments and run the command.

    A project error becomes one line on stderr and exit code 2.
    """
    if argv is None:
        # The real command line (not a test calling main): TensorFlow's CUDA probing noise stays
        # off the terminal.
        from pilotnet_optimized.quiet import filter_native_stderr
        filter_native_stderr()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return args.func(args)
    except PilotnetError as err:
        print(f'pilotnet {args.command}: error: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'pilotnet {args.command}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
