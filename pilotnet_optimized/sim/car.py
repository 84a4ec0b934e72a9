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
Planar car kinematics as Gazebo's ``gazebo_ros_planar_move``.

The commanded (v, w) is the body velocity.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

__all__ = ['CarState', 'PlanarCar', 'V_RANGE', 'W_RANGE']

# The command ranges of Behavior Metrics' Formula-1 datasets (labels are normalised over these).
V_RANGE = (6.5, 24.0)
W_RANGE = (-7.1, 7.1)


@dataclass
class CarState:
    """Pose and the velocity being applied, at simulated time ``t``."""

    x: float
    y: float
    yaw: float
    v: float = 0.0
    w: float = 0.0
    t: float = 0.0


class PlanarCar:
    """
    Integrates (v, w) exactly over each fixed step: the pose moves along a circular arc.

    The planar-move plugin sets the body velocity directly (no mass, no slip), so neither does
    this. Exact arc integration keeps the result independent of the step size for a constant
    command.
    """

    def __init__(self, x: float, y: float, yaw: float, dt: float = 0.01) -> None:
        if dt <= 0:
            raise ValueError('dt must be positive')
        self.dt = dt
        self.state = CarState(x, y, yaw)
        self._steps = 0

    def step(self, v: float, w: float) -> CarState:
        """
        Advance one step with body velocity v and yaw rate w.

        v is in m/s, forward; w is in rad/s, left positive.
        """
        s = self.state
        dt = self.dt
        if not (math.isfinite(v) and math.isfinite(w)):
            raise ValueError(f'non-finite command v={v} w={w}')
        if abs(w) < 1e-9:
            s.x += v * math.cos(s.yaw) * dt
            s.y += v * math.sin(s.yaw) * dt
        else:
            yaw1 = s.yaw + w * dt
            r = v / w
            s.x += r * (math.sin(yaw1) - math.sin(s.yaw))
            s.y -= r * (math.cos(yaw1) - math.cos(s.yaw))
        s.yaw = math.atan2(math.sin(s.yaw + w * dt), math.cos(s.yaw + w * dt))
        s.v, s.w = v, w
        # Time from the step count, not a running sum, so that t stays exact over long runs.
        self._steps += 1
        s.t = self._steps * dt
        return s
