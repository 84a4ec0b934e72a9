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
The bridge to Behavior Metrics' ROS 1 (Noetic) Gazebo car, as a ROS 2 node.

rospy and rclpy cannot share a process, so this node starts the ROS 1 half,
:mod:`pilotnet_optimized.nodes.ros1.relay`, in the system Python (``ros1_python``) and exchanges
raw messages with it over a socket pair (length-prefixed frames, :mod:`~.ros1.wire`), converting
between the ROS 1 and CDR wire formats with ``rosbags`` (``ros1_to_cdr`` / ``cdr_to_ros1``).

ROS 1 -> ROS 2: ``/F1ROS/cameraL/image_raw`` -> ``image_topic`` (reliable, so that no frame the
car sent is lost here), ``/F1ROS/odom`` -> ``odom_topic``, ``/clock`` -> ``/clock``. ROS 2 -> ROS
1: ``cmd_topic`` -> ``/F1ROS/cmd_vel``. Services (std_srvs/Empty): ROS 2 ``/reset_world``,
``/reset_simulation``, ``/pause_physics``, ``/unpause_physics`` call ``/gazebo/<same>`` on ROS 1.

Every camera frame is counted in (from ROS 1) and out (published on ROS 2), with ROS 1 header
sequence gaps and stamps going backwards; the counts and the bridge's own latency (relay receive
to ROS 2 publish, p50/p99) are logged at the end and written to ``report`` (JSON) when given.

The ROS 2 services are offered only once the camera's ROS 1 subscription has connected (a car
started paused and unpaused through them loses no frame), on a node of their own
(``<name>_services``) spun on its own thread: a call waiting for ROS 1 does not hold up commands.

Bad input, each one clear line: no ROS 1 master or no rospy (exit 2 at start); no publisher of the
car's camera on the master after ``wait_for_car`` seconds (exit 2); a Gazebo service that is
missing or fails (an error line; the ROS 2 caller still gets its empty answer). Each time, and at
shutdown, the car gets a zero command; the report is written in each case (with ``error`` when
the bridge could not start).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
import struct
import sys
import threading
import time
from typing import Any

from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.nodes import qos, topics
from pilotnet_optimized.nodes.params import declare_parameters, param, ParamSpec
from pilotnet_optimized.nodes.ros1.half import ROS1_PYTHON, start_relay
from pilotnet_optimized.nodes.ros1.wire import ClosedError
from pilotnet_optimized.nodes.spin import spin_node
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.typesys import get_typestore, Stores
from std_srvs.srv import Empty

__all__ = ['Ros1BridgeNode', 'PARAMETERS', 'add_arguments', 'run', 'ROS1_CAMERA',
           'ROS1_ODOMETRY', 'ROS1_COMMAND', 'GAZEBO_SERVICES', 'main']

ROS1_CAMERA = '/F1ROS/cameraL/image_raw'
ROS1_ODOMETRY = '/F1ROS/odom'
ROS1_COMMAND = '/F1ROS/cmd_vel'
#: ROS 2 service -> the Gazebo ROS 1 service it calls.
GAZEBO_SERVICES = {
    f'/{s}': f'/gazebo/{s}'
    for s in ('reset_world', 'reset_simulation', 'pause_physics', 'unpause_physics')
}
#: Reliable, and deep enough for a second of 20 Hz frames: a subscriber that asks for reliable
#: delivery gets every frame; best-effort ones (the inference node) get the newest.
CAMERA_OUT = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=20,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
_ZERO_TWIST = bytes(48)   # geometry_msgs/Twist in ROS 1: six float64 zeros

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec('ros1_python', ROS1_PYTHON, 'the Python that has rospy (ROS 1)',
              read_only=True),
    ParamSpec('wait_for_car', 30.0, "seconds to wait for the car's camera on the ROS 1 master",
              float_range=(0.0, 3600.0), read_only=True),
    ParamSpec('service_timeout', 5.0, 'seconds to wait for a Gazebo ROS 1 service',
              float_range=(0.1, 600.0), read_only=True),
    ParamSpec('image_topic', topics.CAMERA, 'ROS 2 camera topic', read_only=True),
    ParamSpec('odom_topic', topics.ODOMETRY, 'ROS 2 odometry topic', read_only=True),
    ParamSpec('cmd_topic', topics.COMMAND, 'ROS 2 command topic (geometry_msgs/Twist)',
              read_only=True),
    ParamSpec('report', '', "JSON file for the frame counts and latency at exit ('' = none)",
              read_only=True),
)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class Ros1BridgeNode(Node):
    """
    The ROS 2 half of the bridge; see the module documentation.

    :raises PilotnetError: when the ROS 1 half cannot start (no rospy, no master) or the car's
        camera is not on the master after ``wait_for_car`` seconds.
    """

    def __init__(self, node_name: str = 'ros1_bridge_node', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self, PARAMETERS)
        self._ts = get_typestore(Stores.LATEST)
        self._service_timeout = float(param(self, 'service_timeout'))
        self._report = str(param(self, 'report')).strip()
        self.counts = {'frames_in': 0, 'frames_out': 0, 'seq_gaps': 0, 'reordered': 0,
                       'odom': 0, 'clock': 0, 'commands': 0, 'zero_commands': 0,
                       'service_failures': 0}
        self._latency_ms: list[float] = []
        self._last_seq: int | None = None
        self._last_stamp: tuple[int, int] | None = None
        self._results: dict[str, list[Any]] = {}
        self._ids = itertools.count()
        self._closed = False
        try:
            self._relay = start_relay(str(param(self, 'ros1_python')),
                                      f'pilotnet_{self.get_name()}')
        except PilotnetError as err:
            self._write_report({**self.summary(), 'error': str(err)})
            raise
        self._channel = self._relay.channel
        self._master = self._relay.master
        self._channel.send({'op': 'advertise', 'topic': ROS1_COMMAND,
                            'type': 'geometry_msgs/Twist'})
        wait_for_car = float(param(self, 'wait_for_car'))
        deadline = time.monotonic() + wait_for_car
        try:
            self._wait_for_car(wait_for_car)
        except PilotnetError as err:
            self.stop_car()
            self.close(quiet=True, error=str(err))
            raise
        self._out = {
            ROS1_CAMERA: ('sensor_msgs/msg/Image', self.create_publisher(
                _raw_type('sensor_msgs/msg/Image'), str(param(self, 'image_topic')), CAMERA_OUT)),
            ROS1_ODOMETRY: ('nav_msgs/msg/Odometry', self.create_publisher(
                _raw_type('nav_msgs/msg/Odometry'), str(param(self, 'odom_topic')),
                qos.ODOMETRY)),
            topics.CLOCK: ('rosgraph_msgs/msg/Clock', self.create_publisher(
                _raw_type('rosgraph_msgs/msg/Clock'), topics.CLOCK, qos.CLOCK)),
        }
        self.create_subscription(_raw_type('geometry_msgs/msg/Twist'),
                                 str(param(self, 'cmd_topic')), self._on_command, qos.COMMAND,
                                 raw=True)
        for topic, type_name in ((ROS1_CAMERA, 'sensor_msgs/Image'),
                                 (ROS1_ODOMETRY, 'nav_msgs/Odometry'),
                                 (topics.CLOCK, 'rosgraph_msgs/Clock')):
            self._channel.send({'op': 'subscribe', 'topic': topic, 'type': type_name})
        # The services only once the camera's ROS 1 connection is up: a car unpaused through
        # them then loses no frame to a subscription still connecting.
        self._wait_for_camera_connection(deadline)
        self._reader = threading.Thread(target=self._read, name='ros1-reader', daemon=True)
        self._reader.start()
        # Gazebo's services on a node of their own, spun on a thread of their own: a call waits
        # for ROS 1 (seconds, for a missing service) without holding up the commands.
        self._service_node = Node(f'{self.get_name()}_services', context=self.context)
        for ros2, ros1 in GAZEBO_SERVICES.items():
            self._service_node.create_service(
                Empty, ros2, lambda req, res, ros1=ros1: self._call(ros1, res))
        self._service_executor = SingleThreadedExecutor(context=self.context)
        self._service_executor.add_node(self._service_node)
        self._service_thread = threading.Thread(target=self._spin_services,
                                                name='ros1-services', daemon=True)
        self._service_thread.start()
        self.get_logger().info(
            f'bridging ROS 1 {self._master}: {ROS1_CAMERA} -> {param(self, "image_topic")}, '
            f'{ROS1_ODOMETRY} -> {param(self, "odom_topic")}, /clock, '
            f'{param(self, "cmd_topic")} -> {ROS1_COMMAND}, services '
            + ', '.join(GAZEBO_SERVICES))

    # -- the ROS 1 half ---------------------------------------------------------------------------
    def _wait_for_car(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self._channel.send({'op': 'graph'})
            header, _ = self._channel.recv()
            published = header.get('published', {})
            if ROS1_CAMERA in published:
                missing = [s for s in GAZEBO_SERVICES.values()
                           if s not in header.get('services', [])]
                if missing:
                    self.get_logger().warning(
                        f"the ROS 1 master offers no {', '.join(missing)}: calls to them will fail"
                    )
                return
            if time.monotonic() >= deadline:
                raise PilotnetError(
                    f'no publisher of {ROS1_CAMERA} on the ROS 1 master {self._master} after '
                    f"{seconds:g} s: is Behavior Metrics' world (or pilotnet ros1-car) running?")
            time.sleep(0.2)

    def _wait_for_camera_connection(self, deadline: float) -> None:
        """Wait (until ``deadline``) for the camera subscription to connect to the car."""
        while True:
            self._channel.send({'op': 'connections', 'topic': ROS1_CAMERA})
            while True:   # frames of a car that is already running are forwarded meanwhile
                header, payload = self._channel.recv()
                if header.get('op') == 'msg':
                    self._forward(header, payload)
                elif header.get('op') == 'connections':
                    break
            if header.get('n', 0) > 0:
                return
            if time.monotonic() >= deadline:
                self.get_logger().warning(
                    f'{ROS1_CAMERA} is on the master but not connected yet: frames the car sends'
                    ' before it connects do not reach the bridge')
                return
            time.sleep(0.05)

    def _spin_services(self) -> None:
        try:
            while not self._closed and self.context.ok():
                self._service_executor.spin_once(timeout_sec=0.1)
        except Exception:  # the context shut down under it: the node is stopping
            pass

    def _read(self) -> None:
        try:
            while True:
                header, payload = self._channel.recv()
                op = header.get('op')
                if op == 'msg':
                    self._forward(header, payload)
                elif op == 'result':
                    entry = self._results.get(header['id'])
                    if entry is not None:
                        entry[1] = header
                        entry[0].set()
        except (ClosedError, OSError):
            if not self._closed:
                self.get_logger().error('the ROS 1 half of the bridge stopped')
        except Exception as err:  # a message rosbags cannot convert: say so, stop the car
            self.get_logger().error(f'the bridge stopped relaying: {err}')
            self.stop_car()

    def _forward(self, header: dict[str, Any], payload: bytes) -> None:
        topic = header['topic']
        type_name, pub = self._out[topic]
        if topic == ROS1_CAMERA:
            self.counts['frames_in'] += 1
            seq, sec, nsec = struct.unpack_from('<III', payload, 0)
            if self._last_seq is not None and seq > self._last_seq + 1:
                self.counts['seq_gaps'] += seq - self._last_seq - 1
            if self._last_stamp is not None and (sec, nsec) < self._last_stamp:
                self.counts['reordered'] += 1
            self._last_seq, self._last_stamp = seq, (sec, nsec)
        pub.publish(bytes(self._ts.ros1_to_cdr(payload, type_name)))
        if topic == ROS1_CAMERA:
            self.counts['frames_out'] += 1
            self._latency_ms.append((time.time() - float(header['t'])) * 1e3)
        else:
            self.counts['odom' if topic == ROS1_ODOMETRY else 'clock'] += 1

    # -- commands and services --------------------------------------------------------------------
    def _on_command(self, raw: bytes) -> None:
        ros1 = bytes(self._ts.cdr_to_ros1(raw, 'geometry_msgs/msg/Twist'))
        self._send_command(ros1)
        self.counts['commands'] += 1

    def _send_command(self, ros1: bytes) -> None:
        try:
            self._channel.send({'op': 'publish', 'topic': ROS1_COMMAND}, ros1)
        except OSError:
            pass

    def stop_car(self) -> None:
        """Send the car a zero command on ``/F1ROS/cmd_vel``."""
        if not self._closed:
            self._send_command(_ZERO_TWIST)
            self.counts['zero_commands'] += 1

    def _call(self, service: str, response: Any) -> Any:
        call_id = str(next(self._ids))
        entry: list[Any] = [threading.Event(), None]
        self._results[call_id] = entry
        self._channel.send({'op': 'call', 'service': service, 'id': call_id,
                            'timeout': self._service_timeout})
        done = entry[0].wait(self._service_timeout + 5.0)
        self._results.pop(call_id, None)
        result = entry[1] if done else {'ok': False, 'message': 'no answer from the ROS 1 half'}
        if not result['ok']:
            self.counts['service_failures'] += 1
            self.get_logger().error(
                f"{service} failed: {result['message']}; the car gets a zero command")
            self.stop_car()
        return response

    # -- the end ----------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Return the frame counts and the bridge's own camera latency (p50/p99 ms)."""
        return {**self.counts, 'lost': self.counts['frames_in'] - self.counts['frames_out']
                + self.counts['seq_gaps'],
                'latency_p50_ms': _percentile(self._latency_ms, 50),
                'latency_p99_ms': _percentile(self._latency_ms, 99)}

    def close(self, quiet: bool = False, error: str = '') -> None:
        """Stop the ROS 1 half, write the report and (unless ``quiet``) log the counts."""
        if self._closed:
            return
        self._closed = True
        if hasattr(self, '_service_thread'):
            self._service_thread.join(timeout=5.0)
            self._service_executor.shutdown()
            self._service_node.destroy_node()
        self._relay.stop()
        summary = {**self.summary(), **({'error': error} if error else {})}
        self._write_report(summary)
        if not quiet:
            self.get_logger().info(f'bridge stopped: {json.dumps(summary)}')

    def _write_report(self, summary: dict[str, Any]) -> None:
        if self._report:
            Path(self._report).parent.mkdir(parents=True, exist_ok=True)
            Path(self._report).write_text(json.dumps(summary, indent=2) + '\n')


def _raw_type(name: str) -> Any:
    # The ROS 2 message class (rclpy needs one for raw publishers and subscriptions).
    import importlib
    package, _, cls = name.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), cls)


def _on_stop(node: Ros1BridgeNode) -> None:
    node.stop_car()
    time.sleep(0.2)   # the zero command on its way before the ROS 1 half stops
    node.close()


def main(args: list[str] | None = None) -> int:
    """
    Run the bridge until a signal; ``python -m pilotnet_optimized.nodes.ros1_bridge_node``.

    :returns: 0 after a signal, 2 when it cannot start (one line on stderr says why).
    """
    return spin_node('ros1_bridge_node', Ros1BridgeNode, args, on_stop=_on_stop)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pilotnet ros1-bridge`` options (the node's parameters)."""
    parser.add_argument('--wait-for-car', type=float, default=30.0, metavar='S',
                        help="seconds to wait for the car's camera on the ROS 1 master")
    parser.add_argument('--report', default='', metavar='JSON',
                        help='write the frame counts and latency here at exit')
    parser.add_argument('--ros1-python', default='/usr/bin/python3', metavar='PYTHON',
                        help='the Python that has rospy (default: /usr/bin/python3)')


def run(args: argparse.Namespace) -> int:
    """Run the bridge node with the options as its parameters, until Ctrl-C."""
    ros_args = ['--ros-args', '-r', '__node:=ros1_bridge_node',
                '-p', f'wait_for_car:={float(args.wait_for_car)!r}',
                '-p', f'ros1_python:={args.ros1_python}']
    if args.report:
        ros_args += ['-p', f'report:={args.report}']
    return main(ros_args)


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
