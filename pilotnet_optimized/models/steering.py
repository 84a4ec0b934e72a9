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
Closed-loop steering gain: the smallest gain that drives the most validation circuits.

A model trained by mean squared error on the expert's commands under-steers where it has seen
least: at the apex of a hairpin under 3 m radius the shipped model asked -2.65 rad/s where the
expert asked -3.15, drifted wide, lost the line out of the camera's view and ran off (generated
validation circuit ``gen:10005``, 94 %). Offline frames do not show it (the expert's own states
hold no command over 3 rad/s), so the gain is measured in closed loop: each candidate gain scales
the model's angular command on every validation circuit, and the smallest gain among those that
complete the most laps is kept. It is folded into the last dense layer
(:func:`fold_steering_gain`), so every optimised model, backend and Behavior Metrics' own brain
get the same commands with no runtime change. Validation circuits only: a test circuit is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pilotnet_optimized.errors import PilotnetError

__all__ = ['GainRun', 'SteeringCalibration', 'apply_steering_gain', 'calibrate_steering_gain',
           'choose_gain', 'fold_steering_gain', 'OUTPUT_LAYER', 'DEFAULT_GAINS',
           'DEFAULT_CIRCUITS', 'add_arguments', 'run']

#: The dense layer that outputs the normalised (v, w) in every PilotNet of this package.
OUTPUT_LAYER = 'vw'
#: The gains the default recipe (and ``pilotnet steer``) tries.
DEFAULT_GAINS = (1.0, 1.1, 1.2, 1.3)
#: Its validation circuits: the built-in ``hairpins`` and 25 generated ones.
DEFAULT_CIRCUITS = ('hairpins', *(f'gen:{i}' for i in range(10000, 10025)))


@dataclass(frozen=True)
class GainRun:
    """One closed-loop lap of one validation circuit with one gain."""

    gain: float
    circuit: str
    end_reason: str
    completed_pct: float
    deviation_mean_m: float


@dataclass(frozen=True)
class SteeringCalibration:
    """The gains tried, every lap, and the gain chosen."""

    gain: float
    circuits: tuple[str, ...]
    runs: tuple[GainRun, ...]

    def summary(self) -> list[dict]:
        """Return per gain: laps completed and mean deviation over the circuits."""
        rows = []
        for gain in sorted({r.gain for r in self.runs}):
            runs = [r for r in self.runs if r.gain == gain]
            rows.append({'gain': gain,
                         'completed': sum(r.end_reason == 'laps_done' for r in runs),
                         'circuits': len(runs),
                         'deviation_mean_m': round(float(np.mean(
                             [r.deviation_mean_m for r in runs])), 4)})
        return rows

    def to_dict(self) -> dict:
        """Return the calibration as JSON-ready data."""
        return {'gain': self.gain, 'circuits': list(self.circuits), 'summary': self.summary(),
                'runs': [asdict(r) for r in self.runs]}


def choose_gain(runs: Sequence[GainRun]) -> float:
    """
    Return the smallest gain among those that complete the most laps.

    The smallest: a gain is a correction, and the least one that drives as well is the one that
    changes the model least elsewhere (straights, gentle bends).
    """
    if not runs:
        raise PilotnetError('no closed-loop runs to choose a steering gain from')
    done: dict[float, int] = {}
    for r in runs:
        done[r.gain] = done.get(r.gain, 0) + (r.end_reason == 'laps_done')
    best = max(done.values())
    return min(g for g, n in done.items() if n == best)


class _ScaledPilot:
    """A backend whose angular command is multiplied by ``gain``."""

    def __init__(self, backend, gain: float) -> None:
        self.backend, self.gain = backend, gain

    def predict(self, image_rgb: np.ndarray) -> tuple[float, float]:
        v, w = self.backend.predict(image_rgb)
        return v, w * self.gain


def calibrate_steering_gain(model_path: str | Path, circuits: Sequence[str],
                            gains: Sequence[float],
                            progress: Callable[[str], None] | None = None
                            ) -> SteeringCalibration:
    """
    Drive one lap of each circuit with each gain, in lock-step; choose by :func:`choose_gain`.

    :raises PilotnetError: for a test circuit, no circuits, or a gain that is not positive.
    """
    from pilotnet_optimized.backends import load_backend
    from pilotnet_optimized.sim.circuits import get_circuit
    from pilotnet_optimized.sim.episodes import drive_pilot
    from pilotnet_optimized.sim.splits import check_not_test
    if not circuits or not gains:
        raise PilotnetError('steering calibration needs circuits and gains')
    if any(g <= 0 for g in gains):
        raise PilotnetError(f'steering gains must be positive, not {list(gains)}')
    check_not_test(list(circuits), 'steering calibration')
    backend = load_backend(model_path)
    runs = []
    for gain in gains:
        for name in circuits:
            result = drive_pilot(get_circuit(name), _ScaledPilot(backend, gain)).result.to_dict()
            run = GainRun(float(gain), name, str(result['end_reason']),
                          round(float(result['percentage_completed']), 2),
                          round(float(result['position_deviation_mean_m']), 4))
            runs.append(run)
            if progress is not None:
                progress(f'gain {gain:g} {name}: {run.end_reason} {run.completed_pct:.1f} %, '
                         f'deviation {run.deviation_mean_m:.2f} m')
    return SteeringCalibration(choose_gain(runs), tuple(circuits), tuple(runs))


def fold_steering_gain(model, gain: float, w_range: tuple[float, float]) -> None:
    """
    Make ``model`` (tf_keras, in place) answer ``gain`` times its angular command.

    The output is normalised, ``w = lo + p (hi - lo)``; ``w' = gain w`` is
    ``p' = gain p + (gain - 1) lo / (hi - lo)``, a change of the last dense layer's kernel column
    and bias: exact, no new layer, the speed output untouched.
    """
    if gain <= 0:
        raise PilotnetError(f'a steering gain must be positive, not {gain}')
    try:
        layer = model.get_layer(OUTPUT_LAYER)
    except ValueError as err:
        raise PilotnetError(f'the model has no {OUTPUT_LAYER!r} output layer to fold a steering '
                            'gain into') from err
    kernel, bias = layer.get_weights()
    lo, hi = w_range
    kernel = kernel.copy()
    bias = bias.copy()
    kernel[:, 1] *= gain
    bias[1] = gain * bias[1] + (gain - 1.0) * lo / (hi - lo)
    layer.set_weights([kernel, bias])


def apply_steering_gain(keras_path: str | Path, gain: float) -> None:
    """Fold ``gain`` into the Keras model file ``keras_path``, in place (1: nothing to do)."""
    if gain == 1.0:
        return
    import tf_keras
    from pilotnet_optimized.sim.car import W_RANGE
    model = tf_keras.models.load_model(keras_path, compile=False)
    fold_steering_gain(model, gain, W_RANGE)
    model.save(keras_path)


def _gains(text: str) -> tuple[float, ...]:
    import argparse
    try:
        gains = tuple(float(g) for g in text.split(',') if g.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a list of numbers: give e.g. 1,1.1,1.2") from None
    if not gains or any(not g > 0 for g in gains):
        raise argparse.ArgumentTypeError(f"'{text}': give one or more gains above 0")
    return gains


def add_arguments(parser) -> None:
    """Add the ``pilotnet steer`` arguments."""
    parser.add_argument('model', help='model file: .keras (with --apply), or any backend file')
    parser.add_argument('--circuits', default=','.join(DEFAULT_CIRCUITS),
                        help='validation circuits, comma-separated (default: the shipped'
                        " recipe's 26; a test circuit is refused)")
    parser.add_argument('--gains', type=_gains, default=DEFAULT_GAINS,
                        help='gains to try, comma-separated (default: %(default)s)')
    parser.add_argument('--apply', action='store_true',
                        help='fold the chosen gain into the .keras file, in place')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')


def run(args) -> int:
    """``pilotnet steer``: choose a steering gain in closed loop; fold it in with ``--apply``."""
    import json
    import sys
    if args.apply and Path(args.model).suffix != '.keras':
        raise PilotnetError(f'--apply folds the gain into a .keras model, not {args.model}: '
                            'calibrate the Keras model, then optimise it again')
    circuits = [c.strip() for c in args.circuits.split(',') if c.strip()]
    progress = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    calibration = calibrate_steering_gain(args.model, circuits, args.gains, progress)
    if args.apply:
        apply_steering_gain(args.model, calibration.gain)
    if args.json:
        print(json.dumps({**calibration.to_dict(), 'applied': bool(args.apply)}, indent=2))
        return 0
    print('| gain | completed | mean deviation m |\n|---|---|---|')
    for row in calibration.summary():
        print(f"| {row['gain']:g} | {row['completed']}/{row['circuits']} |"
              f" {row['deviation_mean_m']:.3f} |")
    verb = 'folded into' if args.apply else 'chosen for (--apply folds it into)'
    print(f'steering gain {calibration.gain:g} {verb} {args.model}')
    return 0
