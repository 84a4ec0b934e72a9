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
What a long run's report costs the metrics node: RSS growth and CPU, variants in one run.

The metrics node feeds :class:`~pilotnet_optimized.laps.report.RunReport` one pose and one timing
row per frame and asks it for its live progress every second (every 20 frames at 20 Hz). Here the
same feed, ROS-free, each variant in a process of its own (RSS is per process):

- ``no-progress``: the rows only (the data a report must keep);
- ``shipped``: plus :meth:`RunReport.progress` every 20 rows (it walks only the new poses);
- ``whole-run``: plus the progress as it was before 2026-12-08, the checkpoint walk, path and
  p50 over the whole run at every call.

Growth is RSS at the end minus RSS after the first 10 % of the rows (the soak's warm-up).

Usage: .venv/bin/python benchmarks/report_memory.py [--rows 36000] [--variants ...]
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VARIANTS = ('no-progress', 'shipped', 'whole-run')


def _rss_mb() -> float:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    raise RuntimeError('no VmRSS')


def _whole_run_progress(report) -> dict:
    """Return the live progress as it was: everything from the first pose again."""
    import numpy as np
    from pilotnet_optimized.laps.metrics import checkpoint_progress
    from pilotnet_optimized.laps.report import _percentiles
    xy = np.asarray(report._xy, dtype=np.float64).reshape(-1, 2)
    reached = checkpoint_progress(xy, report.perfect).reached
    traj = report.trajectory()
    return {'percentage_completed': round(reached / len(report.perfect) * 100.0, 3),
            'completed_distance': round(traj.path_length(), 3),
            'sim_seconds': round(traj.duration, 3), 'frames': report.frames,
            **_percentiles(report._timing['inference_ms'], 'inference', (50,))}


def _one(variant: str, rows: int) -> dict:
    from pilotnet_optimized.laps.report import RunReport
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.episodes import perfect_lap_of
    track = get_circuit('simple')
    report = RunReport(perfect_lap_of(track), circuit='simple')
    progress = {'shipped': report.progress,
                'whole-run': lambda: _whole_run_progress(report)}.get(variant)
    start, cpu0 = _rss_mb(), time.process_time()
    warm = start
    last: dict = {}
    for i in range(rows):
        x, y, yaw = track.pose_at((i * 0.4) % track.length)[:3]   # 8 m/s at 20 Hz
        report.add_odometry(i * 0.05, x, y, yaw, v=8.0, w=0.1)
        report.add_timing({'inference_ms': 1.0 + i % 7, 'end_to_end_ms': 2.0,
                           'preprocess_ms': 0.3, 'callback_ms': 1.5, 'image_stamp_s': i * 0.05})
        if progress is not None and i % 20 == 19:
            last = progress()
        if i == rows // 10:
            warm = _rss_mb()
    end = _rss_mb()
    return {'variant': variant, 'rows': rows, 'rss_start_mb': round(start, 1),
            'rss_warm_mb': round(warm, 1), 'rss_end_mb': round(end, 1),
            'growth_after_warm_mb': round(end - warm, 2),
            'cpu_s': round(time.process_time() - cpu0, 2),
            'percentage_completed': last.get('percentage_completed')}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--rows', type=int, default=36000,
                        help='pose and timing rows (36000: 30 minutes at 20 Hz)')
    parser.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument('--one', choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, args.rows)))
        return
    results = []
    for variant in args.variants:
        command = [sys.executable, __file__, '--one', variant, '--rows', str(args.rows)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    print(json.dumps({'benchmark': 'report_memory', 'rows': args.rows,
                      'load_average': [round(x, 2) for x in os.getloadavg()],
                      'results': results}))
    print('| variant | rows | RSS after warm-up MB | end MB | growth MB | CPU s | progress % |')
    print('|---|---|---|---|---|---|---|')
    for r in results:
        print(f"| {r['variant']} | {r['rows']} | {r['rss_warm_mb']} | {r['rss_end_mb']} | "
              f"{r['growth_after_warm_mb']} | {r['cpu_s']} | {r['percentage_completed']} |")


if __name__ == '__main__':
    main()
