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
Which circuits train, validate and test a model, so that it is judged on circuits it never saw.

- train: the built-in training circuits and generated circuits of seeds 0 to 9999;
- val: the built-in validation circuits and generated circuits of seeds 10000 to 19999;
- test: the built-in test circuits, generated circuits of seeds 20000 to 29999, and every
  Behavior Metrics perfect lap (a bag named like one of its worlds', ``lap-montreal.bag``).

A circuit of no split (any other bag or CSV) may be trained on; a test circuit may not, and the
dataset writer and training refuse one unless told otherwise (see :func:`check_not_test`).
"""

from __future__ import annotations

from collections.abc import Iterable
import os
from pathlib import Path

from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.sim.circuits import SPLITS
from pilotnet_optimized.sim.generated import parse_generated_name
from pilotnet_optimized.sim.spawn import spawn_pose_for

__all__ = [
    'SPLIT_NAMES',
    'GENERATED_SEEDS',
    'PERFECT_BAGS_VAR',
    'DEFAULT_PERFECT_BAGS',
    'split_of_circuit',
    'split_circuits',
    'perfect_bags',
    'check_not_test',
]

SPLIT_NAMES = ('train', 'val', 'test')
#: Seeds of the generated circuits (``gen:SEED``) of each split.
GENERATED_SEEDS: dict[str, range] = {
    'train': range(0, 10_000),
    'val': range(10_000, 20_000),
    'test': range(20_000, 30_000),
}
#: The environment variable naming a folder of Behavior Metrics' perfect laps (``lap-*.bag``).
PERFECT_BAGS_VAR = 'PILOTNET_PERFECT_BAGS'
#: Where they are looked for otherwise (relative to the working directory).
DEFAULT_PERFECT_BAGS = '../shared/behavior_metrics/perfect_bags'


def _generated_seed(name: str) -> int | None:
    try:
        return parse_generated_name(name)
    except ValueError:   # not a circuit at all: get_circuit says so where it is read
        return None


def split_of_circuit(name: str) -> str | None:
    """
    Return the split of a circuit given as ``get_circuit`` takes it, or ``None`` for none.

    :param name: a built-in name, ``gen:SEED``, or a file (its name decides: a Behavior Metrics
        perfect lap is a test circuit).
    """
    for split, names in SPLITS.items():
        if name in names:
            return split
    seed = _generated_seed(name)
    if seed is not None:
        return next((split for split, seeds in GENERATED_SEEDS.items() if seed in seeds), None)
    return 'test' if spawn_pose_for(name) is not None else None


def perfect_bags(folder: str | Path | None = None) -> list[Path]:
    """
    Return Behavior Metrics' perfect laps in ``folder``, sorted.

    ``folder`` defaults to ``$PILOTNET_PERFECT_BAGS``, else :data:`DEFAULT_PERFECT_BAGS`; a missing
    default folder gives no bags, a missing folder that was asked for is an error.

    :raises PilotnetError: for a folder given (argument or variable) that does not exist.
    """
    asked = folder if folder is not None else os.environ.get(PERFECT_BAGS_VAR)
    path = Path(asked if asked else DEFAULT_PERFECT_BAGS)
    if not path.is_dir():
        if asked:
            raise PilotnetError(f'perfect laps folder not found: {path}')
        return []
    return sorted(p for p in path.iterdir() if spawn_pose_for(p) is not None)


def split_circuits(split: str, folder: str | Path | None = None, generated: int = 2) -> list[str]:
    """
    Return the circuits of a split: built-in ones, ``generated`` generated ones, perfect laps.

    :param split: ``train``, ``val`` or ``test``.
    :param folder: where Behavior Metrics' perfect laps are (see :func:`perfect_bags`); they are
        test circuits.
    :param generated: how many generated circuits of the split (its first seeds).
    :raises PilotnetError: for an unknown split.
    """
    if split not in SPLIT_NAMES:
        raise PilotnetError(f"unknown split '{split}': choose one of {', '.join(SPLIT_NAMES)}")
    names = list(SPLITS.get(split, ()))
    names += [f'gen:{seed}' for seed in GENERATED_SEEDS[split][:generated]]
    if split == 'test':
        names += [str(p) for p in perfect_bags(folder)]
    return names


def check_not_test(circuits: Iterable[str], what: str) -> None:
    """
    Refuse test circuits where a model learns or is calibrated.

    :param circuits: circuit names or sources (as ``get_circuit`` takes them, or a circuit's
        ``source``).
    :param what: the use, for the message (``'training data'``, ``'calibration data'``).
    :raises PilotnetError: naming the first test circuit.
    """
    for name in circuits:
        if split_of_circuit(str(name)) == 'test':
            raise PilotnetError(
                f'{name} is a test circuit: it must not be {what} (a model is judged on circuits '
                'it never saw)'
            )
