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
Why a model leaves a validation circuit: what changes the outcome, what it asked beside the expert.

Three parts, validation circuits only (a test circuit is refused):

- ``variants``: one lock-step lap per circuit for each change around the model: none, a steering
  slew limit (rad/s per second), a speed cap (m/s), a steering gain;
- ``trace``: the last ``--last`` steps before the run ended: the car's arc position, lateral
  offset, the model's (v, w) and the expert's for the same pose, the circuit's radius there;
- ``offline``: the least-squares gain of the expert's w on the model's over clean frames of the
  circuits, and the two by |w| band (what offline frames show of an under-steer);
- the expert's own steering rate (p50, p99, p99.9, max over a lap of each ``--expert-circuits``),
  the scale a slew limit must allow.

Usage: .venv/bin/python benchmarks/steering_diagnosis.py MODEL [--circuits gen:10005,gen:10011]
       [--trace gen:10005] [--offline gen:10000,gen:10001,gen:10002] [--json]
"""

import argparse
import json
from pathlib import Path
import sys
import tempfile

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pilotnet_optimized.backends import load_backend  # noqa: E402
from pilotnet_optimized.sim.circuits import get_circuit  # noqa: E402
from pilotnet_optimized.sim.dataset import read_labels, write_dataset  # noqa: E402
from pilotnet_optimized.sim.episodes import drive_pilot  # noqa: E402
from pilotnet_optimized.sim.expert import ExpertDriver  # noqa: E402
from pilotnet_optimized.sim.simulation import Simulator  # noqa: E402
from pilotnet_optimized.sim.splits import check_not_test  # noqa: E402

#: (name, slew limit rad/s^2, speed cap m/s, steering gain); 0 / inf / 1 leave the model alone.
VARIANTS = (('none', 0.0, np.inf, 1.0), ('slew 20', 20.0, np.inf, 1.0),
            ('slew 10', 10.0, np.inf, 1.0), ('speed <= 7', 0.0, 7.0, 1.0),
            ('gain 1.1', 0.0, np.inf, 1.1), ('gain 1.2', 0.0, np.inf, 1.2),
            ('gain 1.3', 0.0, np.inf, 1.3))


class Changed:
    """The model with one change around it (see :data:`VARIANTS`)."""

    def __init__(self, backend, slew: float, v_cap: float, gain: float, period: float) -> None:
        self.backend, self.slew, self.v_cap, self.gain = backend, slew, v_cap, gain
        self.period, self.last_w, self.asked = period, None, (0.0, 0.0)

    def predict(self, image_rgb: np.ndarray) -> tuple[float, float]:
        v, w = self.backend.predict(image_rgb)
        self.asked = (v, w)
        v, w = min(v, self.v_cap), w * self.gain
        if self.slew > 0 and self.last_w is not None:
            step = self.slew * self.period
            w = min(max(w, self.last_w - step), self.last_w + step)
        self.last_w = w
        return v, w


def variants(backend, circuits: list[str], period: float) -> list[dict]:
    """Return one lap per circuit and variant."""
    rows = []
    for name in circuits:
        for label, slew, v_cap, gain in VARIANTS:
            result = drive_pilot(get_circuit(name),
                                 Changed(backend, slew, v_cap, gain, period)).result.to_dict()
            rows.append({'circuit': name, 'variant': label, 'end_reason': result['end_reason'],
                         'completed_pct': round(result['percentage_completed'], 2),
                         'deviation_mean_m': round(result['position_deviation_mean_m'], 3)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def trace(backend, name: str, last: int, period: float) -> list[dict]:
    """Return the model's and the expert's commands over the run's last ``last`` steps."""
    circuit = get_circuit(name)
    expert = ExpertDriver(circuit)
    pilot = Changed(backend, 0.0, np.inf, 1.0, period)
    steps: list[dict] = []

    def on_step(sim: Simulator) -> None:
        p = sim.projection
        v_exp, w_exp = expert.command(sim.state)
        i = int(np.argmin(np.abs(circuit.arc - p.s)))
        steps.append({'t': round(sim.state.t, 2), 's_m': round(p.s, 2),
                      'lateral_m': round(p.lateral, 2), 'v_model': round(pilot.asked[0], 2),
                      'w_model': round(pilot.asked[1], 2), 'v_expert': round(v_exp, 2),
                      'w_expert': round(w_exp, 2),
                      'radius_m': round(1.0 / max(abs(float(circuit.curvature[i])), 1e-9), 2)})

    drive_pilot(circuit, pilot, on_step=on_step)
    return steps[-last:]


def offline(backend, circuits: list[str]) -> dict:
    """Return the least-squares gain of the expert's w on the model's, and per |w| band."""
    predicted, expert = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k, name in enumerate(circuits):
            out = Path(tmp) / str(k)
            write_dataset(get_circuit(name), 400, out, seed=k, progress=False)
            labels = read_labels(out)
            for i in range(len(labels)):
                frame = cv2.cvtColor(cv2.imread(str(out / f'{i}.png')), cv2.COLOR_BGR2RGB)
                predicted.append(backend.predict(frame))
                expert.append(labels[i])
    p, e = np.array(predicted)[:, 1], np.array(expert)[:, 1]
    bands = []
    for lo, hi in ((0.0, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 8.0)):
        m = (np.abs(e) >= lo) & (np.abs(e) < hi)
        mean = (lambda x: round(float(np.abs(x[m]).mean()), 2)) if m.any() else (lambda x: None)
        bands.append({'band': f'{lo:g}-{hi:g}', 'frames': int(m.sum()),
                      'mean_abs_w_expert': mean(e), 'mean_abs_w_model': mean(p)})
    return {'frames': int(len(p)), 'ls_gain': round(float((p * e).sum() / (p * p).sum()), 3),
            'bands': bands}


def expert_rate(circuits: list[str]) -> dict:
    """Return percentiles of the expert's |dw/dt| (rad/s^2) over one lap of each circuit."""
    rates = []
    for name in circuits:
        circuit = get_circuit(name)
        sim, expert = Simulator(circuit), ExpertDriver(circuit)
        sim.reset(s=0.0, lateral=0.0, yaw_offset=0.0)
        expert.reset()
        last = None
        for _ in range(int(circuit.length / 6.5 / sim.config.control_period)):
            v, w = expert.command(sim.state)
            if last is not None:
                rates.append(abs(w - last) / sim.config.control_period)
            last = w
            sim.step(v, w)
            if not sim.on_road:
                break
    q = np.percentile(rates, [50, 99, 99.9, 100])
    return dict(zip(('p50', 'p99', 'p99_9', 'max'), (round(float(x), 2) for x in q)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model')
    parser.add_argument('--circuits', default='gen:10005,gen:10011')
    parser.add_argument('--trace', default='gen:10005', help="circuit to trace ('' = none)")
    parser.add_argument('--last', type=int, default=20, help='steps of the trace')
    parser.add_argument('--offline', default='gen:10000,gen:10001,gen:10002',
                        help="circuits of the offline frames ('' = none)")
    parser.add_argument('--expert-circuits',
                        default='simple,many_curves,gen:0,gen:1,gen:2,gen:3,gen:4,gen:5')
    parser.add_argument('--json', action='store_true', help='JSON only')
    args = parser.parse_args()
    circuits = [c for c in args.circuits.split(',') if c]
    offline_circuits = [c for c in args.offline.split(',') if c]
    check_not_test(circuits + offline_circuits + [c for c in [args.trace] if c], 'diagnosed')
    backend = load_backend(args.model)
    period = Simulator(get_circuit(circuits[0] if circuits else 'simple')).config.control_period
    out = {'model': args.model,
           'expert_rate_rad_s2': expert_rate(args.expert_circuits.split(',')),
           'variants': variants(backend, circuits, period),
           'trace': trace(backend, args.trace, args.last, period) if args.trace else [],
           'offline': offline(backend, offline_circuits) if offline_circuits else None}
    print(json.dumps(out, indent=2))
    if args.json:
        return 0
    print(f"\nexpert |dw/dt| rad/s^2: {out['expert_rate_rad_s2']}")
    print('\n| circuit | variant | end | completed % | dev mean m |\n|---|---|---|---|---|')
    for r in out['variants']:
        print(f"| {r['circuit']} | {r['variant']} | {r['end_reason']} | {r['completed_pct']} |"
              f" {r['deviation_mean_m']} |")
    if out['trace']:
        keys = list(out['trace'][0])
        print('\n| ' + ' | '.join(keys) + ' |\n|' + '---|' * len(keys))
        for step in out['trace']:
            print('| ' + ' | '.join(str(step[k]) for k in keys) + ' |')
    if out['offline']:
        print(f"\noffline: {out['offline']['frames']} frames, least-squares gain of the expert's w"
              f" on the model's {out['offline']['ls_gain']}")
        for band in out['offline']['bands']:
            print(f'  |w| {band}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
