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
The metrics node: follows a run and writes its report.

The report holds Behavior Metrics' figures plus the brain's timing.

Topics:

- ``odom_topic`` (``/odom``): nav_msgs/Odometry, QoS :data:`~.qos.ODOMETRY`; in: the car's poses
  (header stamps).
- ``timing_topic`` (``/inference_node/timing``): std_msgs/Float64MultiArray, QoS
  :data:`~.qos.TIMING`; in: one row per answered frame (fields named by ``layout.dim[0].label``).
- ``inference_status_topic`` (``/inference_node/status``): std_msgs/String (JSON), QoS
  :data:`~.qos.STATUS`; in: the model that drives (``model_loaded``).
- ``sim_status_topic`` (``/sim/status``): std_msgs/String (JSON), QoS :data:`~.qos.STATUS`; in:
  the simulator's ``end`` event ends the run.
- ``~/progress``: std_msgs/String (JSON), QoS :data:`~.qos.STATUS`; out: every
  ``progress_period``: percentage, distance, simulated seconds, frames, inference p50 so far
  (latched: a late subscriber gets the newest).

The report (:mod:`pilotnet_optimized.laps.report`) is written to ``output_dir``/``metrics.json``
and ``metrics.md`` once: when the simulator's ``end`` event has arrived (and the odometry and
timing up to it: at most :data:`SETTLE_S` later), with the simulator's own end fields under
``simulator``; or at SIGINT/SIGTERM with ``end_reason: interrupted`` (Gazebo runs, which have no
end event, end this way). Later episodes of a simulator that restarts are not reported. Both files
are written atomically.

Every odometry message taken is acknowledged on ``/sim/observed`` (``odom_ns``): a lock-step
simulator runs at most a few steps ahead, so no pose is lost however loaded the machine is. Every
:data:`GRAPH_PERIOD_S` the node looks at the ROS graph: the report's ``nodes`` holds each node's
last known state (``present`` or ``left``, first and last seen on the steady clock, seconds since
this node started, and the last event of the simulator and of the inference node), and ``cause``
says what ended the run when a node was lost (the simulator's ``brain_lost`` or
``observer_lost``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
import sys
import time
from typing import Any

from nav_msgs.msg import Odometry
from pilotnet_optimized.laps import load_perfect_lap, PerfectLap
from pilotnet_optimized.laps.report import RunReport, TIMING_FIELDS, write_report
from pilotnet_optimized.nodes import qos, topics
from pilotnet_optimized.nodes.graph import resolve_output_dir
from pilotnet_optimized.nodes.observer import matched_publishers, ObserverAck
from pilotnet_optimized.nodes.params import declare_parameters, param, ParamSpec
from pilotnet_optimized.nodes.spin import drain_node, spin_node
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray, String

__all__ = ['MetricsNode', 'PARAMETERS', 'main']

#: Seconds to wait after the simulator's end event for the odometry and timing it raced with.
SETTLE_S = 1.0
SETTLE_TICK_S = 0.05
GRAPH_PERIOD_S = 1.0

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        'circuit',
        'simple',
        'built-in circuit name, perfect-lap bag or x,y CSV: its centre line is the '
        'perfect lap (as the simulator reads it)',
        read_only=True,
    ),
    ParamSpec(
        'start',
        '',
        "x,y,yaw: where the car starts (as the simulator's); '' = the circuit's own start (a "
        "Behavior Metrics perfect-lap bag's: that world's spawn pose)",
        read_only=True,
    ),
    ParamSpec(
        'perfect_lap',
        '',
        "perfect-lap bag or CSV to judge the run against instead of circuit's centre line "
        "(Behavior Metrics' lap-<circuit>.bag for a Gazebo world); '' = use circuit",
        read_only=True,
    ),
    ParamSpec(
        'output_dir',
        '',
        "folder for metrics.json and metrics.md; {time} becomes the UTC start time; '' = "
        'runs/{time}',
        read_only=True,
    ),
    ParamSpec('odom_topic', topics.ODOMETRY, 'odometry topic (nav_msgs/Odometry)', read_only=True),
    ParamSpec(
        'timing_topic', topics.INFERENCE_TIMING, "the inference node's timing rows", read_only=True
    ),
    ParamSpec(
        'inference_status_topic',
        topics.INFERENCE_STATUS,
        "the inference node's events (model_loaded)",
        read_only=True,
    ),
    ParamSpec(
        'sim_status_topic',
        topics.SIM_STATUS,
        "the simulator's events (end: the run is over; '' = none)",
        read_only=True,
    ),
    ParamSpec(
        'progress_period',
        1.0,
        'seconds between ~/progress messages and log lines (0 = none)',
        float_range=(0.0, 3600.0),
        read_only=True,
    ),
)


def _load_perfect(circuit: str, start: str, perfect_lap: str) -> tuple[PerfectLap, str]:
    if perfect_lap.strip():
        return load_perfect_lap(perfect_lap.strip()), perfect_lap.strip()
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.episodes import perfect_lap_of
    return perfect_lap_of(get_circuit(circuit, start=start)), circuit


class MetricsNode(Node):
    """
    Follows odometry and timing, publishes progress, writes the report once.

    See the module documentation.

    :param kwargs: passed to :class:`rclpy.node.Node` (``context``, ``parameter_overrides``...).
    :raises PilotnetError: for an unknown circuit or an unreadable perfect lap.
    """

    def __init__(self, node_name: str = 'metrics_node', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self, PARAMETERS)
        circuit = str(param(self, 'circuit'))
        perfect, source = _load_perfect(
            circuit, str(param(self, 'start')), str(param(self, 'perfect_lap'))
        )
        self.output_dir = resolve_output_dir(str(param(self, 'output_dir')))
        self.report = RunReport(perfect, circuit=circuit, perfect_source=source)
        self.written: tuple[Path, Path] | None = None
        self._end_event: dict[str, Any] | None = None
        self._end_seen_at = 0.0
        self._fields = TIMING_FIELDS
        self._name = self.get_fully_qualified_name()
        self._started = time.monotonic()
        self._nodes: dict[str, dict[str, Any]] = {}
        self._odom_ns = -1
        self.create_subscription(
            Odometry, str(param(self, 'odom_topic')), self._on_odom, qos.ODOMETRY
        )
        timing_topic = self.resolve_topic_name(str(param(self, 'timing_topic')))
        timing = self.create_subscription(
            Float64MultiArray, timing_topic, self._on_timing, qos.TIMING
        )
        # The timing comes from the brain, not the simulator: a lock-step simulator holds the first
        # frame until this subscription has matched it (else a short run's timing is all lost).
        self._ack = ObserverAck(self, lambda: {timing_topic: matched_publishers(self, timing)})
        self.create_subscription(
            String,
            str(param(self, 'inference_status_topic')),
            self._on_inference_status,
            qos.STATUS,
        )
        sim_status = str(param(self, 'sim_status_topic')).strip()
        if sim_status:
            self.create_subscription(String, sim_status, self._on_sim_status, qos.STATUS)
        self._progress_pub = self.create_publisher(String, topics.PROGRESS, qos.STATUS)
        self._graph_timer = self.create_timer(
            GRAPH_PERIOD_S, self._on_graph, clock=Clock(clock_type=ClockType.STEADY_TIME)
        )
        # Steady clock: simulated time stops with the simulator, and the report must still be
        # written.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._settle_timer = self.create_timer(SETTLE_TICK_S, self._on_settle, clock=steady)
        period = float(param(self, 'progress_period'))
        self._progress_timer = (
            self.create_timer(period, self._on_progress, clock=steady) if period > 0 else None
        )
        self.get_logger().info(f'judging against {source} ({len(perfect)} checkpoints, '
                               f'{perfect.circuit_diameter:.1f} m); report to {self.output_dir}')

    # -- input ------------------------------------------------------------------------------------
    def _on_odom(self, msg: Odometry) -> None:
        q = msg.pose.pose.orientation
        yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
        t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        p = msg.pose.pose.position
        twist = msg.twist.twist
        self.report.add_odometry(t, p.x, p.y, yaw, v=twist.linear.x, w=twist.angular.z)
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if stamp > self._odom_ns:
            self._odom_ns = stamp
        self._ack.send(self._odom_ns)

    def _on_timing(self, msg: Float64MultiArray) -> None:
        if msg.layout.dim and msg.layout.dim[0].label:
            names = tuple(msg.layout.dim[0].label.split(','))
            if names != self._fields:
                self._fields = names
        self.report.add_timing(dict(zip(self._fields, msg.data, strict=False)))

    def _on_inference_status(self, msg: String) -> None:
        event = self._json(msg)
        self._note_event(topics.INFERENCE_NODE, event)
        if event.get('event') == 'model_loaded':
            self.report.set_model(event)

    def _on_sim_status(self, msg: String) -> None:
        event = self._json(msg)
        self._note_event('simulator_node', event)
        if event.get('event') == 'end' and self._end_event is None and not self.report.ended:
            self._end_event = event
            self._end_seen_at = time.monotonic()
            self._on_settle()

    def _json(self, msg: String) -> dict[str, Any]:
        try:
            event = json.loads(msg.data)
        except ValueError:
            self.get_logger().warning(
                f'ignoring a status message that is not JSON: {msg.data[:80]!r}'
            )
            return {}
        return event if isinstance(event, dict) else {}

    # -- the graph --------------------------------------------------------------------------------
    def _on_graph(self) -> None:
        """Note which nodes are in the graph now, and which have left it."""
        now = round(time.monotonic() - self._started, 3)
        try:
            present = {f"{ns.rstrip('/')}/{n}" for n, ns in self.get_node_names_and_namespaces()}
        except Exception:   # noqa: B902 (the context is going down)
            return
        present.discard(self._name)
        for name in present:
            state = self._nodes.setdefault(name, {'state': 'present', 'first_seen_s': now})
            state.update(state='present', last_seen_s=now)
        for name, state in self._nodes.items():
            if name not in present and state['state'] == 'present':
                state.update(state='left', left_s=now)

    def _note_event(self, node: str, event: dict[str, Any]) -> None:
        if event.get('event'):
            name = f'/{node}'
            state = self._nodes.setdefault(name, {'state': 'present', 'first_seen_s': round(
                time.monotonic() - self._started, 3)})
            state['last_event'] = event['event']

    def node_states(self) -> dict[str, dict[str, Any]]:
        """Return each node's last known state (see the module documentation)."""
        self._on_graph()
        return {name: dict(state) for name, state in sorted(self._nodes.items())}

    # -- output -----------------------------------------------------------------------------------
    def _caught_up(self, event: dict[str, Any]) -> bool:
        """
        Check that the odometry and timing of the run's last step are in.

        They race with the end event.
        """
        end_t = event.get('sim_seconds')
        odom_ok = end_t is None or (
            self.report.last_t is not None and self.report.last_t >= float(end_t) - 1e-6
        )
        frames = event.get('frames')
        return odom_ok and (frames is None or self.report.frames >= int(frames))

    def _on_settle(self) -> None:
        event = self._end_event
        if event is None or self.report.ended:
            return
        if self._caught_up(event) or time.monotonic() - self._end_seen_at >= SETTLE_S:
            self.finish(str(event.get('end_reason') or 'ended'), event)

    def _on_progress(self) -> None:
        if self.report.ended:
            return
        progress = self.report.progress()
        self._progress_pub.publish(String(data=json.dumps(progress)))
        if progress['frames'] or self.report.poses:
            pct = progress['percentage_completed']
            p50 = progress['inference_p50_ms']
            self.get_logger().info(
                f'{pct if pct is not None else 0:.1f} % of the lap,'
                f" {progress['completed_distance']:.1f} m in {progress['sim_seconds']:.1f} s,"
                f" {progress['frames']} frames"
                + (f', inference p50 {p50:.2f} ms' if p50 is not None else ''),
                throttle_duration_sec=10.0,
            )

    def finish(self, reason: str, event: dict[str, Any] | None = None) -> None:
        """Compute and write the report, once (later calls do nothing)."""
        if self.written is not None:
            return
        result = dict(self.report.end(reason, event))
        result['nodes'] = self.node_states()
        try:
            self.written = write_report(result, self.output_dir)
        except OSError as err:
            self.get_logger().error(f'cannot write the run report to {self.output_dir}: {err}')
            return
        pct = result.get('percentage_completed')
        self.get_logger().info(
            f'run report ({reason}): {pct if pct is not None else 0:.1f} % of the lap,'
            f" {result['frames']} frames, inference p50 {result.get('inference_p50_ms')} ms ->"
            f' {self.written[0]}'
        )

    def stop(self) -> None:
        """
        Take what has arrived at SIGINT/SIGTERM, then write the report.

        The report is the end event's, if it came.
        """
        drain_node(self, seconds=1.0)
        if self.written is not None:
            return
        if self._end_event is not None:
            self.finish(str(self._end_event.get('end_reason') or 'ended'), self._end_event)
        else:
            self.finish('interrupted')


def main(args: list[str] | None = None) -> int:
    """
    Run the metrics node (``ros2 run pilotnet_optimized metrics_node``) until a signal.

    For example with ``--ros-args -p circuit:=simple -p output_dir:=runs/x``.

    :returns: 0 after a signal, 2 when the node cannot start (one line on stderr says why).
    """
    return spin_node('metrics_node', MetricsNode, args, on_stop=MetricsNode.stop)


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
