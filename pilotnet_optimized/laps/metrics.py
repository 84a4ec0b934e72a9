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
JdeRobot Behavior Metrics' lap figures for one run against the circuit's perfect lap.

The definitions follow Behavior Metrics' offline metrics, with times as float seconds instead
of whole seconds, and with the checkpoint walk corrected so that a lap
judged against itself scores exactly 100 % (see :func:`checkpoint_progress`).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
import math
from pathlib import Path
from typing import Any

import numpy as np
from pilotnet_optimized.errors import TrajectoryError
from pilotnet_optimized.laps.geometry import point_polyline_distance
from pilotnet_optimized.laps.trajectory import load_trajectory, Trajectory

__all__ = [
    'CHECKPOINT_RADIUS_M',
    'CheckpointProgress',
    'LapMetrics',
    'PerfectLap',
    'checkpoint_progress',
    'CheckpointWalk',
    'circuit_diameter',
    'compute_lap_metrics',
    'load_perfect_lap',
    'add_arguments',
    'run',
]

#: A run point reaches a perfect-lap checkpoint within this distance (Behavior Metrics: 5 m).
CHECKPOINT_RADIUS_M = 5.0
#: The perfect lap closes at the first point this close to its start (Behavior Metrics: 1 m) ...
LAP_CLOSURE_RADIUS_M = 1.0
#: ... whose index is above this, so that the points right after the start do not count.
LAP_CLOSURE_MIN_INDEX = 100
# Slack for "not behind the checkpoint" so that a run point lying exactly on a checkpoint's
# normal (rounding puts it at -1e-15 m) still reaches it.
_BEHIND_TOLERANCE_M = 1e-9


@dataclass(frozen=True)
class PerfectLap:
    """
    The reference lap of a circuit.

    :param xy: ``(M, 2)`` checkpoints in driving order, M >= 3, not repeating the start.
    :param circuit_diameter: the lap length in metres as Behavior Metrics defines it (it calls
        it "diameter"), see :func:`circuit_diameter`.
    :raises TrajectoryError: with fewer than 3 checkpoints or non-finite values.
    """

    xy: np.ndarray
    circuit_diameter: float

    def __post_init__(self) -> None:
        xy = np.ascontiguousarray(self.xy, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] < 3:
            raise TrajectoryError(f'perfect lap needs (M >= 3, 2) points, got shape {xy.shape}')
        if not np.isfinite(xy).all():
            raise TrajectoryError('perfect lap contains NaN or infinite coordinates')
        object.__setattr__(self, 'xy', xy)
        object.__setattr__(self, 'circuit_diameter', float(self.circuit_diameter))

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    @classmethod
    def from_xy(cls, xy: np.ndarray) -> PerfectLap:
        """
        Build from checkpoints, computing the circuit diameter.

        :param xy: ``(M, 2)`` checkpoints in driving order.
        """
        xy = np.ascontiguousarray(xy, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] < 3:
            raise TrajectoryError(f'perfect lap needs (M >= 3, 2) points, got shape {xy.shape}')
        return cls(xy=xy, circuit_diameter=circuit_diameter(xy))

    @classmethod
    def from_trajectory(cls, traj: Trajectory) -> PerfectLap:
        """
        Build from a recorded trajectory (its positions; time is not used).

        :param traj: the perfect lap's poses in driving order.
        """
        return cls.from_xy(traj.xy)


def load_perfect_lap(path: str | Path, topic: str | None = None) -> PerfectLap:
    """
    Read a perfect lap from a bag or CSV file (see :func:`load_trajectory`).

    :param path: Behavior Metrics' ``lap-<circuit>.bag`` or any trajectory file.
    :param topic: odometry topic; ``None`` picks it as :func:`load_trajectory` does.
    :raises TrajectoryError: unreadable file or fewer than 3 points.
    """
    traj = load_trajectory(path, topic)
    try:
        return PerfectLap.from_trajectory(traj)
    except TrajectoryError as err:
        raise TrajectoryError(f'{path}: {err}') from err


def circuit_diameter(xy: np.ndarray) -> float:
    """
    Behavior Metrics' circuit "diameter", really the lap length.

    Path length from the first point up to (including) the first point with index > 100 that
    lies within 1 m of the first point; without such a point, the closed length (including the
    segment from the last point back to the first).

    :param xy: ``(M, 2)`` perfect-lap points.
    :returns: metres.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.shape[0] < 2:
        return 0.0
    seg = np.hypot(*np.diff(xy, axis=0).T)
    d_start = np.hypot(*(xy - xy[0]).T)
    idx = np.arange(xy.shape[0])
    closing = np.flatnonzero((idx > LAP_CLOSURE_MIN_INDEX) & (d_start < LAP_CLOSURE_RADIUS_M))
    if closing.size:
        return float(seg[:closing[0]].sum())
    return float(seg.sum() + d_start[-1])


@dataclass(frozen=True)
class CheckpointProgress:
    """
    How far a run got along the perfect lap's checkpoints.

    :param start_index: the checkpoint nearest the run's first pose.
    :param direction: +1 when the run drove the perfect lap's order, -1 when it drove it the
        other way round.
    :param reached: checkpoints reached, the start one included; ``M`` per full lap.
    :param lap_closed_at: index of the run pose at which ``reached`` hit ``M``, or ``None``.
    """

    start_index: int
    direction: int
    reached: int
    lap_closed_at: int | None

    def covered(self, m: int) -> np.ndarray:
        """
        Return the indices of the distinct checkpoints reached, in driving order.

        :param m: number of perfect-lap checkpoints.
        """
        count = min(self.reached, m)
        return (self.start_index + self.direction * np.arange(count)) % m


def checkpoint_progress(run_xy: np.ndarray, perfect: PerfectLap) -> CheckpointProgress:
    """
    Walk the perfect lap's checkpoints along a run, both ways round, and keep the better.

    Behavior Metrics' rule: start at the checkpoint nearest the first run pose; for each run
    pose in order, while the *next* checkpoint is within 5 m, count it and move on to it.

    Correction: a checkpoint counts only once the run pose is not *behind* it along the lap
    (projection on the checkpoint's tangent >= 0), and the start checkpoint counts as reached
    (the car is on it). Why: with the bare 5 m test every pose credits the checkpoints up to
    5 m *ahead* of it, so the perfect lap against itself scored ~101 % (the last pose already
    credits 5 m past the start) and a lap "closed" 5 m before the line. With the correction a
    run credits exactly the checkpoints it has driven past: the perfect lap against itself
    reaches each of its M checkpoints once (the start at t=0, the others as it passes over
    them), i.e. exactly 100 %, and the lap closes on the last checkpoint before the start.

    :param run_xy: ``(N, 2)`` run positions in time order, N >= 1.
    :param perfect: the perfect lap.
    :returns: the progress in the winning direction (forward on ties).
    """
    run_xy = np.asarray(run_xy, dtype=np.float64).reshape(-1, 2)
    if run_xy.shape[0] == 0:
        raise TrajectoryError('run has no poses')
    walk = CheckpointWalk(perfect, run_xy[0])
    walk.feed(run_xy)
    return walk.progress


class CheckpointWalk:
    """
    :func:`checkpoint_progress` fed a few poses at a time, with the same result.

    The walk is sequential, so it can go on from where it stopped: a live run's progress then
    costs its new poses only, not the whole run again (a metrics node that walked the whole run
    every second spent O(N^2) over a long run and left its heap fragmented by the temporary
    lists).

    :param perfect: the perfect lap.
    :param first_xy: the run's first position (the walk starts at the checkpoint nearest it).
    """

    def __init__(self, perfect: PerfectLap, first_xy: Any) -> None:
        cp = perfect.xy
        first = np.asarray(first_xy, dtype=np.float64).reshape(2)
        self.start = int(np.argmin(np.sum((cp - first) ** 2, axis=1)))
        # Tangent at each checkpoint from its two neighbours; the lap is a closed loop.
        tangent = np.roll(cp, -1, axis=0) - np.roll(cp, 1, axis=0)
        norm = np.hypot(*tangent.T)[:, None]
        tangent = np.divide(tangent, norm, out=np.zeros_like(tangent), where=norm > 0)
        # Plain Python floats: the walk is sequential and scalar numpy operations are ~10x slower.
        self._cx, self._cy = cp[:, 0].tolist(), cp[:, 1].tolist()
        self._tx, self._ty = tangent[:, 0].tolist(), tangent[:, 1].tolist()
        # per direction: current checkpoint, checkpoints reached, pose index of the lap's close
        self._state: dict[int, tuple[int, int, int | None]] = {
            1: (self.start, 1, None), -1: (self.start, 1, None)
        }
        self.poses = 0

    def feed(self, run_xy: np.ndarray) -> None:
        """Walk on over the next ``(K, 2)`` run positions, in time order."""
        run_xy = np.asarray(run_xy, dtype=np.float64).reshape(-1, 2)
        if not run_xy.shape[0]:
            return
        rx, ry = run_xy[:, 0].tolist(), run_xy[:, 1].tolist()
        for direction, state in self._state.items():
            self._state[direction] = _walk(rx, ry, self._cx, self._cy, self._tx, self._ty,
                                           state, direction, self.poses)
        self.poses += len(rx)

    @property
    def progress(self) -> CheckpointProgress:
        """Return the progress so far in the winning direction (forward on ties)."""
        best: CheckpointProgress | None = None
        for direction, (_, reached, closed) in self._state.items():
            if best is None or reached > best.reached:
                best = CheckpointProgress(self.start, direction, reached, closed)
        assert best is not None
        return best


def _walk(rx: list[float], ry: list[float], cx: list[float], cy: list[float],
          tx: list[float], ty: list[float], state: tuple[int, int, int | None], direction: int,
          offset: int) -> tuple[int, int, int | None]:
    """Go on from ``state`` over poses numbered from ``offset``; return the new state."""
    m = len(cx)
    r2 = CHECKPOINT_RADIUS_M * CHECKPOINT_RADIUS_M
    # Tangents point along the perfect lap's order; driving it backwards flips them.
    sign = float(direction)
    tol = -_BEHIND_TOLERANCE_M
    current, reached, closed = state
    for i in range(len(rx)):
        px = rx[i]
        py = ry[i]
        # A single pose may pass many checkpoints (they are ~0.13 m apart), but at most one
        # lap's worth: on a circuit smaller than the radius the loop would otherwise not end.
        for _ in range(m):
            nxt = current + direction
            if nxt == m:
                nxt = 0
            elif nxt < 0:
                nxt = m - 1
            dx = px - cx[nxt]
            dy = py - cy[nxt]
            if dx * dx + dy * dy > r2 or sign * (dx * tx[nxt] + dy * ty[nxt]) < tol:
                break
            current = nxt
            reached += 1
            if reached == m:
                closed = offset + i
    return current, reached, closed


@dataclass(frozen=True)
class LapMetrics:
    """
    Behavior Metrics' figures for one run.

    :param completed_distance: metres driven (sum of distances between consecutive poses).
    :param circuit_diameter: the perfect lap's length as Behavior Metrics defines it.
    :param percentage_completed: checkpoints reached / checkpoints per lap * 100 (> 100 over
        several laps).
    :param lap_seconds: seconds from the run start to the first lap's close, or ``None``.
    :param average_speed: completed_distance / run_seconds in m/s (0 for a zero-length run).
    :param run_seconds: seconds from the first to the last pose.
    :param position_deviation_mean_m: mean distance from the covered checkpoints to the driven
        path (NaN with fewer than 2 poses).
    :param position_deviation_max_m: the largest such distance (NaN with fewer than 2 poses).
    :param position_deviation_bm: Behavior Metrics' form, the mean of ``1000 ** d``; ``None``
        when it overflows or is undefined.
    :param laps_completed: whole laps, ``floor(percentage_completed / 100)``.
    :param end_reason: why the run ended (set by the simulator, see ``laps.tracker``).
    """

    completed_distance: float
    circuit_diameter: float
    percentage_completed: float
    lap_seconds: float | None
    average_speed: float
    run_seconds: float
    position_deviation_mean_m: float
    position_deviation_max_m: float
    position_deviation_bm: float | None
    laps_completed: int
    end_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict: NaN and infinities become ``None``."""
        out: dict[str, Any] = asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        return out


def compute_lap_metrics(run: Trajectory, perfect: PerfectLap) -> LapMetrics:
    """
    Behavior Metrics' lap figures of ``run`` against ``perfect``.

    Position deviation is judged only on the part of the perfect lap the run covered (the
    checkpoints it reached, in the winning direction): for each of those checkpoints, the
    distance to the driven path (the polyline through the run's poses).

    :param run: the run's poses, at least one.
    :param perfect: the circuit's perfect lap.
    :returns: the figures; ``end_reason`` is ``None``.
    :raises TrajectoryError: when the run has no poses.
    """
    if len(run) == 0:
        raise TrajectoryError('run has no poses')
    m = len(perfect)
    completed = run.path_length()
    seconds = run.duration
    progress = checkpoint_progress(run.xy, perfect)
    lap_seconds = (float(run.t[progress.lap_closed_at] - run.t[0])
                   if progress.lap_closed_at is not None else None)

    dev_mean = dev_max = math.nan
    dev_bm: float | None = None
    if len(run) >= 2:
        d = point_polyline_distance(perfect.xy[progress.covered(m)], run.xy)
        dev_mean = float(d.mean())
        dev_max = float(d.max())
        with np.errstate(over='ignore'):
            bm = float(np.mean(np.power(1000.0, d)))
        dev_bm = bm if math.isfinite(bm) else None

    return LapMetrics(
        completed_distance=completed,
        circuit_diameter=perfect.circuit_diameter,
        percentage_completed=progress.reached / m * 100.0,
        lap_seconds=lap_seconds,
        average_speed=completed / seconds if seconds > 0 else 0.0,
        run_seconds=seconds,
        position_deviation_mean_m=dev_mean,
        position_deviation_max_m=dev_max,
        position_deviation_bm=dev_bm,
        # Integer division: floor(percentage / 100) without float rounding at exact laps.
        laps_completed=progress.reached // m,
        end_reason=None,
    )


# -- command line ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pilotnet laps`` arguments."""
    parser.add_argument(
        '--trajectory', required=True, help='run to judge: a bag with odometry or a t,x,y CSV'
    )
    parser.add_argument('--perfect-lap', required=True, help='perfect-lap bag (or t,x,y CSV)')
    parser.add_argument(
        '--topic', help='odometry topic in the run bag (default: the nav_msgs/Odometry one)'
    )
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')


def run(args: argparse.Namespace) -> int:
    """
    Run ``pilotnet laps``: print Behavior Metrics' figures of a recorded run.

    A cut-off bag is read up to its cut.
    """
    from pilotnet_optimized.evaluate.report import print_mapping
    trajectory = load_trajectory(args.trajectory, topic=args.topic)
    metrics = compute_lap_metrics(trajectory, load_perfect_lap(args.perfect_lap))
    print_mapping(
        {'trajectory': str(args.trajectory), 'points': len(trajectory.xy), **metrics.to_dict()},
        args.json,
    )
    return 0
