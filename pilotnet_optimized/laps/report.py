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
The report of one run, without ROS: Behavior Metrics' lap figures plus the brain's timing.

:class:`RunReport` accumulates what the metrics node hears (odometry, one timing row per answered
frame, the model that drives, the simulator's end event) and :meth:`RunReport.end` turns it into
one JSON-ready dict:

- Behavior Metrics' figures (:class:`~.metrics.LapMetrics`: ``completed_distance``,
  ``percentage_completed``, ``lap_seconds``, ``average_speed``, ``position_deviation_*``, ...) of
  the odometry against the perfect lap;
- timing: ``inference_{mean,p50,p90,p99}_ms`` (the model call only, as Behavior Metrics measures
  it), ``end_to_end_{p50,p90,p99}_ms`` (image stamp to command, node clock),
  ``callback_{p50,p99}_ms`` (image in to command out, steady clock), ``preprocess_p50_ms``,
  ``brain_loop_hz`` (answered frames per simulated second) and ``brain_loop_hz_wall`` (per wall
  second), ``frames``, ``real_time_factor`` (simulated / wall seconds);
- ``model`` (the inference node's description of it), ``simulator`` (the simulator's own ``end``
  event, when there was one) and ``end_reason``;
- ``behavior_metrics``: the same run under Behavior Metrics' own key names and in its units
  (:data:`BM_UNITS`), as its ``<time>.json`` holds them: seconds for inference and brain
  iterations, ``position_deviation_mae`` as its mean of ``1000 ** d`` (not metres), ...

:func:`summarise_runs` turns the reports of an experiment's repetitions into one summary (mean,
spread, end reasons) and :func:`write_summary` writes it as ``summary.json`` and ``summary.md``.

:func:`write_report` writes it as ``metrics.json`` and a short ``metrics.md``, each atomically (a
reader never sees half a file, a crash never leaves one).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
import json
import math
import os
from pathlib import Path
import time
from typing import Any

import numpy as np
from pilotnet_optimized.laps.metrics import (checkpoint_progress, CheckpointWalk,
                                             compute_lap_metrics, PerfectLap)
from pilotnet_optimized.laps.trajectory import Trajectory

__all__ = [
    'TIMING_FIELDS',
    'REPORT_JSON',
    'REPORT_MD',
    'RunReport',
    'write_report',
    'report_markdown',
    'describe_cause',
    'complete_report',
    'BM_UNITS',
    'SUMMARY_FIGURES',
    'summarise_runs',
    'summary_markdown',
    'write_summary',
]

#: Fields of one timing row, as the inference node publishes them (``layout.dim[0].label`` names
#: them too).
TIMING_FIELDS = ('inference_ms', 'end_to_end_ms', 'preprocess_ms', 'callback_ms', 'image_stamp_s')
REPORT_JSON = 'metrics.json'
REPORT_MD = 'metrics.md'
#: Seconds a timing row's image stamp may precede the first pose (stamps printed with 9 digits).
STAMP_TOLERANCE_S = 1e-6
#: Frames the live progress's inference p50 covers (the latest ones).
PROGRESS_WINDOW = 4096
FORMAT = 'pilotnet_optimized.run_report/1'
SUMMARY_FORMAT = 'pilotnet_optimized.episodes_summary/1'
SUMMARY_JSON = 'summary.json'
SUMMARY_MD = 'summary.md'
#: Behavior Metrics' brain cycle (``PilotTimeCycle``, ms): its target brain iteration rate.
BM_PILOT_TIME_CYCLE_MS = 50.0
#: Behavior Metrics drops this many inference times at each end of a run before averaging.
BM_INFERENCE_TRIM = 10
#: The ``behavior_metrics`` keys of a report and their units, as Behavior Metrics computes them
#: (``utils/metrics_gazebo.py``, ``pilot_gazebo.py``).
BM_UNITS: dict[str, str] = {
    'completed_distance': 'm',
    'average_speed': 'm/s',
    'percentage_completed': '%',
    'lap_seconds': 's (only when percentage_completed > 100)',
    'circuit_diameter': "m (the perfect lap's length)",
    'position_deviation_mae': 'mean of 1000 ** d over the covered checkpoints, d in m (not a '
                              'distance)',
    'position_deviation_total_err': 'sum of 1000 ** d over the covered checkpoints',
    'experiment_total_simulated_time': 's',
    'experiment_total_real_time': 's',
    'mean_inference_time': 's (the first and last 10 dropped)',
    'frame_rate': 'camera frames per simulated s',
    'brain_iterations_frequency_simulated_time': 'iterations per simulated s',
    'mean_brain_iterations_simulated_time': 'simulated s per iteration',
    'brain_iterations_frequency_real_time': 'iterations per wall s of brain work (1 / mean)',
    'mean_brain_iterations_real_time': 'wall s per iteration (image in to command out)',
    'target_brain_iterations_real_time': 'iterations per s (1000 / PilotTimeCycle)',
    'real_time_factor': 'simulated s / wall s',
    'gpu_inference': 'bool',
    'suddenness_distance': 'mean |(v, w) - previous (v, w)|, both normalised to [0, 1]',
}
#: The figures a summary of repetitions gives the mean and spread of.
SUMMARY_FIGURES = (
    'percentage_completed',
    'lap_seconds',
    'completed_distance',
    'average_speed',
    'position_deviation_mean_m',
    'position_deviation_max_m',
    'sim_seconds',
    'inference_p50_ms',
    'brain_loop_hz',
)


def _percentiles(
    values: list[float], stage: str, which: Sequence[int], mean: bool = False
) -> dict[str, float | None]:
    # Imported here: backends imports models, which imports sim, which imports laps (this package).
    from pilotnet_optimized.backends.timing import percentiles
    return percentiles(values, which, prefix=f'{stage}_', mean=mean, digits=4)


def _finite(value: Any) -> Any:
    """JSON-safe: NaN and infinities become ``None``, numpy scalars plain Python."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _DistinctStamps:
    """
    Count distinct frame stamps: 8 bytes a frame (a set of them cost about 60).

    A frame answered twice (a lock-step simulator resends it when an observer is slow) comes back
    at once: the last :data:`RECENT` stamps find it in a small set. An older stamp than those (a
    reordered or much later repeat) is looked up in the column of every stamp, so the count is
    exact either way.
    """

    RECENT = 256

    def __init__(self) -> None:
        self._all = _Doubles()
        self._lo = math.inf
        self._hi = -math.inf
        self._order: deque[float] = deque()
        self._recent: set[float] = set()

    @property
    def count(self) -> int:
        return len(self._all)

    def add(self, stamp: float) -> None:
        if stamp in self._recent:
            return
        if stamp <= self._hi and bool(np.any(self._all.values() == stamp)):
            return
        self._all.append(stamp)
        self._lo, self._hi = min(self._lo, stamp), max(self._hi, stamp)
        self._order.append(stamp)
        self._recent.add(stamp)
        if len(self._order) > self.RECENT:
            self._recent.discard(self._order.popleft())

    @property
    def span(self) -> float:
        """Newest minus oldest stamp (0 without any)."""
        return self._hi - self._lo if self.count else 0.0


class _Doubles:
    """
    An append-only column of float64 values in fixed blocks.

    A growing ``array('d')`` is copied to a bigger buffer again and again and leaves the old ones
    behind as heap holes that later, bigger copies cannot reuse: over a long run the process kept
    several times the data. Blocks of :data:`BLOCK` values are allocated once and never move.
    """

    BLOCK = 8192

    def __init__(self) -> None:
        self._blocks: list[np.ndarray] = []
        self._n = 0

    def append(self, value: float) -> None:
        i = self._n % self.BLOCK
        if i == 0:
            self._blocks.append(np.empty(self.BLOCK, np.float64))
        self._blocks[-1][i] = value
        self._n += 1

    def extend(self, values: Iterable[float]) -> None:
        for value in values:
            self.append(value)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> float:
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError('index out of range')
        return float(self._blocks[index // self.BLOCK][index % self.BLOCK])

    def values(self) -> np.ndarray:
        """Return every value, in order, as one new array."""
        return self.values_from(0)

    def values_from(self, start: int) -> np.ndarray:
        """Return the values from index ``start`` on, as one new array (only their blocks)."""
        start = max(0, min(start, self._n))
        first = start // self.BLOCK
        if first >= len(self._blocks):
            return np.empty(0, np.float64)
        tail = np.concatenate(self._blocks[first:])
        return tail[start - first * self.BLOCK:self._n - first * self.BLOCK]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self.values()
        return values if dtype is None else values.astype(dtype)

    def __iter__(self) -> Iterator[float]:
        return iter(self.values().tolist())


class RunReport:
    """
    Accumulates one run and computes its report; see the module documentation.

    :param perfect: the perfect lap the run is judged against (``None``: no lap figures, timing
        only).
    :param circuit: the circuit's name, for the report.
    :param perfect_source: where the perfect lap came from (a circuit name or a file), for the
        report.
    """

    def __init__(
        self, perfect: PerfectLap | None, circuit: str = '', perfect_source: str = ''
    ) -> None:
        self.perfect = perfect
        self.circuit = circuit
        self.perfect_source = perfect_source or circuit
        # Fixed blocks of doubles (8 bytes a value, never moved), not lists of Python floats
        # (about 32, 110 for a tuple): a run keeps every pose and timing row for its report, and
        # a 30-minute soak's metrics node grew 28 % with lists, 10.6 % with growing arrays.
        self._t = _Doubles()
        self._xy = _Doubles()          # x0, y0, x1, y1, ...
        self._yaw = _Doubles()
        self._odom_wall = _Doubles()
        self._vw = _Doubles()          # v0, w0, v1, w1, ...
        self._timing = {name: _Doubles() for name in TIMING_FIELDS}
        self._timing_wall = _Doubles()
        self._stamps = _DistinctStamps()
        self._timing_before_start = 0    # rows for frames before the first pose, dropped
        # Live progress goes on from where it stopped: walking every pose again each time cost a
        # long run O(N^2) and fragmented the node's heap with whole-run temporaries.
        self._walk: CheckpointWalk | None = None
        self._walked = 0                 # poses the progress has taken
        self._path_m = 0.0               # their path length
        self.model: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None

    # -- input ------------------------------------------------------------------------------------
    @property
    def ended(self) -> bool:
        """:meth:`end` was called: later input is ignored."""
        return self.result is not None

    @property
    def poses(self) -> int:
        return len(self._t)

    @property
    def last_t(self) -> float | None:
        """Time of the newest pose."""
        return self._t[-1] if self._t else None

    @property
    def frames(self) -> int:
        """
        Return the number of distinct frames answered.

        A frame a lock-step simulator sent twice, and the brain answered twice, counts once.
        """
        return self._stamps.count

    def _poses_xy(self) -> np.ndarray:
        return np.asarray(self._xy, dtype=np.float64).reshape(-1, 2)

    def add_odometry(self, t: float, x: float, y: float, yaw: float | None = None,
                     wall: float | None = None, v: float | None = None,
                     w: float | None = None) -> bool:
        """
        Take one pose (``t`` in seconds, simulated time when there is one).

        ``v`` and ``w`` are the odometry's velocities (planar_move's: the applied command), for
        Behavior Metrics' suddenness. A pose older than the newest one (reordered or repeated) is
        dropped. Returns whether it was taken.
        """
        if self.ended or not (math.isfinite(t) and math.isfinite(x) and math.isfinite(y)):
            return False
        if self._t and t <= self._t[-1]:
            return False
        self._t.append(float(t))
        self._xy.extend((float(x), float(y)))
        self._yaw.append(float(yaw) if yaw is not None and math.isfinite(yaw) else math.nan)
        self._odom_wall.append(time.monotonic() if wall is None else float(wall))
        if v is not None and w is not None and math.isfinite(v) and math.isfinite(w):
            self._vw.extend((float(v), float(w)))
        return True

    def add_timing(
        self, row: Mapping[str, float] | Sequence[float], wall: float | None = None
    ) -> bool:
        """
        Take one timing row; return whether it was taken.

        A row is a mapping by field name, or a sequence in :data:`TIMING_FIELDS` order. A row for a
        frame older than the first pose is dropped (and counted, ``timing_rows_before_start``):
        the brain's publisher keeps its last rows for a subscriber it matches late, and a report
        that started after them must not count them.
        """
        if self.ended:
            return False
        values = row if isinstance(row, Mapping) else dict(zip(TIMING_FIELDS, row, strict=False))
        stamp = values.get('image_stamp_s')
        if (stamp is not None and math.isfinite(stamp) and self._t
                and stamp < self._t[0] - STAMP_TOLERANCE_S):
            self._timing_before_start += 1
            return False
        for name in TIMING_FIELDS:
            value = values.get(name)
            self._timing[name].append(float(value) if value is not None else math.nan)
        if stamp is not None and math.isfinite(stamp):
            self._stamps.add(round(float(stamp), 9))
        self._timing_wall.append(time.monotonic() if wall is None else float(wall))
        return True

    def set_model(self, info: Mapping[str, Any]) -> None:
        """
        Record the model that drives (the inference node's ``model_loaded`` event).

        The newest one wins.
        """
        if not self.ended:
            self.model = {k: v for k, v in info.items() if k != 'event'}

    # -- output -----------------------------------------------------------------------------------
    def trajectory(self) -> Trajectory:
        yaw = np.asarray(self._yaw)
        return Trajectory(t=np.asarray(self._t) - (self._t[0] if self._t else 0.0),
                          xy=self._poses_xy(),
                          yaw=yaw if yaw.size and np.isfinite(yaw).all() else None)

    def progress(self) -> dict[str, Any]:
        """
        How the run goes so far.

        Percentage of the lap, distance, simulated seconds, frames, and the inference p50 of the
        latest :data:`PROGRESS_WINDOW` frames (the report's own p50 covers them all). Each call
        costs the poses since the last one.
        """
        n = len(self._t)
        if n > self._walked:
            # From the last pose taken, for the path's first new segment.
            back = 1 if self._walked else 0
            xy = self._xy.values_from(2 * (self._walked - back)).reshape(-1, 2)
            if xy.shape[0] > 1:
                self._path_m += float(np.hypot(*np.diff(xy, axis=0).T).sum())
            if self.perfect is not None:
                if self._walk is None:
                    self._walk = CheckpointWalk(self.perfect, xy[0])
                self._walk.feed(xy[back:])
            self._walked = n
        percentage = None
        if self._walk is not None:
            percentage = round(self._walk.progress.reached / len(self.perfect) * 100.0, 3)
        latest = self._timing['inference_ms']
        return {
            'percentage_completed': percentage,
            'completed_distance': round(self._path_m, 3),
            'sim_seconds': round(self._t[-1] - self._t[0], 3) if n > 1 else 0.0,
            'frames': self.frames,
            **_percentiles(latest.values_from(len(latest) - PROGRESS_WINDOW), 'inference', (50,)),
        }

    def end(
        self, reason: str | None, simulator: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """
        Close the run and compute the report (once: a second call returns the first result).

        :param reason: why the run ended (the simulator's ``end_reason``, ``'interrupted'``, ...).
        :param simulator: the simulator's ``end`` event, kept in the report as it is.
        """
        if self.result is not None:
            return self.result
        out: dict[str, Any] = {
            'format': FORMAT,
            'written_at': datetime.now(timezone.utc).isoformat(timespec='seconds'),
            'end_reason': reason,
            'circuit': self.circuit,
            'perfect_lap': self.perfect_source,
        }
        traj = self.trajectory()
        if self.perfect is not None and len(traj):
            out.update(compute_lap_metrics(traj, self.perfect).to_dict())
        else:
            out.update(
                dict.fromkeys(
                    (
                        'completed_distance',
                        'circuit_diameter',
                        'percentage_completed',
                        'lap_seconds',
                        'average_speed',
                        'run_seconds',
                        'position_deviation_mean_m',
                        'position_deviation_max_m',
                        'position_deviation_bm',
                        'laps_completed',
                    )
                )
            )
            if self.perfect is not None:
                out['circuit_diameter'] = self.perfect.circuit_diameter
            if len(traj):
                out.update(
                    completed_distance=traj.path_length(),
                    run_seconds=traj.duration,
                    average_speed=traj.path_length() / traj.duration if traj.duration > 0 else 0.0,
                )
        out['end_reason'] = reason
        sim_seconds = traj.duration
        odom_wall = self._odom_wall[-1] - self._odom_wall[0] if len(self._odom_wall) > 1 else 0.0
        timing_wall = (
            self._timing_wall[-1] - self._timing_wall[0] if len(self._timing_wall) > 1 else 0.0
        )
        samples = len(self._timing_wall)
        stamp_span = self._stamps.span
        out.update(
            {
                'frames': self.frames,
                'timing_samples': samples,
                'timing_rows_before_start': self._timing_before_start,
                'odometry_messages': len(self._t),
                'sim_seconds': round(sim_seconds, 4),
                'wall_seconds': round(odom_wall, 4),
                'real_time_factor': round(sim_seconds / odom_wall, 4) if odom_wall > 0 else None,
                # Per second: n frames span n - 1 periods (of their image stamps: simulated time,
                # when there is one).
                'brain_loop_hz': (
                    round((self.frames - 1) / stamp_span, 4) if stamp_span > 0 else None
                ),
                'brain_loop_hz_wall': (
                    round((samples - 1) / timing_wall, 4) if timing_wall > 0 else None
                ),
            }
        )
        out.update(
            _percentiles(self._timing['inference_ms'], 'inference', (50, 90, 99), mean=True)
        )
        out.update(_percentiles(self._timing['end_to_end_ms'], 'end_to_end', (50, 90, 99)))
        out.update(_percentiles(self._timing['callback_ms'], 'callback', (50, 99)))
        out.update(_percentiles(self._timing['preprocess_ms'], 'preprocess', (50,)))
        out['model'] = dict(self.model) if self.model is not None else None
        out['behavior_metrics'] = self._behavior_metrics(out, traj)
        out['simulator'] = (
            {k: v for k, v in simulator.items() if k != 'event'} if simulator else None
        )
        out['cause'] = describe_cause(reason, simulator)
        self.result = _finite(out)
        return self.result

    def _behavior_metrics(self, out: Mapping[str, Any], traj: Trajectory) -> dict[str, Any]:
        """Return the run's figures under Behavior Metrics' key names, in its units."""
        bm: dict[str, Any] = {
            key: out.get(key)
            for key in ('completed_distance', 'average_speed', 'percentage_completed',
                        'circuit_diameter')
        }
        pct = out.get('percentage_completed')
        bm['lap_seconds'] = out.get('lap_seconds') if pct is not None and pct > 100 else None
        mae = out.get('position_deviation_bm')
        bm['position_deviation_mae'] = mae
        bm['position_deviation_total_err'] = None
        if mae is not None and self.perfect is not None and len(traj):
            covered = min(checkpoint_progress(traj.xy, self.perfect).reached, len(self.perfect))
            bm['position_deviation_total_err'] = mae * covered
        sim_s, wall_s = out.get('sim_seconds') or 0.0, out.get('wall_seconds') or 0.0
        bm['experiment_total_simulated_time'] = sim_s
        bm['experiment_total_real_time'] = wall_s
        inference = [v for v in self._timing['inference_ms'] if math.isfinite(v)]
        trimmed = (inference[BM_INFERENCE_TRIM:-BM_INFERENCE_TRIM]
                   if len(inference) > 2 * BM_INFERENCE_TRIM else inference)
        bm['mean_inference_time'] = (
            float(np.mean(trimmed)) / 1e3 if trimmed else None
        )
        bm['frame_rate'] = self.frames / sim_s if sim_s > 0 else None
        hz = out.get('brain_loop_hz')
        bm['brain_iterations_frequency_simulated_time'] = hz
        bm['mean_brain_iterations_simulated_time'] = 1.0 / hz if hz else None
        callback = [v for v in self._timing['callback_ms'] if math.isfinite(v)]
        mean_cb = float(np.mean(callback)) / 1e3 if callback else None
        bm['mean_brain_iterations_real_time'] = mean_cb
        bm['brain_iterations_frequency_real_time'] = 1.0 / mean_cb if mean_cb else None
        bm['target_brain_iterations_real_time'] = 1000.0 / BM_PILOT_TIME_CYCLE_MS
        bm['real_time_factor'] = out.get('real_time_factor')
        model = self.model or {}
        bm['gpu_inference'] = bool(model.get('gpu', model.get('backend') == 'tensorrt'))
        bm['suddenness_distance'] = _suddenness(np.asarray(self._vw).reshape(-1, 2))
        return bm


def _suddenness(vw: np.ndarray) -> float | None:
    """Return Behavior Metrics' suddenness: the mean step between normalised commands."""
    if len(vw) < 2:
        return None
    from pilotnet_optimized.sim.car import V_RANGE, W_RANGE
    a = np.asarray(vw, dtype=np.float64)
    a = (a - [V_RANGE[0], W_RANGE[0]]) / [V_RANGE[1] - V_RANGE[0], W_RANGE[1] - W_RANGE[0]]
    return float(np.mean(np.hypot(*np.diff(a, axis=0).T)))


def describe_cause(reason: str | None, simulator: Mapping[str, Any] | None) -> str | None:
    """
    Say which node's fault ended the run, from the simulator's ``end`` event; ``None`` if none.

    ``brain_lost``: the brain's node and why (left the graph, no command for a while);
    ``observer_lost``: each lost observer and why.
    """
    sim = simulator or {}
    if reason == 'brain_lost':
        brain = sim.get('brain') or {}
        nodes = ', '.join(brain.get('nodes') or []) or 'the brain'
        return f"brain lost: {nodes} ({brain.get('lost') or 'gone'})"
    if reason == 'observer_lost':
        lost = sim.get('observers_lost') or {}
        return 'observer lost: ' + (
            ', '.join(f'{name} ({why})' for name, why in lost.items()) or 'an observer'
        )
    return None


def complete_report(folder: str | Path, nodes: Mapping[str, Mapping[str, Any]],
                    cause: str | None = None,
                    simulator: Mapping[str, Any] | None = None) -> Path:
    """
    Add what the starter of the nodes knows to a run's ``metrics.json`` (written if missing).

    ``nodes``: each node process's state (merged into the report's ``nodes`` under ``process``);
    ``cause``: a node's fault that ended the run (kept if the report names none); ``simulator``:
    the simulator's ``end`` event, for a report that lacks it (a metrics node stopped before the
    end event came): its ``end_reason`` then replaces ``interrupted``; with neither that nor a
    simulator in the report, a ``cause`` makes the end reason ``node_lost``. With no report at all
    (the metrics node was killed) a minimal one holds these. An episodes run (``summary.json``
    and a report per repetition, no ``metrics.json``) gets the node states and cause in its
    summary instead. Written atomically; returns its path.
    """
    folder = Path(folder)
    path = folder / REPORT_JSON
    if simulator is not None and simulator.get('event', 'end') != 'end':
        simulator = None   # another node's end line (the episode node's), not the simulator's
    if not path.exists() and (folder / SUMMARY_JSON).is_file():
        return _complete_summary(folder / SUMMARY_JSON, nodes, cause)
    try:
        report: dict[str, Any] = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError):
        report = {'format': FORMAT, 'end_reason': None, 'simulator': None,
                  'report_by': 'runner (the metrics node wrote none)'}
    sim = {k: v for k, v in simulator.items() if k != 'event'} if simulator else None
    if sim and not report.get('simulator'):
        report['simulator'] = sim
        if report.get('end_reason') in (None, 'interrupted'):
            report['end_reason'] = sim.get('end_reason')
    merged = {name: dict(state) for name, state in (report.get('nodes') or {}).items()}
    for name, state in nodes.items():
        key = name if name.startswith('/') else f'/{name}'
        merged.setdefault(key, {})['process'] = dict(state)
    report['nodes'] = merged
    report['cause'] = (
        report.get('cause') or describe_cause(report.get('end_reason'), report.get('simulator'))
        or cause
    )
    if cause and report.get('end_reason') in (None, 'interrupted') and not report.get('simulator'):
        report['end_reason'] = 'node_lost'   # a node died and nothing else ended the run
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, json.dumps(_finite(report), indent=2, default=str) + '\n')
    return path


def _complete_summary(path: Path, nodes: Mapping[str, Mapping[str, Any]],
                      cause: str | None) -> Path:
    try:
        summary: dict[str, Any] = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError):
        summary = {}
    merged = {name: dict(state) for name, state in (summary.get('nodes') or {}).items()}
    for name, state in nodes.items():
        key = name if name.startswith('/') else f'/{name}'
        merged.setdefault(key, {})['process'] = dict(state)
    summary['nodes'] = merged
    summary['cause'] = summary.get('cause') or cause
    _write_atomically(path, json.dumps(_finite(summary), indent=2, default=str) + '\n')
    return path


def report_markdown(report: Mapping[str, Any]) -> str:
    """Return a short Markdown summary of a report (what ``metrics.md`` holds)."""
    def fmt(value: Any, unit: str = '', digits: int = 2) -> str:
        if value is None:
            return '-'
        if isinstance(value, float):
            return f'{value:.{digits}f}{unit}'
        return f'{value}{unit}'

    model = report.get('model') or {}
    name = Path(str(model.get('path', ''))).name or '-'
    lines = [
        f"# Run on {report.get('circuit') or '-'}: {report.get('end_reason') or '-'}",
        '',
        f"Model: {name} ({model.get('backend', '-')}, {model.get('precision', '-')}, "
        f"{fmt(model.get('size_mb'), ' MB')}); written {report.get('written_at', '-')}.",
        '',
        '| figure | value |',
        '|---|---|',
    ]
    rows = [
        ('completed', fmt(report.get('percentage_completed'), ' %', 1)),
        ('lap time', fmt(report.get('lap_seconds'), ' s')),
        ('distance', fmt(report.get('completed_distance'), ' m', 1)),
        ('average speed', fmt(report.get('average_speed'), ' m/s')),
        (
            'position deviation mean / max',
            (
                f"{fmt(report.get('position_deviation_mean_m'), ' m')} / "
                f"{fmt(report.get('position_deviation_max_m'), ' m')}"
            ),
        ),
        ('simulated time', fmt(report.get('sim_seconds'), ' s')),
        ('frames', fmt(report.get('frames'))),
        (
            'inference p50 / p90 / p99',
            ' / '.join(fmt(report.get(f'inference_p{q}_ms'), ' ms') for q in (50, 90, 99)),
        ),
        (
            'end to end p50 / p99',
            (
                f"{fmt(report.get('end_to_end_p50_ms'), ' ms')} / "
                f"{fmt(report.get('end_to_end_p99_ms'), ' ms')}"
            ),
        ),
        (
            'brain loop (sim / wall)',
            (
                f"{fmt(report.get('brain_loop_hz'), ' Hz', 1)} / "
                f"{fmt(report.get('brain_loop_hz_wall'), ' Hz', 1)}"
            ),
        ),
        ('real-time factor', fmt(report.get('real_time_factor'))),
    ]
    lines += [f'| {k} | {v} |' for k, v in rows]
    return '\n'.join(lines) + '\n'


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f'.{path.name}.tmp')
    with tmp.open('w', encoding='utf-8') as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def write_report(report: Mapping[str, Any], folder: str | Path) -> tuple[Path, Path]:
    """
    Write ``metrics.json`` and ``metrics.md`` into ``folder`` (created).

    Each atomically (temporary file and rename). Returns both paths.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / REPORT_JSON, folder / REPORT_MD
    _write_atomically(json_path, json.dumps(_finite(dict(report)), indent=2, default=str) + '\n')
    _write_atomically(md_path, report_markdown(report))
    return json_path, md_path


def _stats(values: Sequence[float]) -> dict[str, Any]:
    a = np.asarray(values, dtype=np.float64)
    if not a.size:
        return {'n': 0, 'mean': None, 'std': None, 'min': None, 'max': None}
    return {'n': int(a.size), 'mean': float(a.mean()),
            'std': float(a.std(ddof=1)) if a.size > 1 else 0.0,
            'min': float(a.min()), 'max': float(a.max())}


def summarise_runs(reports: Sequence[Mapping[str, Any]],
                   completed: Sequence[str] = ('laps_done', 'back_at_start')) -> dict[str, Any]:
    """
    Return the summary of an experiment's repetitions.

    For each of :data:`SUMMARY_FIGURES`: ``n`` (the repetitions that have it), ``mean``, ``std``
    (sample standard deviation; 0 for one value), ``min`` and ``max``; the same for Behavior
    Metrics' ``mean_inference_time``; how many repetitions completed their laps, the count of each
    end reason, and one row per repetition.
    """
    def values(key: str, bm: bool = False) -> list[float]:
        out = []
        for r in reports:
            v = (r.get('behavior_metrics') or {}).get(key) if bm else r.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out.append(float(v))
        return out

    reasons: dict[str, int] = {}
    for r in reports:
        reasons[str(r.get('end_reason'))] = reasons.get(str(r.get('end_reason')), 0) + 1
    figures = {key: _stats(values(key)) for key in SUMMARY_FIGURES}
    figures['bm_mean_inference_time_s'] = _stats(values('mean_inference_time', bm=True))
    rows = [{'repetition': r.get('repetition', i + 1), 'end_reason': r.get('end_reason'),
             **{key: r.get(key) for key in SUMMARY_FIGURES}} for i, r in enumerate(reports)]
    return _finite({
        'format': SUMMARY_FORMAT,
        'written_at': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'repetitions': len(reports),
        'completed': sum(1 for r in reports if r.get('end_reason') in completed),
        'end_reasons': reasons,
        'circuit': reports[0].get('circuit') if reports else None,
        'model': (reports[0].get('model') or {}).get('path') if reports else None,
        'figures': figures,
        'runs': rows,
    })


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """Return the summary as Markdown: one row per figure (mean, std, min, max), then the runs."""
    def fmt(value: Any) -> str:
        if value is None:
            return '-'
        return f'{value:.3f}' if isinstance(value, float) else str(value)

    lines = [
        f"# {summary.get('repetitions')} repetitions on {summary.get('circuit') or '-'}: "
        f"{summary.get('completed')} completed",
        '',
        '| figure | n | mean | std | min | max |',
        '|---|---|---|---|---|---|',
    ]
    for key, st in (summary.get('figures') or {}).items():
        lines.append(f"| {key} | {st['n']} | {fmt(st['mean'])} | {fmt(st['std'])} | "
                     f"{fmt(st['min'])} | {fmt(st['max'])} |")
    lines += ['', '| repetition | end reason | completed % | lap s | avg speed m/s |',
              '|---|---|---|---|---|']
    for row in summary.get('runs') or ():
        lines.append(f"| {row['repetition']} | {row['end_reason']} | "
                     f"{fmt(row.get('percentage_completed'))} | {fmt(row.get('lap_seconds'))} | "
                     f"{fmt(row.get('average_speed'))} |")
    return '\n'.join(lines) + '\n'


def write_summary(summary: Mapping[str, Any], folder: str | Path) -> tuple[Path, Path]:
    """Write ``summary.json`` and ``summary.md`` into ``folder`` (created), each atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / SUMMARY_JSON, folder / SUMMARY_MD
    _write_atomically(json_path, json.dumps(_finite(dict(summary)), indent=2, default=str) + '\n')
    _write_atomically(md_path, summary_markdown(summary))
    return json_path, md_path
