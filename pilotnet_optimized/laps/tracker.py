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
Online end-of-run conditions, as Behavior Metrics' simulator checks them, without ROS.

Feed :meth:`RunMonitor.update` one pose at a time; it answers ``None`` while the run goes on
and an :class:`EndReason` once it should stop (and the same reason on every later call).
"""

from __future__ import annotations

from collections import deque
from enum import Enum
import math

from pilotnet_optimized.errors import PilotnetError, TrajectoryError

__all__ = ['EndReason', 'RunMonitor']


class EndReason(str, Enum):
    """Why a run ended."""

    TIMEOUT = 'timeout'
    TRAPPED = 'trapped'
    BACK_AT_START = 'back_at_start'
    FLIPPED = 'flipped'
    OFF_TRACK = 'off_track'
    LAPS_DONE = 'laps_done'
    #: The brain that drove has gone: its node left the graph, or it sent no command for a while.
    BRAIN_LOST = 'brain_lost'
    #: An observer the lock-step run waits for (metrics, recorder) has gone.
    OBSERVER_LOST = 'observer_lost'
    #: The simulator was stopped (SIGINT, SIGTERM) before the run ended.
    INTERRUPTED = 'interrupted'

    def __str__(self) -> str:  # the plain value in logs and JSON, not 'EndReason.X'
        return self.value


class _WindowExtreme:
    """Running minimum (or maximum) over a sliding window: a monotonic deque, O(1) amortised."""

    def __init__(self, is_max: bool) -> None:
        self._sign = -1.0 if is_max else 1.0
        self._items: deque[tuple[int, float]] = deque()

    def push(self, seq: int, value: float) -> None:
        v = self._sign * value
        # Older entries that can never again be the extreme are dropped.
        while self._items and self._items[-1][1] >= v:
            self._items.pop()
        self._items.append((seq, v))

    def expire(self, oldest_seq: int) -> None:
        while self._items[0][0] < oldest_seq:
            self._items.popleft()

    @property
    def value(self) -> float:
        return self._sign * self._items[0][1]

    def clear(self) -> None:
        self._items.clear()


class RunMonitor:
    """
    Behavior Metrics' end-of-run rules over a stream of poses.

    The run ends when (checked in this order, so that the most specific reason wins):

    - ``FLIPPED``: ``|pitch - first pitch| > flip_pitch_rad``;
    - ``OFF_TRACK``: the caller says the car left the track;
    - ``BACK_AT_START`` (or ``LAPS_DONE`` with ``laps_target``): the car is back within
      ``start_radius_m`` of its first position, at least ``min_time_before_start_check_s``
      after the start (or the previous lap) and after having been more than ``leave_start_m``
      away, so that standing on the start line does not trigger it;
    - ``TRAPPED``: all poses of the last ``trapped_window_s`` seconds fit in a box whose
      diagonal is below ``trapped_min_move_m`` (and the run is at least that long);
    - ``TIMEOUT``: ``timeout_s`` seconds since the first pose.

    :param timeout_s: run time limit in seconds (``math.inf`` for none).
    :param trapped_window_s: window of the trapped check.
    :param trapped_min_move_m: the car must move at least this much within the window.
    :param start_radius_m: distance from the start position that counts as back at the start.
    :param min_time_before_start_check_s: seconds before the back-at-start check is armed.
    :param flip_pitch_rad: pitch change from the first pose that counts as flipped.
    :param leave_start_m: the car must first get this far from the start to arm the check.
    :param laps_target: with a number, each return to the start counts a lap and the run ends
        with ``LAPS_DONE`` after that many; with ``None`` the first return ends it with
        ``BACK_AT_START``.
    :raises PilotnetError: on non-positive windows or radii, or ``laps_target < 1``.
    """

    def __init__(self, timeout_s: float, trapped_window_s: float = 10.0,
                 trapped_min_move_m: float = 0.5, start_radius_m: float = 1.0,
                 min_time_before_start_check_s: float = 10.0, flip_pitch_rad: float = 0.2,
                 *, leave_start_m: float = 5.0, laps_target: int | None = None) -> None:
        for name, value in (('timeout_s', timeout_s), ('trapped_window_s', trapped_window_s),
                            ('trapped_min_move_m', trapped_min_move_m),
                            ('start_radius_m', start_radius_m),
                            ('flip_pitch_rad', flip_pitch_rad)):
            if not value > 0:
                raise PilotnetError(f'RunMonitor: {name} must be > 0, got {value!r}')
        if not min_time_before_start_check_s >= 0:
            raise PilotnetError('RunMonitor: min_time_before_start_check_s must be >= 0, '
                                f'got {min_time_before_start_check_s!r}')
        if not leave_start_m >= start_radius_m:
            # Otherwise the car could arm and trigger the check without ever leaving.
            raise PilotnetError(f'RunMonitor: leave_start_m ({leave_start_m!r}) must be >= '
                                f'start_radius_m ({start_radius_m!r})')
        if laps_target is not None and laps_target < 1:
            raise PilotnetError(f'RunMonitor: laps_target must be >= 1, got {laps_target!r}')
        self.timeout_s = float(timeout_s)
        self.trapped_window_s = float(trapped_window_s)
        self.trapped_min_move_m = float(trapped_min_move_m)
        self.start_radius_m = float(start_radius_m)
        self.min_time_before_start_check_s = float(min_time_before_start_check_s)
        self.flip_pitch_rad = float(flip_pitch_rad)
        self.leave_start_m = float(leave_start_m)
        self.laps_target = laps_target
        self._times: deque[tuple[int, float]] = deque()
        self._extremes = (_WindowExtreme(False), _WindowExtreme(True),   # x min, x max
                          _WindowExtreme(False), _WindowExtreme(True))   # y min, y max
        self.reset()

    def reset(self) -> None:
        """Forget the run; the next :meth:`update` starts a new one."""
        self._seq = 0
        self._t0 = self._x0 = self._y0 = self._pitch0 = 0.0
        self._last_t = -math.inf
        self._lap_t0 = 0.0
        self._away = False
        self._laps = 0
        self._reason: EndReason | None = None
        self._times.clear()
        for ext in self._extremes:
            ext.clear()

    @property
    def reason(self) -> EndReason | None:
        """Why the run ended, or ``None`` while it goes on."""
        return self._reason

    @property
    def laps(self) -> int:
        """Return the number of returns to the start counted so far."""
        return self._laps

    def update(self, t: float, x: float, y: float, pitch: float = 0.0,
               off_track: bool = False) -> EndReason | None:
        """
        Take one pose; say whether the run must end.

        :param t: time in seconds, non-decreasing across calls.
        :param x: position in metres.
        :param y: position in metres.
        :param pitch: pitch in radians.
        :param off_track: the caller's verdict that the car left the track.
        :returns: ``None`` while the run goes on, else the reason (sticky).
        :raises TrajectoryError: when time goes backwards.
        """
        if self._reason is not None:
            return self._reason
        if t < self._last_t:
            raise TrajectoryError(f'RunMonitor: time went backwards ({self._last_t!r} -> {t!r})')
        self._last_t = t
        if self._seq == 0:
            self._t0, self._x0, self._y0, self._pitch0 = t, x, y, pitch
            self._lap_t0 = t
        self._push(t, x, y)
        self._reason = self._check(t, x, y, pitch, off_track)
        return self._reason

    def _push(self, t: float, x: float, y: float) -> None:
        seq = self._seq
        self._seq += 1
        self._times.append((seq, t))
        for ext, value in zip(self._extremes, (x, x, y, y), strict=True):
            ext.push(seq, value)
        # Keep one pose at or before the window's start so that the window is fully covered
        # even when poses arrive rarely.
        horizon = t - self.trapped_window_s
        while len(self._times) >= 2 and self._times[1][1] <= horizon:
            self._times.popleft()
        oldest = self._times[0][0]
        for ext in self._extremes:
            ext.expire(oldest)

    def _check(self, t: float, x: float, y: float, pitch: float,
               off_track: bool) -> EndReason | None:
        dp = pitch - self._pitch0
        if abs(math.atan2(math.sin(dp), math.cos(dp))) > self.flip_pitch_rad:
            return EndReason.FLIPPED
        if off_track:
            return EndReason.OFF_TRACK
        d_start = math.hypot(x - self._x0, y - self._y0)
        if d_start > self.leave_start_m:
            self._away = True
        if (self._away and d_start <= self.start_radius_m
                and t - self._lap_t0 >= self.min_time_before_start_check_s):
            if self.laps_target is None:
                return EndReason.BACK_AT_START
            self._laps += 1
            if self._laps >= self.laps_target:
                return EndReason.LAPS_DONE
            self._away = False   # the next lap must leave the start area again
            self._lap_t0 = t
        if t - self._times[0][1] >= self.trapped_window_s:
            x_min, x_max, y_min, y_max = (ext.value for ext in self._extremes)
            if math.hypot(x_max - x_min, y_max - y_min) < self.trapped_min_move_m:
                return EndReason.TRAPPED
        if t - self._t0 >= self.timeout_s:
            return EndReason.TIMEOUT
        return None
