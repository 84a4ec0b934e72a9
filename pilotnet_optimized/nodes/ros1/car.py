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
The built-in simulator as Behavior Metrics' ROS 1 (Noetic) Gazebo car: ``pilotnet ros1-car``.

The car on a ROS 1 master exactly as Behavior Metrics' worlds expose it (the ROS 1 node
``/gazebo``): ``/F1ROS/cameraL/image_raw`` (sensor_msgs/Image, rgb8 640x480, one frame per
control period: 20 Hz of simulated time), ``/F1ROS/odom`` (nav_msgs/Odometry, the pose and applied
(v, w), every step) and ``/clock`` (rosgraph_msgs/Clock), all stamped in simulated time with
header sequence numbers from 1; it obeys ``/F1ROS/cmd_vel`` (geometry_msgs/Twist: linear.x = v,
angular.z = w) and serves ``/gazebo/reset_world``, ``/gazebo/reset_simulation``,
``/gazebo/pause_physics`` and ``/gazebo/unpause_physics`` (std_srvs/Empty) with the built-in
simulator node's meaning (reset to the spawn pose, with or without the clock; no steps and no
``/clock`` while paused; ``--paused`` starts paused, as Gazebo's ``paused`` launch argument).

As Gazebo does, it steps in real time (``--real-time-factor`` scales it) with the newest command
(zero once it is older than ``--command-timeout`` wall seconds) and, with ``--laps 0`` (the
default), never ends a run itself: Behavior Metrics or the episode node does. ``--laps N`` applies
Behavior Metrics' end rules after N laps (as the simulator node does), logs the lap figures and
stops stepping until a reset.

No ROS in this process: the physics and camera are the ROS-free core's (:mod:`pilotnet_optimized.
sim`, the same calls as the simulator node), messages are serialised for ROS 1 with ``rosbags``
and published by the bridge's own ROS 1 half (:mod:`.relay`, rospy in the system Python), which
also brings the commands and service calls back. At exit (SIGINT, SIGTERM) it logs, and writes to
``--report``, what it published (camera frames above all: the bridge's report must count as many)
and what it was asked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
import signal
import struct
import sys
import threading
import time
from typing import Any

import numpy as np
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.laps import compute_lap_metrics, EndReason
from pilotnet_optimized.nodes.ros1.half import ROS1_PYTHON, start_relay
from pilotnet_optimized.nodes.ros1.wire import ClosedError
from pilotnet_optimized.sim import Circuit, get_circuit, SimConfig, Simulator
from pilotnet_optimized.sim.episodes import perfect_lap_of, RunResult

__all__ = ['Ros1Car', 'CAMERA', 'ODOMETRY', 'COMMAND', 'CLOCK', 'SERVICES', 'add_arguments',
           'run', 'main']

CAMERA = '/F1ROS/cameraL/image_raw'
ODOMETRY = '/F1ROS/odom'
COMMAND = '/F1ROS/cmd_vel'
CLOCK = '/clock'
SERVICES = tuple(f'/gazebo/{s}' for s in
                 ('reset_world', 'reset_simulation', 'pause_physics', 'unpause_physics'))
CAMERA_FRAME = 'cam_f1_left'
_TWIST = struct.Struct('<6d')   # geometry_msgs/Twist in ROS 1: linear xyz, angular xyz


def _log(line: str) -> None:
    print(f'ros1_car: {line}', file=sys.stderr, flush=True)


class Ros1Car:
    """
    One car on one circuit, published on ROS 1; see the module documentation.

    :param circuit: where it drives (its start pose is the spawn pose).
    :param laps: 0: drive on (Gazebo); N: end the run with Behavior Metrics' rules after N laps.
    :raises PilotnetError: when the ROS 1 half cannot start (no rospy, no master).
    """

    def __init__(self, circuit: Circuit, laps: int = 0, control_period: float = 0.05,
                 real_time_factor: float = 1.0, paused: bool = False,
                 command_timeout: float = 1.0, ros1_python: str = ROS1_PYTHON,
                 name: str = 'gazebo') -> None:
        from rosbags.typesys import get_typestore, Stores
        self.sim = Simulator(circuit, SimConfig(control_period=control_period))
        self._laps = laps
        self._period = control_period
        self._wall_period = control_period / real_time_factor
        self._command_timeout = command_timeout
        self._paused = paused
        self._ended = False
        self._time_offset = 0.0
        self._latest: tuple[float, float, float] | None = None   # v, w, monotonic arrival
        self._lock = threading.Lock()
        self._failed = ''
        self.result: dict[str, Any] | None = None
        self.counts = {'frames': 0, 'odom': 0, 'clock': 0, 'steps': 0, 'commands': 0,
                       'zero_commands': 0, 'resets': 0}
        self.calls: dict[str, int] = dict.fromkeys(SERVICES, 0)
        self._seq = {CAMERA: 0, ODOMETRY: 0, CLOCK: 0}
        self._ts = get_typestore(Stores.ROS1_NOETIC)
        self._t = self._ts.types
        cam = self.sim.config.camera
        self._frame = np.empty((cam.height_px, cam.width, 3), np.uint8)
        self.sim.frame(out=self._frame)   # paints the circuit texture now, not on the first frame
        self._start_run()
        self._relay = start_relay(ros1_python, name)
        self._ch = self._relay.channel
        for topic, kind in ((CAMERA, 'sensor_msgs/Image'), (ODOMETRY, 'nav_msgs/Odometry'),
                            (CLOCK, 'rosgraph_msgs/Clock')):
            self._ch.send({'op': 'advertise', 'topic': topic, 'type': kind})
        self._ch.send({'op': 'subscribe', 'topic': COMMAND, 'type': 'geometry_msgs/Twist'})
        for service in SERVICES:
            self._ch.send({'op': 'serve', 'service': service})
        self._reader = threading.Thread(target=self._read, name='ros1-car-reader', daemon=True)
        self._reader.start()
        _log(f'{circuit.name} ({circuit.length:.0f} m) on the ROS 1 master {self._relay.master} '
             f'as {self._relay.node}: {CAMERA}, {ODOMETRY}, {CLOCK} out, {COMMAND} in, '
             f"{', '.join(SERVICES)}; real time x{real_time_factor:g}"
             + (', paused' if paused else '')
             + (f', {laps} lap(s)' if laps else ', driving on until stopped'))

    # -- the run ----------------------------------------------------------------------------------
    def _start_run(self) -> None:
        self._monitor = self.sim.monitor(max(self._laps, 1))
        self._max_lateral = abs(self.sim.projection.lateral)
        self._started_wall = time.perf_counter()
        self._ended = False
        self._fresh = True

    def run(self, stop: threading.Event) -> int:
        """
        Step in real time until ``stop`` is set or the ROS 1 half stops.

        :returns: 0 when stopped, 1 when the ROS 1 half stopped first.
        """
        next_at = time.monotonic()
        while not stop.is_set() and not self._failed:
            with self._lock:
                if not (self._paused or self._ended):
                    self._step()
            next_at += self._wall_period
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            else:
                next_at = time.monotonic()   # behind: the real-time factor drops, no burst
        if self._failed:
            _log(f'error: {self._failed}')
            return 1
        return 0

    def _command(self) -> tuple[float, float]:
        latest = self._latest
        if latest is None or time.monotonic() - latest[2] > self._command_timeout:
            return 0.0, 0.0
        v, w = latest[0], latest[1]
        return (v, w) if math.isfinite(v) and math.isfinite(w) else (0.0, 0.0)

    def _step(self) -> None:
        if self._fresh:
            # A run's first tick: the spawn pose and its frame, as Gazebo's first update after
            # an unpause (1 ms of physics) publishes them, and as the simulator node starts.
            self._fresh = False
            self._publish_state()
            return
        self.sim.step(*self._command())
        self.counts['steps'] += 1
        self._max_lateral = max(self._max_lateral, abs(self.sim.projection.lateral))
        self._publish_state()
        if self._laps:
            reason = self.sim.check_end(self._monitor, self._laps)
            if reason is not None:
                self._end(reason)

    def _publish_state(self) -> None:
        """Publish ``/clock``, odometry and the camera frame of the pose the car has now."""
        stamp = self._stamp()
        self._publish(CLOCK, self._t['rosgraph_msgs/msg/Clock'](clock=stamp))
        self._publish_odometry(stamp)
        self.sim.frame(out=self._frame)
        t = self._t
        self._publish(CAMERA, t['sensor_msgs/msg/Image'](
            header=self._header(CAMERA, stamp, CAMERA_FRAME), height=self._frame.shape[0],
            width=self._frame.shape[1], encoding='rgb8', is_bigendian=0,
            step=self._frame.shape[1] * 3, data=self._frame.reshape(-1)))

    def _stamp(self) -> Any:
        # Whole nanoseconds from a rounded count, as the simulator node stamps.
        ns = int(round((self._time_offset + self.sim.state.t) * 1e9))
        return self._t['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9)

    def _header(self, topic: str, stamp: Any, frame_id: str) -> Any:
        self._seq[topic] += 1
        return self._t['std_msgs/msg/Header'](seq=self._seq[topic], stamp=stamp,
                                              frame_id=frame_id)

    def _publish_odometry(self, stamp: Any) -> None:
        t, st = self._t, self.sim.state
        vec = t['geometry_msgs/msg/Vector3']
        pose = t['geometry_msgs/msg/Pose'](
            position=t['geometry_msgs/msg/Point'](x=float(st.x), y=float(st.y), z=0.0),
            orientation=t['geometry_msgs/msg/Quaternion'](
                x=0.0, y=0.0, z=math.sin(st.yaw / 2), w=math.cos(st.yaw / 2)))
        twist = t['geometry_msgs/msg/Twist'](linear=vec(x=float(st.v), y=0.0, z=0.0),
                                             angular=vec(x=0.0, y=0.0, z=float(st.w)))
        zeros = np.zeros(36, np.float64)
        self._publish(ODOMETRY, t['nav_msgs/msg/Odometry'](
            header=self._header(ODOMETRY, stamp, 'odom'), child_frame_id='base_link',
            pose=t['geometry_msgs/msg/PoseWithCovariance'](pose=pose, covariance=zeros),
            twist=t['geometry_msgs/msg/TwistWithCovariance'](twist=twist, covariance=zeros)))

    def _publish(self, topic: str, msg: Any) -> None:
        data = bytes(self._ts.serialize_ros1(msg, msg.__msgtype__))
        try:
            self._ch.send({'op': 'publish', 'topic': topic}, data)
        except OSError:
            self._failed = 'the ROS 1 half of the car stopped'
            return
        self.counts[{CAMERA: 'frames', ODOMETRY: 'odom', CLOCK: 'clock'}[topic]] += 1

    def _end(self, reason: EndReason) -> None:
        """Log Behavior Metrics' lap figures and stop stepping (a reset starts a new run)."""
        self._ended = True
        traj = self.sim.trajectory()
        metrics = dataclasses.replace(
            compute_lap_metrics(traj, perfect_lap_of(self.sim.circuit)), end_reason=reason.value)
        result = RunResult(self.sim.circuit.name, self._laps, reason, traj, metrics,
                           time.perf_counter() - self._started_wall, self._max_lateral)
        self.result = result.to_dict()
        _log(f'run ended: {reason}; {json.dumps(self.result, default=str)}')

    # -- commands and Gazebo's services -----------------------------------------------------------
    def _read(self) -> None:
        try:
            while True:
                header, payload = self._ch.recv()
                if header.get('op') == 'msg' and header.get('topic') == COMMAND:
                    lin, _, _, _, _, ang = _TWIST.unpack_from(payload, 0)
                    self._latest = (lin, ang, time.monotonic())
                    self.counts['commands'] += 1
                    if lin == 0.0 and ang == 0.0:
                        self.counts['zero_commands'] += 1
                elif header.get('op') == 'call_in':
                    ok, message = self._serve(header['service'])
                    self._ch.send({'op': 'reply', 'id': header['id'], 'ok': ok,
                                   'message': message})
        except (ClosedError, OSError):
            self._failed = self._failed or 'the ROS 1 half of the car stopped'

    def _serve(self, service: str) -> tuple[bool, str]:
        self.calls[service] = self.calls.get(service, 0) + 1
        with self._lock:
            if service in ('/gazebo/reset_world', '/gazebo/reset_simulation'):
                self.reset(keep_time=service == '/gazebo/reset_world')
            elif service == '/gazebo/pause_physics':
                self.set_paused(True)
            elif service == '/gazebo/unpause_physics':
                self.set_paused(False)
            else:
                return False, f'no such service {service}'
        return True, ''

    def reset(self, keep_time: bool = True) -> None:
        """
        Put the car back at the spawn pose and start its run afresh (the simulator node's rules).

        ``keep_time``: ``/gazebo/reset_world`` (the clock goes on, one control period later);
        otherwise ``/gazebo/reset_simulation`` (the clock back to 0). Paused stays paused.
        """
        self._time_offset = (self._time_offset + self.sim.state.t + self._period
                             if keep_time else 0.0)
        self.sim.reset()
        self._start_run()
        self.counts['resets'] += 1
        _log(f"{'world' if keep_time else 'simulation'} reset: the car at the start pose, "
             f't={self._time_offset:.2f} s' + (' (paused)' if self._paused else ''))

    def set_paused(self, paused: bool) -> None:
        """Pause or resume physics: no steps, frames or ``/clock`` while paused."""
        if paused != self._paused:
            _log('physics paused' if paused else 'physics resumed')
        if not paused and self._fresh:
            self._started_wall = time.perf_counter()   # the run's wall time starts now
        self._paused = paused

    # -- the end ----------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Return what the car published and was asked, and its run's result if it ended."""
        st = self.sim.state
        return {'circuit': self.sim.circuit.name, **self.counts, 'service_calls': self.calls,
                'sim_seconds': round(self._time_offset + st.t, 6), 'laps': self.sim.laps,
                'paused': self._paused, 'ended': self._ended,
                'pose': [float(st.x), float(st.y), float(st.yaw)], 'result': self.result}

    def close(self, report: str = '') -> dict[str, Any]:
        """Stop the ROS 1 half, log the summary and write it to ``report`` when given."""
        self._relay.stop()
        summary = self.summary()
        if report:
            Path(report).parent.mkdir(parents=True, exist_ok=True)
            Path(report).write_text(json.dumps(summary, indent=2, default=str) + '\n')
        _log(f'stopped: {json.dumps(summary, default=str)}')
        return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pilotnet ros1-car`` options."""
    parser.add_argument('--circuit', default='simple',
                        help='built-in name, perfect-lap bag or x,y CSV (default: simple)')
    parser.add_argument('--start', metavar='X,Y,YAW',
                        help="where the car spawns (default: the circuit's start)")
    parser.add_argument('--laps', type=int, default=0, metavar='N',
                        help='0 (default): drive on, as Gazebo; N: end the run after N laps with '
                             "Behavior Metrics' rules and stop stepping until a reset")
    parser.add_argument('--real-time-factor', type=float, default=1.0, metavar='X',
                        help='simulated seconds per wall second (default: 1, as Gazebo)')
    parser.add_argument('--control-period', type=float, default=0.05, metavar='S',
                        help='simulated seconds per step and camera frame (default: 0.05)')
    parser.add_argument('--command-timeout', type=float, default=1.0, metavar='S',
                        help='a command older than this (wall s) counts as zero (default: 1)')
    parser.add_argument('--paused', action='store_true',
                        help='start paused, as Gazebo with paused:=true (/gazebo/unpause_physics'
                             ' resumes)')
    parser.add_argument('--report', default='', metavar='JSON',
                        help='write what it published and was asked here at exit')
    parser.add_argument('--ros1-python', default=ROS1_PYTHON, metavar='PYTHON',
                        help=f'the Python that has rospy (default: {ROS1_PYTHON})')


def run(args: argparse.Namespace) -> int:
    """Run the car until SIGINT or SIGTERM; 1 when its ROS 1 half stops first."""
    if args.laps < 0 or not args.real_time_factor > 0 or not 0.005 <= args.control_period <= 1:
        raise PilotnetError('give --laps >= 0, --real-time-factor > 0 and --control-period in'
                            ' [0.005, 1]')
    circuit = get_circuit(args.circuit, start=args.start)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    car = Ros1Car(circuit, laps=args.laps, control_period=args.control_period,
                  real_time_factor=args.real_time_factor, paused=args.paused,
                  command_timeout=args.command_timeout, ros1_python=args.ros1_python)
    try:
        code = car.run(stop)
    finally:
        car.close(args.report)
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m pilotnet_optimized.nodes.ros1.car``: ``pilotnet ros1-car``."""
    from pilotnet_optimized.cli import main as cli_main
    return cli_main(['ros1-car', *(sys.argv[1:] if argv is None else argv)])


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
