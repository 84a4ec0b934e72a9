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
The expert driver: pure pursuit of the centre line at a speed planned from its curvature.

It drives every circuit at Behavior Metrics' command ranges (v in 6.5..24 m/s, w in -7.1..7.1
rad/s), and can be disturbed by :class:`Perturbation` so that a learned driver also sees how to
come back from off-centre positions: the disturbance moves the car, the label stays the expert's
own command.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np
from pilotnet_optimized.sim.car import CarState, V_RANGE, W_RANGE
from pilotnet_optimized.sim.circuit import Circuit

__all__ = ['ExpertConfig', 'ExpertDriver', 'Perturbation']


@dataclass(frozen=True)
class ExpertConfig:
    """Tuning of the expert."""

    lateral_accel: float = 12.0     # m/s^2 allowed in bends: sets the bend speeds
    accel: float = 6.0              # m/s^2 speed-up along the profile
    decel: float = 9.0              # m/s^2 braking before bends
    lookahead_time: float = 0.35    # s: the pursuit point is this far ahead at the current speed
    lookahead_min: float = 3.0      # m
    lookahead_max: float = 10.0     # m
    v_range: tuple[float, float] = V_RANGE
    w_range: tuple[float, float] = W_RANGE


class ExpertDriver:
    """Computes the expert's (v, w) for a car state on one circuit."""

    def __init__(self, circuit: Circuit, config: ExpertConfig | None = None) -> None:
        self.circuit = circuit
        self.config = config or ExpertConfig()
        self.speed_profile = self._plan_speed()
        self._hint: int | None = None

    def reset(self) -> None:
        """Forget the last position (after the car was moved)."""
        self._hint = None

    def command(self, state: CarState) -> tuple[float, float]:
        """(v, w) for the car in ``state``."""
        cfg = self.config
        c = self.circuit
        proj = c.project(state.x, state.y, hint=self._hint)
        self._hint = proj.index
        v = float(self.speed_profile[proj.index])
        lookahead = min(max(cfg.lookahead_time * v, cfg.lookahead_min), cfg.lookahead_max)
        tx, ty, _ = c.pose_at(proj.s + lookahead)
        dx, dy = tx - state.x, ty - state.y
        # Target in the car frame; pure pursuit's arc through it has curvature 2 y / d^2.
        cos_y, sin_y = math.cos(state.yaw), math.sin(state.yaw)
        fwd = cos_y * dx + sin_y * dy
        left = -sin_y * dx + cos_y * dy
        dist2 = max(fwd * fwd + left * left, 1e-6)
        w = v * 2.0 * left / dist2
        return v, float(np.clip(w, *cfg.w_range))

    def _plan_speed(self) -> np.ndarray:
        """
        Speed at each centre-line sample.

        The bend limit, then braking and acceleration limits.
        """
        cfg = self.config
        c = self.circuit
        kappa = np.abs(c.curvature)
        v = np.sqrt(cfg.lateral_accel / np.maximum(kappa, 1e-6))
        v = np.clip(v, *cfg.v_range)
        ds = c.spacing
        n = len(v)
        # Two passes round the loop so that a bend just after the start also brakes the end of the
        # lap.
        for _ in range(2):
            for i in range(2 * n - 1, -1, -1):  # braking, walking backwards
                j, k = i % n, (i + 1) % n
                v[j] = min(v[j], math.sqrt(v[k] ** 2 + 2 * cfg.decel * ds))
            for i in range(2 * n):  # acceleration, walking forwards
                j, k = i % n, (i - 1) % n
                v[j] = min(v[j], math.sqrt(v[k] ** 2 + 2 * cfg.accel * ds))
        return np.clip(v, *cfg.v_range)


class Perturbation:
    """
    Random steering disturbances: now and then, a yaw-rate offset for a moment.

    :param rate_hz: mean number of disturbances per second.
    :param w_offset: (min, max) magnitude of the added yaw rate (rad/s); the sign is random.
    :param duration: (min, max) seconds a disturbance lasts.
    """

    def __init__(self, rng: np.random.Generator, rate_hz: float = 0.25,
                 w_offset: tuple[float, float] = (0.2, 0.8),
                 duration: tuple[float, float] = (0.2, 0.6)) -> None:
        self.rng = rng
        self.rate_hz = rate_hz
        self.w_offset = w_offset
        self.duration = duration
        self.reset()

    def reset(self, t: float = 0.0) -> None:
        """
        Start afresh at time ``t``.

        Call it whenever the simulation clock restarts (a new episode), or a disturbance scheduled
        on the old clock would last the whole new episode.
        """
        self._until = -math.inf
        self._offset = 0.0
        self._next = (
            t + float(self.rng.exponential(1.0 / self.rate_hz)) if self.rate_hz > 0 else math.inf
        )

    def offset(self, t: float) -> float:
        """Return the yaw-rate offset, in rad/s, to add to the command at time ``t``."""
        if t >= self._next:
            self._offset = float(self.rng.uniform(*self.w_offset) * self.rng.choice([-1.0, 1.0]))
            self._until = t + float(self.rng.uniform(*self.duration))
            self._next = self._until + float(self.rng.exponential(1.0 / self.rate_hz))
        return self._offset if t < self._until else 0.0
