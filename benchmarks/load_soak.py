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
Load-and-soak benchmark: lock-step ``pilotnet run ... record:=true`` runs, the CPU saturated.

``python benchmarks/load_soak.py --runs 10 --laps 3 --busy 2 [--model M] [--realtime]``

``python benchmarks/load_soak.py --minutes 30 --busy 0`` is the soak: one real-time run that
drives laps until N minutes have passed, then stops the graph as Ctrl-C does. Its rows add RSS per
node after a warm-up (``--warmup-s``, default 60) and once a minute (``rss_series_mb``), so the
growth after warm-up is ``rss_end_mb / rss_warm_mb - 1``, and open file descriptors at the start,
after the warm-up and at the end.

Per run it prints (and writes to ``--json``): published (the simulator's end event) vs recorded
(the bag) vs observed (the metrics report) counts per topic, laps by the simulator vs the report,
RSS per node at start (its first log line) and at the end, open file descriptors, and /dev/shm use
before and after. ``--busy N`` runs N ``while :; do :; done`` loops beside each run.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pilotnet_optimized.nodes.dds import free_ros_domain  # noqa: E402
DEFAULT_MODEL = ROOT / 'models' / 'default' / 'pilotnet_nvidia.keras'


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f'/proc/{pid}/fd'))
    except OSError:
        return None


def _shm_mb() -> float:
    total = 0
    for p in Path('/dev/shm').glob('fast*'):
        try:
            total += p.stat().st_size
        except OSError:
            pass
    return round(total / 2**20, 1)


def one_run(model: Path, laps: int, busy: int, realtime: bool, out: Path,
            minutes: float | None = None, warmup_s: float = 60.0,
            log: Path | None = None) -> dict:
    loops = [subprocess.Popen(['bash', '-c', 'while :; do :; done']) for _ in range(busy)]
    shm_before = _shm_mb()
    pids: dict[str, int] = {}
    samples: dict[str, dict] = {}
    try:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'pilotnet_optimized.nodes.runner', f'model:={model}',
             f'laps:={laps}', 'record:=true', f"realtime:={'true' if realtime else 'false'}",
             f'output_dir:={out}'],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            # A domain of its own: another graph on the machine (an episode node pausing and
            # resetting every simulator it sees) once stopped a soak on the default domain.
            env={**os.environ, 'PYTHONUNBUFFERED': '1', 'ROS_DOMAIN_ID': str(free_ros_domain())})
        lines: list[str] = []

        started = time.monotonic()

        def sample_until_end() -> None:
            next_minute = started + 60.0
            while proc.poll() is None:
                now = time.monotonic()
                for name, pid in list(pids.items()):
                    rss, fds = _rss_mb(pid), _fds(pid)
                    if rss is not None:
                        s = samples.setdefault(name, {'rss_start_mb': rss, 'fds_start': fds})
                        s.update(rss_end_mb=rss, fds_end=fds)
                        s['rss_max_mb'] = max(s.get('rss_max_mb', 0), rss)
                        if minutes and 'rss_warm_mb' not in s and now - started >= warmup_s:
                            s.update(rss_warm_mb=rss, fds_warm=fds)
                        if minutes and now >= next_minute:
                            s.setdefault('rss_series_mb', []).append(rss)
                if now >= next_minute:
                    next_minute += 60.0
                if minutes and now - started >= minutes * 60 and proc.poll() is None:
                    proc.send_signal(signal.SIGINT)   # as Ctrl-C: every node stopped cleanly
                    return
                time.sleep(0.5)

        sampler = threading.Thread(target=sample_until_end, daemon=True)
        sampler.start()
        t0 = time.monotonic()
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r'\[runner\] started (\w+) \(pid (\d+)\)', line)
            if m:
                pids[m.group(1)] = int(m.group(2))
        proc.wait()
        wall = time.monotonic() - t0
        if log is not None:
            log.write_text(''.join(lines))
        sampler.join(timeout=2)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    report = json.loads((out / 'metrics.json').read_text())
    recording = json.loads((out / 'recording.json').read_text())
    sim = report.get('simulator') or {}
    published = sim.get('published') or {}
    topics = {}
    for topic, row in recording['topics'].items():
        topics[topic] = {'published': published.get(topic), 'recorded': row['recorded']}
    topics.setdefault('/odom', {})['observed'] = report.get('odometry_messages')
    topics.setdefault('/inference_node/timing', {})['observed'] = report.get('timing_samples')
    return {
        'exit_code': proc.returncode, 'wall_s': round(wall, 1), 'busy_loops': busy,
        'end_reason': report.get('end_reason'),
        'laps_simulator': sim.get('laps_completed'), 'laps_report': report.get('laps_completed'),
        'pct_simulator': sim.get('percentage_completed'),
        'pct_report': report.get('percentage_completed'),
        'frames_simulator': sim.get('frames'), 'frames_report': report.get('frames'),
        'recorder_dropped': recording.get('dropped'), 'topics': topics, 'nodes': samples,
        'minutes': minutes,
        'shm_mb_before': shm_before, 'shm_mb_after': _shm_mb(),
    }


def _table(runs: list[dict]) -> str:
    rows = ['| run | end | laps sim/report | frames sim/report | odom pub/rec/obs '
            '| camera pub/rec | cmd_vel_stamped rec | timing rec/obs | dropped '
            '| RSS start->end MB (max node) | shm MB before/after | wall s |', '|' + '---|' * 12]
    for i, r in enumerate(runs, 1):
        t = r['topics']
        odom, cam = t.get('/odom', {}), t.get('/cam_f1_left/image_raw', {})
        timing = t.get('/inference_node/timing', {})
        big = max(r['nodes'].items(), key=lambda kv: kv[1].get('rss_end_mb', 0), default=None)
        rss = (f"{big[0]} {big[1].get('rss_start_mb')}->{big[1].get('rss_end_mb')}"
               if big else '-')
        rows.append(
            f"| {i} | {r['end_reason']} | {r['laps_simulator']}/{r['laps_report']} | "
            f"{r['frames_simulator']}/{r['frames_report']} | {odom.get('published')}/"
            f"{odom.get('recorded')}/{odom.get('observed')} | {cam.get('published')}/"
            f"{cam.get('recorded')} | {t.get('/cmd_vel_stamped', {}).get('recorded')} | "
            f"{timing.get('recorded')}/{timing.get('observed')} | {r['recorder_dropped']} | "
            f"{rss} | {r['shm_mb_before']}/{r['shm_mb_after']} | {r['wall_s']} |")
    return '\n'.join(rows)


def _soak_table(run: dict) -> str:
    rows = ['| node | RSS start MB | after warm-up | end | growth after warm-up | max '
            '| fds start/warm/end |', '|' + '---|' * 7]
    for name, s in sorted(run['nodes'].items()):
        warm, end = s.get('rss_warm_mb'), s.get('rss_end_mb')
        growth = f'{100 * (end / warm - 1):+.1f} %' if warm and end else '-'
        rows.append(f"| {name} | {s.get('rss_start_mb')} | {warm} | {end} | {growth} | "
                    f"{s.get('rss_max_mb')} | {s.get('fds_start')}/{s.get('fds_warm')}/"
                    f"{s.get('fds_end')} |")
    return '\n'.join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--laps', type=int, default=3)
    parser.add_argument('--busy', type=int, default=2)
    parser.add_argument('--realtime', action='store_true')
    parser.add_argument('--minutes', type=float,
                        help='the soak: one real-time run of this many minutes (laps until then)')
    parser.add_argument('--warmup-s', type=float, default=60.0,
                        help='with --minutes: seconds before the RSS that growth is measured from')
    parser.add_argument('--model', type=Path, default=DEFAULT_MODEL)
    parser.add_argument('--json', type=Path, help='write every run here as JSON')
    parser.add_argument('--log', type=Path, help="keep each run's output here (.N.log)")
    args = parser.parse_args()
    runs = []
    if args.minutes:
        args.runs, args.laps, args.realtime = 1, 1000, True
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            runs.append(one_run(args.model, args.laps, args.busy, args.realtime,
                                Path(tmp) / f'run{i + 1}', args.minutes, args.warmup_s,
                                args.log.with_suffix(f'.{i + 1}.log') if args.log else None))
            print(json.dumps(runs[-1]), flush=True)
    print(_table(runs))
    if args.minutes:
        print(_soak_table(runs[0]))
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
