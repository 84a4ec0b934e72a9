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
How tight the training circuits' bends are beside the test circuits': the curvature a model saw.

For each circuit: length, road width, tightest radius, the share of the lap under 3, 5 and 15 m
radius, the longest stretch under 5 m (a hairpin held, not touched) and the turn made while
under 6 m. By default the default model's training circuits (``models/default/training.json``)
against Behavior Metrics' four perfect-lap circuits (``--bags``, a folder) and the built-in test
circuits; the generated ones are also summarised (median, max). Only reads circuits: nothing
here trains on the test circuits.

Usage: .venv/bin/python benchmarks/circuit_curvature.py [--circuits gen:0 gen:1 ...]
       [--bags ../shared/behavior_metrics/perfect_bags]
"""

import argparse
import json
from pathlib import Path
import sys

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pilotnet_optimized.sim import get_circuit  # noqa: E402
from pilotnet_optimized.sim.splits import split_of_circuit  # noqa: E402

DEFAULT_BAGS = ROOT.parent / 'shared' / 'behavior_metrics' / 'perfect_bags'


def figures(name: str) -> dict:
    """Return one circuit's curvature figures."""
    c = get_circuit(name)
    k = np.abs(np.asarray(c.curvature, dtype=np.float64))
    radius = 1.0 / np.maximum(k, 1e-9)
    ds = c.length / len(radius)
    under5 = radius < 5.0
    # Longest run under 5 m, round the loop (a stretch across the start line counts whole).
    doubled = np.r_[under5, under5]
    longest, run = 0, 0
    for tight in doubled:
        run = run + 1 if tight else 0
        longest = max(longest, min(run, len(radius)))
    return {
        'circuit': Path(name).name if name.endswith('.bag') else name,
        'split': split_of_circuit(name),
        'length_m': round(c.length, 1),
        'road_width_m': round(c.road_width, 2),
        'min_radius_m': round(float(radius.min()), 2),
        'under_3m_pct': round(100 * float((radius < 3.0).mean()), 2),
        'under_5m_pct': round(100 * float(under5.mean()), 2),
        'under_15m_pct': round(100 * float((radius < 15.0).mean()), 1),
        'longest_under_5m_m': round(longest * ds, 1),
        'turn_under_6m_deg': round(float(np.degrees(k[radius < 6.0].sum() * ds)), 0),
    }


def _default_training() -> list[str]:
    recipe = json.loads((ROOT / 'models' / 'default' / 'training.json').read_text())
    return list(recipe['training']['circuits'])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--circuits', nargs='+', help='training circuits (default: the default '
                        "model's, from models/default/training.json)")
    parser.add_argument('--bags', type=Path, default=DEFAULT_BAGS,
                        help="folder of Behavior Metrics' perfect-lap bags (test circuits)")
    parser.add_argument('--tests', nargs='+', default=['long_fast', 'hairpins'],
                        help='other circuits to show beside them')
    args = parser.parse_args()
    training = args.circuits or _default_training()
    bags = sorted(str(p) for p in args.bags.glob('lap-*.bag')) if args.bags.is_dir() else []
    rows = [figures(name) for name in [*training, *args.tests, *bags]]
    generated = [r for r in rows if r['circuit'] in training and r['circuit'].startswith('gen:')]
    keys = [k for k in rows[0] if k not in ('circuit', 'split')]
    summary = {
        stat: {k: round(float(fn([r[k] for r in generated])), 2) for k in keys}
        for stat, fn in (('median', np.median), ('max', np.max))
    } if generated else {}
    print(json.dumps({'benchmark': 'circuit_curvature', 'rows': rows,
                      'generated_training': summary}))
    print('| circuit | split | ' + ' | '.join(keys) + ' |')
    print('|---|---|' + '---|' * len(keys))
    for r in rows:
        if r in generated:
            continue
        print(f"| {r['circuit']} | {r['split']} | " + ' | '.join(str(r[k]) for k in keys) + ' |')
    for stat, values in summary.items():
        print(f'| generated training ({len(generated)}), {stat} | train | '
              + ' | '.join(str(values[k]) for k in keys) + ' |')


if __name__ == '__main__':
    main()
