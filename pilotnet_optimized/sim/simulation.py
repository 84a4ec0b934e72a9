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
The simulated world: one car on one circuit, stepped at a fixed control period, with its camera.

ROS-free, so that the expert's laps, the dataset writer, the closed-loop evaluation and the
simulator node all drive the same code. Stepping is deterministic: the same commands give the same
trajectory on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pilotnet_optimized.laps import EndReason, RunMonitor, Trajectory
from pilotnet_optimized.sim.camera import CameraModel, CameraRenderer, CircuitTexture, Lighting
from pilotnet_optimized.sim.car import CarState, PlanarCar
from pilotnet_optimized.sim.circuit import Circuit, Projection

__all__ = ['SimConfig', 'Simulator']


@dataclass(frozen=True)
class SimConfig:
    """Time steps of the simulation."""

    physics_dt: float = 0.01      # s: kinematics step
    # s: one camera frame and one command per period (20 Hz, as in Gazebo)
    control_period: float = 0.05
    camera: CameraModel = field(default_factory=CameraModel)

    @property
    def substeps(self) -> int:
        return max(1, int(round(self.control_period / self.physics_dt)))


class Simulator:
    """
    A car on a circuit: ``step(v, w)`` advances one control period.

    ``frame()`` is what the camera sees.

    :param circuit: where to drive.
    :param config: time steps and camera.
    :param texture: a texture already painted for this circuit (painting takes a second or two).
    """

    def __init__(self, circuit: Circuit, config: SimConfig | None = None,
                 texture: CircuitTexture | None = None) -> None:
        self.circuit = circuit
        self.config = config or SimConfig()
        self._texture = texture
        self._renderer: CameraRenderer | None = None
        self.reset()

    # -- state ------------------------------------------------------------------------------------
    def reset(self, s: float | None = None, lateral: float = 0.0,
              yaw_offset: float = 0.0) -> CarState:
        """
        Put the car ``s`` metres along the circuit, ``lateral`` to the left of the line.

        Turned by ``yaw_offset`` from the line's heading; clears the recorded trajectory. With no
        ``s``, the car is put at the circuit's start pose (:attr:`Circuit.start_pose`, a world's
        spawn pose where it has one), offset by ``lateral`` and ``yaw_offset`` likewise.
        """
        if s is None:
            x0, y0, yaw = self.circuit.start_pose
            x, y = x0 - lateral * np.sin(yaw), y0 + lateral * np.cos(yaw)
        else:
            x, y, yaw = self.circuit.pose_at(s, lateral)
        self.car = PlanarCar(x, y, yaw + yaw_offset, dt=self.config.physics_dt)
        self._proj = self.circuit.project(x, y)
        self.progress_m = 0.0
        self._t: list[float] = [0.0]
        self._xy: list[tuple[float, float]] = [(x, y)]
        self._yaw: list[float] = [self.car.state.yaw]
        return self.car.state

    @property
    def state(self) -> CarState:
        return self.car.state

    @property
    def projection(self) -> Projection:
        """Where the car is relative to the centre line."""
        return self._proj

    @property
    def on_road(self) -> bool:
        return self.circuit.is_on_road(self._proj.lateral)

    @property
    def laps(self) -> float:
        """
        Return the distance made good along the circuit, in laps.

        It is negative when driven backwards.
        """
        return self.progress_m / self.circuit.length

    # -- stepping ---------------------------------------------------------------------------------
    def step(self, v: float, w: float) -> CarState:
        """Apply the command (v m/s, w rad/s) for one control period."""
        for _ in range(self.config.substeps):
            self.car.step(v, w)
        st = self.car.state
        proj = self.circuit.project(st.x, st.y, hint=self._proj.index)
        ds = proj.s - self._proj.s
        half = self.circuit.length / 2
        self.progress_m += (ds + half) % self.circuit.length - half  # across the start line too
        self._proj = proj
        self._t.append(st.t)
        self._xy.append((st.x, st.y))
        self._yaw.append(st.yaw)
        return st

    def trajectory(self) -> Trajectory:
        """
        Return the poses at each control period so far.

        They are as odometry at 20 Hz would record them.
        """
        return Trajectory(t=np.array(self._t), xy=np.array(self._xy), yaw=np.array(self._yaw))

    # -- camera -----------------------------------------------------------------------------------
    @property
    def renderer(self) -> CameraRenderer:
        """Return the camera, built on first use so that runs without images pay nothing for it."""
        if self._renderer is None:
            self._renderer = CameraRenderer(self.circuit, self.config.camera, self._texture)
        return self._renderer

    def frame(self, lighting: Lighting | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Return the camera image (H x W x 3 RGB uint8) at the current pose."""
        st = self.car.state
        return self.renderer.render(st.x, st.y, st.yaw, lighting, out)

    def monitor(self, laps: int) -> RunMonitor:
        """Behavior Metrics' end-of-run rules for a run of ``laps`` laps on this circuit."""
        return RunMonitor(timeout_s=self.circuit.timeout_s * max(laps, 1))

    def check_end(self, monitor: RunMonitor, laps: int) -> EndReason | None:
        """
        Why the run is over, if it is.

        The laps are done, or one of the monitor's rules fired.
        """
        if self.laps >= laps:
            return EndReason.LAPS_DONE
        st = self.car.state
        reason = monitor.update(st.t, st.x, st.y, 0.0, off_track=not self.on_road)
        # Behavior Metrics stops at the start line; a run of several laps passes it and goes on.
        if reason is EndReason.BACK_AT_START and self.laps > 0.5:
            return None
        return reason
