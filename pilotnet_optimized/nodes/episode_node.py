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
The episode node: Behavior Metrics' script mode as a ROS 2 node.

For each of ``repetitions`` repetitions: pause physics, reset the world (``reset_service``,
``/reset_world`` by default, or ``/reset_simulation``), unpause, watch the run with Behavior
Metrics' end rules and the circuit's timeout (:class:`~pilotnet_optimized.sim.episodes.Repetition`:
timeout, trapped, flipped, back at the start / laps done; with the built-in simulator also its own
``end`` event, e.g. off track), pause, and write that repetition's report to
``output_dir/repetition-<n>/metrics.json`` and ``metrics.md``. Then the summary over the
repetitions (mean, spread, end reasons) to ``output_dir/summary.json`` and ``summary.md``, and
exit: 0 when every repetition completed its laps, 3 otherwise.

It talks to the simulator only through Gazebo's ROS 2 interface (std_srvs/srv/Empty services of
``gazebo_ros_init``, ``/odom``, ``/clock``), so it drives Gazebo and the built-in simulator the
same way. Topics:

- ``odom_topic`` (``/odom``): nav_msgs/Odometry; in: the car's poses, stamps in simulated time.
- ``timing_topic``, ``inference_status_topic``: in: the inference node's timing rows and model.
- ``sim_status_topic`` (``/sim/status``): in: the built-in simulator's ``end`` event ('' = none).
- ``cmd_topic`` (``/cmd_vel``): out: a zero Twist when something fails and when the node stops.

Bad input, one line on stderr, a zero command, the simulator paused where it can be, exit code 1:
a service missing after ``service_timeout`` seconds, a call unanswered within ``call_timeout``,
no odometry for ``odom_timeout`` seconds of a running repetition. The reports already written stay.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from pilotnet_optimized.laps import load_perfect_lap, PerfectLap
from pilotnet_optimized.laps.report import (summarise_runs, TIMING_FIELDS, write_report,
                                            write_summary)
from pilotnet_optimized.nodes import qos, topics
from pilotnet_optimized.nodes.graph import resolve_output_dir
from pilotnet_optimized.nodes.params import declare_parameters, param, ParamSpec
from pilotnet_optimized.nodes.spin import drain_node, spin_node
from pilotnet_optimized.sim import get_circuit
from pilotnet_optimized.sim.episodes import (COMPLETED_REASONS, episode_timeout_s,
                                             perfect_lap_of, Repetition)
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Empty

__all__ = ['EpisodeNode', 'PARAMETERS', 'main']

TICK_S = 0.05
ODOM_DEPTH = 1000
#: Wall seconds to go on taking odometry and timing after the pause, before the report.
SETTLE_S = 0.5
#: Simulated seconds the car drives on after Behavior Metrics' lap rule fires, before the pause.
#: The rule fires within 1 m of the start, i.e. just before the line (a bag of the run would
#: score 99.7 %, with no lap time); a second more takes the car over it.
FINISH_S = 1.0
#: End reasons of the lap rule (a completed lap, not a failure).
LAP_REASONS = ('laps_done', 'back_at_start')

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec('circuit', 'simple', 'built-in circuit name, perfect-lap bag or x,y CSV: the '
              'perfect lap the runs are judged against, and its timeout', read_only=True),
    ParamSpec('start', '', "x,y,yaw where the car starts (as the simulator's); '' = the "
              "circuit's own", read_only=True),
    ParamSpec('perfect_lap', '', "perfect-lap bag or CSV instead of circuit's centre line",
              read_only=True),
    ParamSpec('repetitions', 3, 'repetitions of the experiment', int_range=(1, 1000),
              read_only=True),
    ParamSpec('laps', 1, 'laps per repetition', int_range=(1, 1000), read_only=True),
    ParamSpec('timeout', 0.0, "simulated seconds a repetition may last; 0 = the circuit's"
              " (Behavior Metrics' world timeout x 1.1 for its perfect laps) x laps",
              float_range=(0.0, 1e6), read_only=True),
    ParamSpec('output_dir', '', "folder for the reports; {time} becomes the UTC start time; '' = "
              'runs/{time}', read_only=True),
    ParamSpec('reset_service', topics.RESET_WORLD, 'std_srvs/srv/Empty service that puts the car'
              ' back at its spawn pose (/reset_world or /reset_simulation)', read_only=True),
    ParamSpec('pause_service', topics.PAUSE_PHYSICS, 'std_srvs/srv/Empty: pause physics',
              read_only=True),
    ParamSpec('unpause_service', topics.UNPAUSE_PHYSICS, 'std_srvs/srv/Empty: resume physics',
              read_only=True),
    ParamSpec('service_timeout', 30.0, 'wall seconds to wait for the services to appear',
              float_range=(0.1, 3600.0), read_only=True),
    ParamSpec('call_timeout', 10.0, 'wall seconds a service call may take',
              float_range=(0.1, 3600.0), read_only=True),
    ParamSpec('brain_timeout', 30.0, 'wall seconds to wait for a brain (a publisher of commands)'
              ' before the first repetition; then start anyway', float_range=(0.0, 3600.0),
              read_only=True),
    ParamSpec('odom_timeout', 60.0, 'wall seconds without odometry in a running repetition '
              'before giving up', float_range=(1.0, 3600.0), read_only=True),
    ParamSpec('odom_topic', topics.ODOMETRY, 'odometry topic (nav_msgs/Odometry)',
              read_only=True),
    ParamSpec('cmd_topic', topics.COMMAND, 'command topic: a zero Twist on failure and at exit',
              read_only=True),
    ParamSpec('timing_topic', topics.INFERENCE_TIMING, "the inference node's timing rows",
              read_only=True),
    ParamSpec('inference_status_topic', topics.INFERENCE_STATUS,
              "the inference node's events (model_loaded)", read_only=True),
    ParamSpec('sim_status_topic', topics.SIM_STATUS, "the built-in simulator's events (its end "
              "event ends a repetition); '' = none (Gazebo)", read_only=True),
)


def _load_perfect(circuit: str, start: str, perfect_lap: str) -> tuple[PerfectLap, str, Any]:
    track = get_circuit(circuit, start=start)
    if perfect_lap.strip():
        return load_perfect_lap(perfect_lap.strip()), perfect_lap.strip(), track
    return perfect_lap_of(track), circuit, track


class EpisodeNode(Node):
    """
    Behavior Metrics' script mode over Gazebo's ROS 2 services; see the module documentation.

    :param kwargs: passed to :class:`rclpy.node.Node` (``context``, ``parameter_overrides``...).
    :raises PilotnetError: for an unknown circuit or an unreadable perfect lap.
    """

    def __init__(self, node_name: str = 'episode_node', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self, PARAMETERS)
        self._circuit = str(param(self, 'circuit'))
        self._perfect, self._source, track = _load_perfect(
            self._circuit, str(param(self, 'start')), str(param(self, 'perfect_lap')))
        self._laps = int(param(self, 'laps'))
        self._repetitions = int(param(self, 'repetitions'))
        timeout = float(param(self, 'timeout'))
        self._timeout_s = timeout if timeout > 0 else episode_timeout_s(track, self._laps)
        self.output_dir = resolve_output_dir(str(param(self, 'output_dir')))
        self._service_timeout = float(param(self, 'service_timeout'))
        self._call_timeout = float(param(self, 'call_timeout'))
        self._brain_timeout = float(param(self, 'brain_timeout'))
        self._odom_timeout = float(param(self, 'odom_timeout'))
        self._cmd_topic = str(param(self, 'cmd_topic'))
        names = {'pause': str(param(self, 'pause_service')),
                 'reset': str(param(self, 'reset_service')),
                 'unpause': str(param(self, 'unpause_service'))}
        self._services_used = {
            key: (name, self.create_client(Empty, name)) for key, name in names.items()
        }
        self._cmd_pub = self.create_publisher(Twist, self._cmd_topic, qos.COMMAND)
        # Every pose counts (a gap breaks the checkpoint walk), and lock-step runs 10x real time.
        deep = QoSProfile(depth=ODOM_DEPTH, reliability=qos.ODOMETRY.reliability,
                          durability=qos.ODOMETRY.durability)
        self.create_subscription(Odometry, str(param(self, 'odom_topic')), self._on_odom, deep)
        self.create_subscription(Float64MultiArray, str(param(self, 'timing_topic')),
                                 self._on_timing, qos.TIMING)
        self.create_subscription(String, str(param(self, 'inference_status_topic')),
                                 self._on_inference_status, qos.STATUS)
        sim_status = str(param(self, 'sim_status_topic')).strip()
        if sim_status:
            self.create_subscription(String, sim_status, self._on_sim_status, qos.STATUS)

        self.reports: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None
        self.exit_code = 0
        self.done = False
        self._fields = TIMING_FIELDS
        self._model: dict[str, Any] | None = None
        self._rep: Repetition | None = None
        self._pending: list[tuple[float, ...]] = []
        self._pending_timing: list[dict[str, float]] = []
        self._sim_end: dict[str, Any] | None = None
        self._finish_at: float | None = None   # sim time the lap rule's run ends (FINISH_S)
        self._sim_episode: Any = None
        self._phase = 'services'
        self._phase_since = time.monotonic()
        self._future: Any = None
        self._last_odom = time.monotonic()
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timer = self.create_timer(TICK_S, self._on_tick, clock=steady)
        self.get_logger().info(
            f'{self._repetitions} repetition(s) of {self._laps} lap(s) on {self._source} '
            f'(timeout {self._timeout_s:.0f} s each), reset by {names["reset"]}; reports to '
            f'{self.output_dir}')

    # -- input ------------------------------------------------------------------------------------
    def _on_odom(self, msg: Odometry) -> None:
        q = msg.pose.pose.orientation
        yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
        pitch = math.asin(max(-1.0, min(1.0, 2.0 * (q.w * q.y - q.z * q.x))))
        p = msg.pose.pose.position
        pose = (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, p.x, p.y,
                yaw, pitch, msg.twist.twist.linear.x,
                msg.twist.twist.angular.z)
        if self._phase in ('reset', 'unpause'):
            # The reset pose (the built-in simulator publishes it) and the first steps, which can
            # come before the unpause call's answer.
            self._pending.append(pose)
        elif self._phase in ('running', 'pause', 'settle') and self._rep is not None:
            self._last_odom = time.monotonic()
            self._add(pose)

    def _add(self, pose: tuple[float, ...]) -> None:
        t, x, y, yaw, pitch, v, w = pose
        reason = self._rep.add_pose(t, x, y, yaw, pitch, v, w)
        if reason is None or self._phase != 'running':
            return
        if reason in LAP_REASONS:
            if self._finish_at is None:
                self._finish_at = t + FINISH_S
            if t < self._finish_at:
                return   # over the line first
        self._end_repetition(reason)

    def _on_timing(self, msg: Float64MultiArray) -> None:
        if msg.layout.dim and msg.layout.dim[0].label:
            self._fields = tuple(msg.layout.dim[0].label.split(','))
        timing = dict(zip(self._fields, msg.data, strict=False))
        if self._phase in ('reset', 'unpause'):
            # The first frames' timings can come before the unpause call's answer, as poses can.
            self._pending_timing.append(timing)
        elif self._rep is not None and self._phase in ('running', 'pause', 'settle'):
            self._rep.report.add_timing(timing)

    def _on_inference_status(self, msg: String) -> None:
        event = _json(msg.data)
        if event.get('event') == 'model_loaded':
            self._model = event
            if self._rep is not None:
                self._rep.report.set_model(event)

    def _on_sim_status(self, msg: String) -> None:
        event = _json(msg.data)
        if event.get('event') == 'start':
            self._sim_episode = event.get('episode')
        elif (event.get('event') == 'end' and self._phase == 'running'
              and event.get('episode') == self._sim_episode):
            self._sim_end = event
            self._end_repetition(str(event.get('end_reason') or 'ended'))

    # -- the experiment ---------------------------------------------------------------------------
    def _enter(self, phase: str) -> None:
        self._phase = phase
        self._phase_since = time.monotonic()

    def _call(self, key: str, next_phase: str) -> None:
        self._future = self._services_used[key][1].call_async(Empty.Request())
        self._enter(next_phase)

    def _on_tick(self) -> None:
        if self.done:
            return
        now = time.monotonic()
        waited = now - self._phase_since
        if self._phase == 'services':
            missing = [name for name, client in self._services_used.values()
                       if not client.service_is_ready()]
            if not missing:
                self._enter('brain')
            elif waited > self._service_timeout:
                self.fail(f"service {', '.join(missing)} not available after "
                          f'{self._service_timeout:g} s (is the simulator running? Gazebo needs '
                          'gazebo_ros_init, loaded by gazebo_ros gzserver.launch.py)')
        elif self._phase == 'brain':
            # Our own zero-command publisher does not count as a brain.
            if self.count_publishers(self._cmd_topic) > 1 or waited > self._brain_timeout:
                if waited > self._brain_timeout:
                    self.get_logger().warning(
                        f'no brain publishing on {self._cmd_topic} after '
                        f'{self._brain_timeout:g} s: starting anyway')
                self._begin_repetition()
        elif self._phase in ('pause_first', 'reset', 'unpause', 'pause'):
            self._check_call(waited)
        elif self._phase == 'running':
            if now - self._last_odom > self._odom_timeout:
                self.fail(f'no odometry for {self._odom_timeout:g} s in repetition '
                          f'{self._rep.index} (is the simulator paused or stopped?)')
        elif self._phase == 'settle' and waited >= SETTLE_S:
            self._write_repetition()

    def _begin_repetition(self) -> None:
        self._sim_end = None
        self._finish_at = None
        self._pending = []
        self._pending_timing = []
        self._rep = None
        self._call('pause', 'pause_first')

    def _check_call(self, waited: float) -> None:
        future = self._future
        key = {'pause_first': 'pause', 'reset': 'reset', 'unpause': 'unpause',
               'pause': 'pause'}[self._phase]
        if future.done():
            if future.exception() is not None:
                self.fail(f'{self._services_used[key][0]} failed: {future.exception()}')
                return
            if self._phase == 'pause_first':
                self._call('reset', 'reset')
            elif self._phase == 'reset':
                self._call('unpause', 'unpause')
            elif self._phase == 'unpause':
                self._start_watching()
            else:
                self._enter('settle')
        elif waited > self._call_timeout:
            self.fail(f'{self._services_used[key][0]} did not answer within '
                      f'{self._call_timeout:g} s'
                      + (' (the reset failed)' if key == 'reset' else ''))

    def _start_watching(self) -> None:
        index = len(self.reports) + 1
        self._rep = Repetition(index, self._perfect, self._timeout_s, self._laps,
                               circuit=self._circuit, perfect_source=self._source)
        if self._model is not None:
            self._rep.report.set_model(self._model)
        self._last_odom = time.monotonic()
        self._enter('running')
        pending, self._pending = self._pending, []
        timings, self._pending_timing = self._pending_timing, []
        for timing in timings:
            self._rep.report.add_timing(timing)
        for pose in pending:
            self._add(pose)
        self.get_logger().info(f'repetition {index} of {self._repetitions} started')

    def _end_repetition(self, reason: str) -> None:
        if self._phase != 'running':
            return
        self._rep.reason = self._rep.reason or reason
        self._call('pause', 'pause')

    def _write_repetition(self) -> None:
        drain_node(self, seconds=0.2)
        rep = self._rep
        result = rep.end(None, self._sim_end)
        folder = self.output_dir / f'repetition-{rep.index}'
        try:
            write_report(result, folder)
        except OSError as err:
            self.fail(f'cannot write the report to {folder}: {err}')
            return
        self.reports.append(result)
        pct = result.get('percentage_completed')
        self.get_logger().info(
            f'repetition {rep.index} of {self._repetitions}: {result["end_reason"]}, '
            f'{pct if pct is not None else 0:.1f} % in {result.get("sim_seconds")} s -> '
            f'{folder / "metrics.json"}')
        self._rep = None
        if len(self.reports) < self._repetitions:
            self._begin_repetition()
        else:
            self._finish()

    def _finish(self) -> None:
        self.summary = summarise_runs(self.reports, COMPLETED_REASONS)
        paths = write_summary(self.summary, self.output_dir)
        pct = self.summary['figures']['percentage_completed']
        self.get_logger().info(
            f"{self.summary['completed']} of {len(self.reports)} repetitions completed; "
            f"percentage completed mean {_fmt(pct['mean'])}, std {_fmt(pct['std'])}; "
            f'summary -> {paths[0]}')
        self.exit_code = 0 if self.summary['completed'] == len(self.reports) else 3
        # The line a starter of the graph (pilotnet run) reads as the end of the run, as the
        # simulator's own 'run ended:' line when it ends a run.
        end = {'event': 'episodes_end', 'repetitions': len(self.reports),
               'completed': self.summary['completed'], 'exit_code': self.exit_code,
               'summary': str(paths[0])}
        self.get_logger().info(
            f"run ended: {'completed' if self.exit_code == 0 else 'not_completed'}; "
            f'{json.dumps(end)}')
        self.publish_zero()
        self.done = True

    def fail(self, message: str) -> None:
        """Stop the experiment: one line on stderr, the car stopped, exit code 1."""
        if self.done:
            return
        print(f'episode_node: error: {message}', file=sys.stderr, flush=True)
        self.publish_zero()
        _, pause = self._services_used['pause']
        if pause.service_is_ready():
            pause.call_async(Empty.Request())   # best effort: no one waits for it
        self.exit_code = 1
        self.done = True

    def publish_zero(self, timeout_s: float = 2.0) -> None:
        """
        Publish a zero command, so that it reaches the car.

        On a busy machine the car (or anyone listening) may not be matched yet when a run fails
        early: wait up to ``timeout_s`` for a subscriber, then until it has the message.
        """
        deadline = time.monotonic() + timeout_s
        while self._cmd_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        self._cmd_pub.publish(Twist())
        self._cmd_pub.wait_for_all_acked(Duration(seconds=max(0.1, deadline - time.monotonic())))

    def stop(self) -> None:
        """
        At SIGINT/SIGTERM: the running repetition's report (``interrupted``), the summary so far.

        Then a zero command.
        """
        self.publish_zero()
        if self.done:
            return
        if self._rep is not None and self._rep.report.poses:
            result = self._rep.end('interrupted', self._sim_end)
            try:
                write_report(result, self.output_dir / f'repetition-{self._rep.index}')
                self.reports.append(result)
            except OSError as err:
                print(f'episode_node: error: cannot write the report: {err}', file=sys.stderr)
        if self.reports:
            self.summary = summarise_runs(self.reports, COMPLETED_REASONS)
            write_summary(self.summary, self.output_dir)


def _json(text: str) -> dict[str, Any]:
    try:
        event = json.loads(text)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


def _fmt(value: Any) -> str:
    return '-' if value is None or not math.isfinite(value) else f'{value:.2f}'


def _end_of_run(node: EpisodeNode) -> int:
    return node.exit_code


def main(args: list[str] | None = None) -> int:
    """
    Run the episode node until its repetitions are done or a signal.

    ``ros2 run pilotnet_optimized episode_node --ros-args -p repetitions:=3 -p circuit:=lap.bag``.

    :returns: 0 when every repetition completed its laps, 3 when some did not, 1 when a service
        was missing or failed, 2 when the node cannot start, 0 after a signal.
    """
    return spin_node('episode_node', EpisodeNode, args, finished=lambda node: node.done,
                     on_finished=_end_of_run, on_stop=EpisodeNode.stop)


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
