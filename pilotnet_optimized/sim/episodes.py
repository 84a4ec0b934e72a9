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
Closed-loop runs: any driver in the loop with the simulator, until the laps are done or it fails.

Also the ROS-free half of Behavior Metrics' script mode (:class:`Repetition`,
:func:`episode_timeout_s`): each repetition of an experiment watched with Behavior Metrics' end
rules and per-circuit timeouts, and its report; the episode node drives it over ROS.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
from dataclasses import dataclass
from pathlib import Path
import time
from typing import Any, Protocol

import numpy as np
from pilotnet_optimized.backends.timing import percentiles
from pilotnet_optimized.laps import (compute_lap_metrics, EndReason, LapMetrics, PerfectLap,
                                     RunMonitor, RunReport, Trajectory)
from pilotnet_optimized.sim.circuit import Circuit
from pilotnet_optimized.sim.expert import ExpertConfig, ExpertDriver, Perturbation
from pilotnet_optimized.sim.simulation import SimConfig, Simulator

__all__ = [
    'Pilot',
    'PilotRun',
    'RunResult',
    'run_closed_loop',
    'drive_expert',
    'drive_pilot',
    'perfect_lap_of',
    'BM_TIMEOUTS_S',
    'COMPLETED_REASONS',
    'Repetition',
    'episode_timeout_s',
]

#: Behavior Metrics' per-world timeouts (``CIRCUITS_TIMEOUTS``, simulated seconds), by the stem of
#: the world's perfect-lap bag; its script mode allows 1.1 times as much.
BM_TIMEOUTS_S: dict[str, float] = {
    'lap-simple-circuit': 75.0,
    'lap-many-curves': 151.0,
    'lap-montmelo': 122.0,
    'lap-montreal': 248.0,
    'lap-nurburgring': 88.0,
}
BM_TIMEOUT_FACTOR = 1.1
#: End reasons of a repetition that completed its laps.
COMPLETED_REASONS = (EndReason.LAPS_DONE.value, EndReason.BACK_AT_START.value)

# A driver sees the simulator (pose for the expert, camera frames for a model) and returns (v, w).
Driver = Callable[[Simulator], tuple[float, float]]


@dataclass(frozen=True)
class RunResult:
    """One closed-loop run: what happened and Behavior Metrics' figures for it."""

    circuit: str
    laps_asked: int
    end_reason: EndReason
    trajectory: Trajectory
    metrics: LapMetrics
    wall_seconds: float
    max_abs_lateral_m: float

    @property
    def sim_seconds(self) -> float:
        return float(self.trajectory.t[-1])

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            'circuit': self.circuit,
            'laps_asked': self.laps_asked,
            'sim_seconds': round(self.sim_seconds, 3),
            'wall_seconds': round(self.wall_seconds, 3),
            'real_time_factor': round(self.sim_seconds / max(self.wall_seconds, 1e-9), 2),
            'max_abs_lateral_m': round(self.max_abs_lateral_m, 3),
            **self.metrics.to_dict(),
        }


def perfect_lap_of(circuit: Circuit) -> PerfectLap:
    """Return the circuit's centre line as the perfect lap the run is judged against."""
    return PerfectLap.from_xy(circuit.centreline)


def run_closed_loop(sim: Simulator, driver: Driver, laps: int = 1,
                    on_step: Callable[[Simulator], None] | None = None) -> RunResult:
    """
    Drive ``driver`` from the simulator's current state until the run ends.

    :param on_step: called after every control period (progress bars, recorders).
    """
    if laps < 1:
        raise ValueError('laps must be at least 1')
    monitor = sim.monitor(laps)
    start = time.perf_counter()
    max_lateral = abs(sim.projection.lateral)
    while True:
        v, w = driver(sim)
        sim.step(v, w)
        max_lateral = max(max_lateral, abs(sim.projection.lateral))
        if on_step is not None:
            on_step(sim)
        reason = sim.check_end(monitor, laps)
        if reason is not None:
            break
    wall = time.perf_counter() - start
    traj = sim.trajectory()
    metrics = dataclasses.replace(compute_lap_metrics(traj, perfect_lap_of(sim.circuit)),
                                  end_reason=reason.value)
    return RunResult(sim.circuit.name, laps, reason, traj, metrics, wall, max_lateral)


def drive_expert(
    circuit: Circuit,
    laps: int = 1,
    seed: int = 0,
    perturb: bool = False,
    config: ExpertConfig | None = None,
    sim_config: SimConfig | None = None,
) -> RunResult:
    """
    Return the expert's run of ``laps`` laps from the start line.

    :param perturb: add random steering disturbances (the expert then has to recover from them).
    """
    sim = Simulator(circuit, sim_config)
    expert = ExpertDriver(circuit, config)
    disturb = Perturbation(np.random.default_rng(seed)) if perturb else None

    def driver(s: Simulator) -> tuple[float, float]:
        v, w = expert.command(s.state)
        if disturb is not None:
            w += disturb.offset(s.state.t)
        return v, w

    return run_closed_loop(sim, driver, laps)


class Pilot(Protocol):
    """Anything that turns a camera frame into a command: every backend is one."""

    def predict(self, image_rgb: np.ndarray) -> tuple[float, float]: ...


@dataclass(frozen=True)
class PilotRun:
    """A learned driver's closed-loop run and the time its model took per frame."""

    result: RunResult
    inference_ms: np.ndarray

    def to_dict(self) -> dict:
        """
        Return the run's figures.

        Then the model's time per frame (``inference_mean_ms``, ``inference_p50_ms``, ..., to 4
        decimals) and the frame count; no timing keys for a run without frames.
        """
        ms = self.inference_ms
        if not len(ms):
            return self.result.to_dict()
        return {
            **self.result.to_dict(),
            **percentiles(ms, prefix='inference_', mean=True, digits=4),
            'frames': int(len(ms)),
        }


def drive_pilot(circuit: Circuit, pilot: Pilot, laps: int = 1, sim_config: SimConfig | None = None,
                on_step: Callable[[Simulator], None] | None = None) -> PilotRun:
    """
    Return a learned driver in the loop, in lock-step.

    Each camera frame waits for the command that answers it, so the result does not depend on how
    fast the machine is.
    """
    sim = Simulator(circuit, sim_config)
    frame = np.empty((sim.config.camera.height_px, sim.config.camera.width, 3), np.uint8)
    times: list[float] = []

    def driver(s: Simulator) -> tuple[float, float]:
        s.frame(out=frame)
        t = time.perf_counter()
        v, w = pilot.predict(frame)
        times.append((time.perf_counter() - t) * 1e3)
        return v, w

    result = run_closed_loop(sim, driver, laps, on_step)
    return PilotRun(result, np.array(times))


def episode_timeout_s(circuit: Circuit, laps: int = 1) -> float:
    """
    Return the simulated seconds one repetition of ``laps`` laps may last.

    Behavior Metrics' timeout of the world (x 1.1, as its script mode) for its perfect-lap bags,
    else the circuit's own :attr:`Circuit.timeout_s`; times the laps.
    """
    stem = Path(circuit.source).stem if circuit.source else ''
    base = BM_TIMEOUTS_S.get(stem)
    seconds = base * BM_TIMEOUT_FACTOR if base is not None else circuit.timeout_s
    return seconds * max(int(laps), 1)


class Repetition:
    """
    One repetition of an experiment, watched as Behavior Metrics' script mode watches it.

    Feed it the car's odometry (:meth:`add_pose`): its :class:`~pilotnet_optimized.laps.RunMonitor`
    applies the end rules (timeout, trapped, flipped, back at the start, counted as laps) and its
    :class:`~pilotnet_optimized.laps.RunReport` collects what the report needs; the brain's timing
    rows go to :attr:`report` directly. :meth:`end` returns the report.

    :param index: 1-based number of the repetition.
    :param perfect: the perfect lap the run is judged against.
    :param timeout_s: simulated seconds before the run ends with ``timeout``.
    :param laps: laps to drive: the run ends with ``laps_done`` after that many returns to the
        start.
    """

    def __init__(self, index: int, perfect: PerfectLap, timeout_s: float, laps: int = 1,
                 circuit: str = '', perfect_source: str = '') -> None:
        self.index = index
        self.report = RunReport(perfect, circuit=circuit, perfect_source=perfect_source)
        self.monitor = RunMonitor(timeout_s=timeout_s, laps_target=max(int(laps), 1))
        self.timeout_s = timeout_s
        self.reason: str | None = None

    def add_pose(self, t: float, x: float, y: float, yaw: float | None = None,
                 pitch: float = 0.0, v: float | None = None,
                 w: float | None = None) -> str | None:
        """
        Take one odometry pose (``t`` in simulated seconds); return the end reason, once any.

        A pose older than the newest one is dropped (and cannot end the run). Poses after the end
        reason (until the simulator has paused) are still recorded, as Behavior Metrics' bag
        records them, but decide nothing.
        """
        if not self.report.add_odometry(t, x, y, yaw, v=v, w=w) or self.reason is not None:
            return self.reason
        reason = self.monitor.update(t, x, y, pitch)
        if reason is not None:
            self.reason = reason.value
        return self.reason

    def end(self, reason: str | None = None,
            simulator: dict[str, Any] | None = None) -> dict[str, Any]:
        """
        Close the repetition and return its report (once; later calls return the same).

        :param reason: why it ended, when not by the end rules (the simulator's ``end_reason``,
            ``interrupted``); default: the rule that fired, else ``ended``.
        """
        self.reason = self.reason or reason or 'ended'
        result = self.report.end(self.reason, simulator)
        result['repetition'] = self.index
        result['timeout_s'] = round(self.timeout_s, 3)
        return result
