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
The built-in simulator as a ROS 2 node, on the topics of Behavior Metrics' Formula-1 car.

Topics:

- ``image_topic`` (``/cam_f1_left/image_raw``): sensor_msgs/Image, QoS :data:`~.qos.CAMERA`;
  out: rgb8 640x480, stamped in simulated time.
- ``odom_topic`` (``/odom``): nav_msgs/Odometry, QoS :data:`~.qos.ODOMETRY`; out: pose and
  applied (v, w), every step.
- ``/clock``: rosgraph_msgs/Clock, QoS :data:`~.qos.CLOCK`; out: simulated time, every step.
- ``cmd_topic`` (``/cmd_vel``): geometry_msgs/Twist, QoS :data:`~.qos.COMMAND`; in: linear.x = v,
  angular.z = w.
- ``stamped_cmd_topic`` (``/cmd_vel_stamped``): geometry_msgs/TwistStamped, QoS
  :data:`~.qos.COMMAND`; in: answers to frames, stamped with the frame's stamp (lock-step
  matching).
- ``status_topic`` (``/sim/status``): std_msgs/String (JSON), QoS :data:`~.qos.STATUS`; out:
  ``ready``, ``start``, ``end`` events; ``end`` carries the end reason and Behavior Metrics' lap
  figures.

Services (Gazebo's ``gazebo_ros_init`` names and meaning on ROS 2, std_srvs/srv/Empty), so that
the episode node drives both simulators the same way:

- ``/reset_world``: the car back to the circuit's spawn pose, its run (lap count, end rules,
  trajectory) started afresh; the clock goes on forward. A run that had ended starts again.
- ``/reset_simulation``: the same, with the clock set back to 0.
- ``/pause_physics``, ``/unpause_physics``: no steps, no frames, no ``/clock`` while paused
  (``paused:=true`` starts paused, as Gazebo's ``paused`` launch argument).

Two modes:

- lock-step (``realtime:=false``, the default): publish a frame, wait for the command that answers
  it, step one control period with it, publish the next frame. Results do not depend on how fast or
  loaded the machine is. An answer is recognised by its stamp on ``stamped_cmd_topic``
  (``match:=stamp``; a lost frame is sent again every 0.2 s) or, for brains that only publish
  ``Twist``, as the next ``Twist`` after the frame (``match:=order``: a stray command, such as a
  watchdog's zero, can then be taken for an answer). ``match:=auto`` uses stamps when
  ``stamped_cmd_topic`` has a publisher at start. No answer within ``command_timeout`` (for the
  first frame of a run: ``start_timeout``): step with a zero command.
- real time (``realtime:=true``): a steady-clock timer steps every control period with the newest
  command (zero when it is older than ``command_timeout``), as Gazebo does.

Nothing is lost by the observers in lock-step: each (the metrics and recorder nodes) acknowledges
on ``/sim/observed`` the newest odometry (and, recording the camera, frame) it has taken; the
simulator steps at most :data:`ODOM_WINDOW` steps ahead of the slowest one (within every queue's
depth) and sends the next frame only once each camera-recording observer has the last one (a frame
it lost is sent again); the first frame also waits until each observer's subscriptions to the
brain's topics (its timing) have matched the publishers seen there (:mod:`.observer`; waived with
a warning after ``observer_timeout``). An observer silent for ``observer_timeout`` while the run
waits for it, or gone from the graph, ends the run: ``observer_lost``. A brain that has gone (its
node left the graph, or no command for ``brain_timeout``) ends it too: ``brain_lost``. The
``end`` event names the nodes (``brain``, ``observers``, ``observers_lost``), the counts
published per topic (``published``) and the last command applied (``last_command``; zero after a
lost brain: its car is stopped).

Either way the run starts when the brain is there (a node that subscribes to the camera and
publishes commands) and, with ``wait_for_observers`` > 0, that many observers (the metrics and
recorder nodes of the graph) are subscribed to both odometry and status, so that they see the run
from its first step; or, failing that, after ``start_timeout`` (with a warning). It ends as
Behavior Metrics' simulator ends it (laps done, timeout, trapped, back at start, off track), with
an ``end`` event, and then ``on_end``: ``stop`` (stop publishing frames), ``exit`` (exit 0 when the
laps were done, 3 otherwise) or ``restart`` (put the car back on the start line and drive on; the
clock keeps going forward).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from typing import Any

from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry
import numpy as np
from pilotnet_optimized.bags.images import ImageSerializer
from pilotnet_optimized.laps import compute_lap_metrics, EndReason
from pilotnet_optimized.nodes import qos, topics
from pilotnet_optimized.nodes.observer import parse_ack
from pilotnet_optimized.nodes.params import declare_parameters, param, ParamSpec
from pilotnet_optimized.nodes.spin import spin_node
from pilotnet_optimized.sim import get_circuit, Lighting, SimConfig, Simulator
from pilotnet_optimized.sim.episodes import perfect_lap_of, RunResult
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Empty

__all__ = ['SimulatorNode', 'PARAMETERS', 'main']

LOCKSTEP_TICK_S = 0.01   # how often lock-step checks for lost frames and timeouts
# a best-effort frame with no answer after this long is sent again (match:=stamp only)
RESEND_AFTER_S = 0.2
BRAIN_SETTLE_S = 0.5     # the brain must be in the graph this long before the first frame goes out
#: Lock-step: steps the simulator may run ahead of its slowest observer's odometry (every odometry
#: queue holds 10).
ODOM_WINDOW = 4
GRAPH_CHECK_S = 0.5      # how often a waiting simulator looks whether a node left the graph
MATCH_CHOICES = ('auto', 'stamp', 'order')
ON_END_CHOICES = ('stop', 'exit', 'restart')
_FAULTS = (EndReason.BRAIN_LOST, EndReason.OBSERVER_LOST, EndReason.INTERRUPTED)

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        'circuit', 'simple', 'built-in circuit name, perfect-lap bag or x,y CSV', read_only=True
    ),
    ParamSpec(
        'start',
        '',
        "x,y,yaw: where the car starts; '' = the circuit's own start (a Behavior Metrics "
        "perfect-lap bag's: that world's spawn pose)",
        read_only=True,
    ),
    ParamSpec(
        'laps',
        1,
        'laps to drive; the run ends when they are done',
        int_range=(1, 1000),
        read_only=True,
    ),
    ParamSpec(
        'realtime',
        False,
        'step on a steady timer every control period (true) or in lock-step with the '
        'brain (false)',
        read_only=True,
    ),
    ParamSpec(
        'control_period',
        0.05,
        'seconds of simulated time per step: one frame and one command',
        float_range=(0.005, 1.0),
        read_only=True,
    ),
    ParamSpec('seed', 0, 'seed of the random lighting', int_range=(0, 2**31 - 1), read_only=True),
    ParamSpec(
        'lighting',
        0.0,
        'strength of a random lighting, tint and fog for the run (0 = neutral)',
        float_range=(0.0, 1.0),
        read_only=True,
    ),
    ParamSpec(
        'command_timeout',
        1.0,
        'lock-step: wall seconds to wait for the answer to a frame before stepping '
        'with a zero command; real time: a command older than this counts as zero',
        float_range=(0.01, 600.0),
    ),
    ParamSpec(
        'start_timeout',
        30.0,
        'wall seconds to wait for the brain (a node that subscribes to the camera '
        'and publishes commands) and the observers before starting anyway',
        float_range=(0.0, 3600.0),
        read_only=True,
    ),
    ParamSpec(
        'wait_for_observers',
        0,
        'the run starts only once the odometry and status topics each have at least this many'
        ' matched subscribers (observers such as the metrics and recorder nodes, which must see'
        ' the run from its start), besides the brain; bounded by start_timeout',
        int_range=(0, 100),
        read_only=True,
    ),
    ParamSpec(
        'brain_timeout',
        5.0,
        'wall seconds without a command from a brain that was there before the run ends with '
        'brain_lost (also when its node leaves the graph); 0 = never',
        float_range=(0.0, 3600.0),
        read_only=True,
    ),
    ParamSpec(
        'observer_timeout',
        10.0,
        "lock-step: wall seconds the run waits for an observer's acknowledgement before it ends "
        'with observer_lost (at the start: before starting without it)',
        float_range=(0.1, 3600.0),
        read_only=True,
    ),
    ParamSpec(
        'match',
        'auto',
        'lock-step: how an answer is matched to its frame',
        choices=MATCH_CHOICES,
        read_only=True,
    ),
    ParamSpec(
        'on_end', 'stop', 'what happens when the run ends', choices=ON_END_CHOICES, read_only=True
    ),
    ParamSpec(
        'paused',
        False,
        'start with physics paused, as Gazebo does with paused:=true (/unpause_physics resumes)',
        read_only=True,
    ),
    ParamSpec('image_topic', topics.CAMERA, 'camera topic', read_only=True),
    ParamSpec('odom_topic', topics.ODOMETRY, 'odometry topic', read_only=True),
    ParamSpec('cmd_topic', topics.COMMAND, 'command topic (geometry_msgs/Twist)', read_only=True),
    ParamSpec(
        'stamped_cmd_topic',
        topics.STAMPED_COMMAND,
        "stamped answers (geometry_msgs/TwistStamped; '' = none)",
        read_only=True,
    ),
    ParamSpec(
        'status_topic',
        topics.SIM_STATUS,
        'run events as JSON (std_msgs/String, latched)',
        read_only=True,
    ),
)


def _stamp(seconds: float) -> TimeMsg:
    # Whole nanoseconds from a rounded count, so that the stamp of step k is exactly k * period on
    # every machine.
    ns = int(round(seconds * 1e9))
    return TimeMsg(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _full_name(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}"


def _endpoint_owner(info: Any) -> tuple[Any, ...]:
    """
    Return the node a graph endpoint belongs to.

    Its namespace and name, or, while its node's name has not been discovered yet, its participant
    (the first 12 bytes of a DDS GUID).
    """
    if info.node_name and not info.node_name.startswith('_'):   # rmw's '_NODE_NAME_UNKNOWN_'
        return ('node', info.node_namespace, info.node_name)
    return ('participant', bytes(info.endpoint_gid[:12]))


class SimulatorNode(Node):
    """
    The simulator with its camera, odometry and clock; see the module documentation.

    :param kwargs: passed to :class:`rclpy.node.Node` (``context``, ``parameter_overrides``...).
    :raises PilotnetError: for an unknown circuit or a parameter value outside its choices.
    """

    def __init__(self, node_name: str = 'simulator_node', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self, PARAMETERS, on_set=self._on_set_parameters)
        circuit = get_circuit(str(param(self, 'circuit')), start=str(param(self, 'start')))
        self._sim = Simulator(
            circuit, SimConfig(control_period=float(param(self, 'control_period')))
        )
        self._laps = int(param(self, 'laps'))
        self._realtime = bool(param(self, 'realtime'))
        self._on_end = str(param(self, 'on_end'))
        self._command_timeout = float(param(self, 'command_timeout'))
        self._start_timeout = float(param(self, 'start_timeout'))
        self._wait_for_observers = int(param(self, 'wait_for_observers'))
        self._brain_timeout = float(param(self, 'brain_timeout'))
        self._observer_timeout = float(param(self, 'observer_timeout'))
        # node -> {'odom_ns', 'frame_ns' (None: not recording the camera), 'at' (monotonic)}
        self._observers: dict[str, dict[str, Any]] = {}
        self._observers_lost: dict[str, str] = {}
        self._pending_frame = False      # lock-step: stepped; the next frame waits for observers
        self._gate_since = 0.0
        self._inputs_waived = False      # lock-step: first frame sent without waiting for inputs
        self._graph_checked = 0.0
        self._brain_seen = False
        self._brain_nodes: list[str] = []
        self._last_command_at = time.monotonic()
        self._last_applied = (0.0, 0.0)
        self._state_ns = 0               # stamp of the newest odometry published
        self._frame_ns = -1              # stamp of the newest frame published
        self._published: dict[str, int] = {}
        strength = float(param(self, 'lighting'))
        rng = np.random.default_rng(int(param(self, 'seed')))
        self._lighting = Lighting.random(rng, strength) if strength > 0 else None
        cam = self._sim.config.camera
        self._frame = np.empty((cam.height_px, cam.width, 3), np.uint8)
        # paints the circuit texture now, not on the first frame
        self._sim.frame(self._lighting, out=self._frame)
        # Frames go out as CDR packed here (0.02 ms for 640x480) rather than through rclpy's
        # message conversion (1.1 ms): like Gazebo's C++ camera, the simulator then adds next to
        # nothing to the image latency.
        self._serializer = ImageSerializer(frame_id=topics.CAMERA_FRAME)
        # the last frame sent, as published (resent when lost)
        self._image = b''
        self._image_stamp: tuple[int, int] = (0, 0)

        self._image_topic = str(param(self, 'image_topic'))
        self._cmd_topic = str(param(self, 'cmd_topic'))
        self._stamped_topic = str(param(self, 'stamped_cmd_topic')).strip()
        self._match = str(param(self, 'match'))
        self._image_pub = self.create_publisher(Image, self._image_topic, qos.CAMERA)
        self._odom_pub = self.create_publisher(
            Odometry, str(param(self, 'odom_topic')), qos.ODOMETRY
        )
        self._clock_pub = self.create_publisher(ClockMsg, topics.CLOCK, qos.CLOCK)
        self._status_pub = self.create_publisher(
            String, str(param(self, 'status_topic')), qos.STATUS
        )
        self.create_subscription(Twist, self._cmd_topic, self._on_twist, qos.LATEST)
        if self._stamped_topic:
            self.create_subscription(
                TwistStamped, self._stamped_topic, self._on_stamped, qos.COMMAND
            )

        self.create_subscription(String, topics.OBSERVED, self._on_observed, qos.ACK)
        self._state = 'waiting'  # waiting (for the brain) -> running -> ended
        self._created = time.monotonic()
        self._ready_since: float | None = None   # brain and observers present since (monotonic)
        self._latest: tuple[float, float, float] | None = None   # newest (v, w, monotonic arrival)
        # lock-step: stamp of the unanswered frame
        self._awaiting: tuple[int, int] | None = None
        self._first_sent = self._last_sent = 0.0
        self._first_frame_timeout = self._command_timeout
        self._time_offset = 0.0          # simulated seconds of earlier episodes (on_end:=restart)
        self._episode = 0
        self._paused = bool(param(self, 'paused'))
        self._reset_run_counters()
        self.exit_code = 0
        # Steady clock: this node is the source of simulated time, so nothing it does may wait on
        # it.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        period = float(param(self, 'control_period')) if self._realtime else LOCKSTEP_TICK_S
        self._tick = self.create_timer(period, self._on_tick, clock=steady)
        for name, handler in ((topics.RESET_WORLD, self._on_reset_world),
                              (topics.RESET_SIMULATION, self._on_reset_simulation),
                              (topics.PAUSE_PHYSICS, self._on_pause),
                              (topics.UNPAUSE_PHYSICS, self._on_unpause)):
            self.create_service(Empty, name, handler)
        self._publish_status({'event': 'ready', **self._describe()})
        self.get_logger().info(
            f'{circuit.name} ({circuit.length:.0f} m), {self._laps} lap(s), '
            f"{'real time' if self._realtime else 'lock-step'}: waiting for a brain on "
            f'{self._image_topic} -> {self._cmd_topic}'
            + (f' and {self._wait_for_observers} observer(s)' if self._wait_for_observers else '')
        )

    # -- state ------------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """
        Return whether the run has ended and ``on_end`` is ``exit``.

        :func:`main` then returns :attr:`exit_code`.
        """
        return self._state == 'ended' and self._on_end == 'exit'

    @property
    def simulator(self) -> Simulator:
        return self._sim

    def _describe(self) -> dict[str, Any]:
        return {'circuit': self._sim.circuit.name, 'laps': self._laps, 'episode': self._episode,
                'mode': 'realtime' if self._realtime else 'lockstep',
                'match': None if self._realtime else self._match, 'on_end': self._on_end}

    def _reset_run_counters(self) -> None:
        self._frames = 0
        self._pending_frame = False
        self._timeouts = 0
        self._max_lateral = abs(self._sim.projection.lateral)
        self._monitor = self._sim.monitor(self._laps)
        self._started_wall = time.perf_counter()

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name == 'command_timeout':
                self._command_timeout = float(p.value)
        return SetParametersResult(successful=True)

    # -- commands in ------------------------------------------------------------------------------
    def _on_twist(self, msg: Twist) -> None:
        self._latest = (msg.linear.x, msg.angular.z, time.monotonic())
        if self._state == 'running':
            self._brain_seen = True
            if self._realtime or self._match == 'order':
                self._last_command_at = self._latest[2]
        if self._state == 'running' and not self._realtime and self._match == 'order' \
                and self._awaiting is not None:
            self._answer(msg.linear.x, msg.angular.z)

    def _on_stamped(self, msg: TwistStamped) -> None:
        if (
            self._state != 'running'
            or self._realtime
            or self._match != 'stamp'
            or self._awaiting is None
        ):
            return
        if (msg.header.stamp.sec, msg.header.stamp.nanosec) == self._awaiting:
            self._brain_seen = True
            self._last_command_at = time.monotonic()
            self._answer(msg.twist.linear.x, msg.twist.angular.z)
        # Anything else answers an older frame (a resent one answered twice): ignored.

    def _answer(self, v: float, w: float) -> None:
        self._awaiting = None
        self._advance(v, w)
        if self._state == 'running':
            self._next_frame()

    # -- observers --------------------------------------------------------------------------------
    def _on_observed(self, msg: String) -> None:
        ack = parse_ack(msg.data)
        if ack is None:
            return
        name, odom_ns, frame_ns, inputs = ack
        if name in self._observers_lost:
            return
        self._observers[name] = {
            'odom_ns': odom_ns, 'frame_ns': frame_ns, 'inputs': inputs, 'at': time.monotonic()
        }
        if self._pending_frame and not self._held():
            self._send_pending()

    def _held(self) -> bool:
        """Tell whether the next frame must wait (observers behind, or not matched yet)."""
        return bool(self._behind() or self._unmatched())

    def _unmatched(self) -> dict[str, list[str]]:
        """
        Return, before the first frame, each observer's inputs not matched yet.

        An input (a topic the observer takes from another node: the brain's timing) is matched once
        the observer's subscription has as many publishers as this node sees on it in the graph.
        Waived after ``observer_timeout`` (a warning): an incompatible QoS never matches.
        """
        if self._frames != 0 or self._inputs_waived:
            return {}
        publishers: dict[str, int] = {}
        unmatched: dict[str, list[str]] = {}
        for name, o in self._observers.items():
            for topic, matched in o['inputs'].items():
                if topic not in publishers:
                    publishers[topic] = self.count_publishers(topic)
                if matched < publishers[topic]:
                    unmatched.setdefault(name, []).append(topic)
        return unmatched

    def _behind(self) -> list[str]:
        """
        Return the observers the next frame must wait for.

        Those more than :data:`ODOM_WINDOW` steps behind on odometry, or without the last frame
        (camera-recording observers); before the first frame, also the observers not heard from
        yet (``wait_for_observers`` of them are expected).
        """
        period_ns = int(round(self._sim.config.control_period * 1e9))
        behind = [name for name, o in self._observers.items()
                  if o['odom_ns'] < self._state_ns - ODOM_WINDOW * period_ns
                  or (o['frame_ns'] is not None and o['frame_ns'] < self._frame_ns)]
        if self._frames == 0:
            known = len(self._observers) + len(self._observers_lost)
            behind += ['?'] * max(0, self._wait_for_observers - known)
        return behind

    def _next_frame(self) -> None:
        """Send the next frame, or (lock-step) hold it until the observers have caught up."""
        if self._realtime or not self._held():
            self._send_frame()
            return
        self._pending_frame = True
        self._gate_since = time.monotonic()

    def _send_pending(self) -> None:
        self._pending_frame = False
        self._send_frame()

    def _wait_for_observers_tick(self, now: float) -> None:
        """
        Lock-step, a frame held for the observers: resend, or give up on one that is gone.

        A camera-recording observer that lacks the last frame gets it again every
        :data:`RESEND_AFTER_S` (best effort may lose one). One silent for ``observer_timeout``, or
        whose node left the graph, ends the run (``observer_lost``); at the start, observers that
        never spoke are not waited for longer than that (a warning).
        """
        behind = self._behind()
        unmatched = self._unmatched()
        if not behind and not unmatched:
            self._send_pending()
            return
        waited = now - self._gate_since
        if unmatched and not behind:
            if waited >= self._observer_timeout:
                self.get_logger().warning(
                    f'after {waited:.1f} s, not matched yet: ' + '; '.join(
                        f"{n} to {', '.join(t)}" for n, t in unmatched.items()
                    ) + ': starting anyway (what they miss is missing from their reports)'
                )
                self._inputs_waived = True
                self._send_pending()
            return
        missing = [n for n in behind if n != '?']
        gone: dict[str, str] = {}
        if missing and now - self._graph_checked >= GRAPH_CHECK_S and waited >= GRAPH_CHECK_S:
            self._graph_checked = now
            present = {_full_name(ns, n) for n, ns in self.get_node_names_and_namespaces()}
            gone = {n: 'left the graph' for n in missing if n not in present}
        if waited >= self._observer_timeout:
            gone.update({n: f'silent for {waited:.1f} s' for n in missing if n not in gone})
        if gone:
            for name, why in gone.items():
                self._observers_lost[name] = why
                self._observers.pop(name, None)
            self.get_logger().error(
                'observer(s) lost: ' + ', '.join(f'{n} ({why})' for n, why in gone.items())
                + ': ending the run'
            )
            self._pending_frame = False
            self._end(EndReason.OBSERVER_LOST)
            return
        if '?' in behind and waited >= self._observer_timeout:
            self.get_logger().warning(
                f'only {len(self._observers)} of {self._wait_for_observers} observer(s) '
                f'acknowledge after {waited:.1f} s: not waiting for the others'
            )
            self._wait_for_observers = len(self._observers) + len(self._observers_lost)
            if not self._held():
                self._send_pending()
            return
        if self._frame_ns >= 0 and now - self._last_sent > RESEND_AFTER_S and any(
            self._observers[n]['frame_ns'] is not None
            and self._observers[n]['frame_ns'] < self._frame_ns
            for n in missing
        ):
            self._image_pub.publish(self._image)
            self._last_sent = now

    def _brain_gone(self, now: float) -> str | None:
        """Say why the brain that drove is gone (left the graph, silent), or ``None``."""
        if not self._brain_seen or self._brain_timeout <= 0:
            return None
        if not self._brain_present():
            return 'its node left the graph'
        silent = now - self._last_command_at
        if silent >= self._brain_timeout:
            return f'no command for {silent:.1f} s'
        return None

    def _lose_brain(self, why: str) -> None:
        self.get_logger().error(
            f"brain lost ({', '.join(self._brain_nodes) or 'the brain'}: {why}): ending the run"
        )
        self._brain_lost_why = why
        # The car of a lost brain is stopped, as a watchdog stops a real one: the run ends here,
        # and the end event's last command is that zero, not the dead brain's last order (which
        # it had been when the brain's node left the graph before a command timeout's zero step).
        self._last_applied = (0.0, 0.0)
        self._end(EndReason.BRAIN_LOST)

    # -- timer ------------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        now = time.monotonic()
        if self._state == 'waiting':
            if not (self._brain_present() and self._observers_present()):
                self._ready_since = None
            elif self._ready_since is None:
                self._ready_since = now
            # Seen in the graph is not yet matched for data (the brain's publishers with the
            # observers' subscriptions above all): give the matching a moment before the first
            # frame.
            settled = self._ready_since is not None and now - self._ready_since >= BRAIN_SETTLE_S
            if settled or now - self._created >= self._start_timeout:
                self._start()
            return
        if self._state != 'running' or self._paused:
            return
        if self._realtime:
            if self._brain_seen and now - self._last_command_at >= self._brain_timeout > 0:
                if now - self._graph_checked >= GRAPH_CHECK_S:
                    self._graph_checked = now
                    why = self._brain_gone(now)
                    if why is not None:
                        self._lose_brain(why)
                        return
            fresh = self._latest is not None and now - self._latest[2] <= self._command_timeout
            v, w = (self._latest[0], self._latest[1]) if fresh else (0.0, 0.0)
            self._advance(v, w)
            if self._state == 'running':
                self._send_frame()
            return
        if self._pending_frame:
            self._wait_for_observers_tick(now)
            return
        if self._awaiting is None:
            return
        # The first frame of a run waits as long as the brain may take to start: a subscription
        # that has not matched yet loses frames (resent below), and an answer that never came would
        # make the run start differently.
        limit = self._first_frame_timeout if self._frames == 1 else self._command_timeout
        if now - self._first_sent > limit:
            why = self._brain_gone(now)
            if why is not None:
                self._lose_brain(why)
                return
            self._timeouts += 1
            self.get_logger().warning(
                f'no command for the frame at t={self._sim.state.t:.2f} s within '
                f'{limit:g} s: stepping with a zero command',
                throttle_duration_sec=5.0,
            )
            self._answer(0.0, 0.0)
        elif self._match == 'stamp' and now - self._last_sent > RESEND_AFTER_S:
            # Best-effort frames can be lost (or sent before the brain's subscription matched):
            # send it again.
            self._image_pub.publish(self._image)
            self._last_sent = now

    def _brain_present(self) -> bool:
        """
        Tell whether a node both subscribes to the camera and publishes commands.

        A recorder subscribes to the camera too, and a probe may publish commands, but neither is a
        brain.
        """
        commands = self.get_publishers_info_by_topic(self._cmd_topic)
        if self._stamped_topic:
            commands += self.get_publishers_info_by_topic(self._stamped_topic)
        if not commands:
            return False
        cameras = {
            _endpoint_owner(e) for e in self.get_subscriptions_info_by_topic(self._image_topic)
        }
        brains = {_endpoint_owner(e) for e in commands} & cameras
        if brains and self._state == 'waiting':
            self._brain_nodes = sorted(_full_name(o[1], o[2]) for o in brains if o[0] == 'node')
        return bool(brains)

    def _observer_count(self) -> int:
        """
        Count the observers that would see the run from its start.

        Subscriptions matched with both the odometry and the status publisher (matched, not merely
        seen in the graph: a message published now reaches them).
        """
        return min(
            self._odom_pub.get_subscription_count(), self._status_pub.get_subscription_count()
        )

    def _observers_present(self) -> bool:
        return self._observer_count() >= self._wait_for_observers

    def _start(self) -> None:
        if not self._realtime and self._match == 'auto':
            stamped = bool(self._stamped_topic) and self.count_publishers(self._stamped_topic) > 0
            self._match = 'stamp' if stamped else 'order'
        present = self._brain_present()
        if not present:
            self.get_logger().warning(f'no brain after {self._start_timeout:g} s: starting anyway')
        if not self._observers_present():
            self.get_logger().warning(
                f'only {self._observer_count()} of {self._wait_for_observers} observer(s) '
                f'subscribed to odometry and status after {self._start_timeout:g} s: '
                'starting anyway (they miss the start of the run)'
            )
        self._first_frame_timeout = self._start_timeout if present else self._command_timeout
        self._brain_seen = present
        self._last_command_at = time.monotonic()
        self._state = 'running'
        self._reset_run_counters()
        # The start pose (and /clock at 0), now that the observers are there to receive it: nobody
        # was yet when the node started.
        self._publish_state()
        self._publish_status({'event': 'start', **self._describe()})
        mode = 'real time' if self._realtime else f'lock-step, answers matched by {self._match}'
        self.get_logger().info(f"run started ({mode}){', paused' if self._paused else ''}")
        if not self._paused:
            self._next_frame()

    # -- stepping and publishing ------------------------------------------------------------------
    def _advance(self, v: float, w: float) -> None:
        if not (math.isfinite(v) and math.isfinite(w)):
            self.get_logger().warning(
                f'non-finite command v={v} w={w}: using zero', throttle_duration_sec=5.0
            )
            v = w = 0.0
        self._sim.step(float(v), float(w))
        self._last_applied = (float(v), float(w))
        self._max_lateral = max(self._max_lateral, abs(self._sim.projection.lateral))
        self._publish_state()
        reason = self._sim.check_end(self._monitor, self._laps)
        if reason is not None:
            self._end(reason)

    def _now(self) -> TimeMsg:
        return _stamp(self._time_offset + self._sim.state.t)

    def _send_frame(self) -> None:
        self._sim.frame(self._lighting, out=self._frame)
        stamp = self._now()
        self._image_stamp = (stamp.sec, stamp.nanosec)
        self._image = self._serializer.serialize(self._frame, *self._image_stamp)
        self._image_pub.publish(self._image)
        self._frames += 1
        self._frame_ns = stamp.sec * 1_000_000_000 + stamp.nanosec
        self._count(self._image_topic)
        if not self._realtime:
            self._awaiting = self._image_stamp
            self._first_sent = self._last_sent = time.monotonic()

    def _publish_state(self) -> None:
        """Publish ``/clock`` then odometry, for the pose the car has now."""
        stamp = self._now()
        self._clock_pub.publish(ClockMsg(clock=stamp))
        st = self._sim.state
        odom = Odometry()
        odom.header.stamp = stamp
        odom.header.frame_id = 'odom'
        odom.child_frame_id = 'base_link'
        odom.pose.pose.position.x, odom.pose.pose.position.y = float(st.x), float(st.y)
        odom.pose.pose.orientation.z = math.sin(st.yaw / 2)
        odom.pose.pose.orientation.w = math.cos(st.yaw / 2)
        odom.twist.twist.linear.x, odom.twist.twist.angular.z = float(st.v), float(st.w)
        self._odom_pub.publish(odom)
        self._state_ns = stamp.sec * 1_000_000_000 + stamp.nanosec
        self._count(topics.CLOCK)
        self._count(self._odom_pub.topic_name)

    def _count(self, topic: str) -> None:
        self._published[topic] = self._published.get(topic, 0) + 1

    def _publish_status(self, event: dict[str, Any]) -> None:
        self._count(self._status_pub.topic_name)
        self._status_pub.publish(String(data=json.dumps(event, default=str)))

    def _end(self, reason: EndReason) -> None:
        """
        Publish the ``end`` event with Behavior Metrics' lap figures, then stop.

        Exit or restart.
        """
        self._state = 'ended'
        self._awaiting = None
        self._pending_frame = False
        traj = self._sim.trajectory()
        metrics = dataclasses.replace(compute_lap_metrics(traj, perfect_lap_of(self._sim.circuit)),
                                      end_reason=reason.value)
        result = RunResult(self._sim.circuit.name, self._laps, reason, traj, metrics,
                           time.perf_counter() - self._started_wall, self._max_lateral)
        summary = {
            'event': 'end',
            **self._describe(),
            'frames': self._frames,
            'command_timeouts': self._timeouts,
            'brain': {'nodes': self._brain_nodes,
                      'lost': getattr(self, '_brain_lost_why', None)
                      if reason is EndReason.BRAIN_LOST else None},
            'observers': sorted(self._observers),
            'observers_lost': dict(self._observers_lost),
            'last_command': list(self._last_applied),
            # since the node started, this end event included
            'published': {**self._published,
                          self._status_pub.topic_name: self._published.get(
                              self._status_pub.topic_name, 0) + 1},
            **result.to_dict(),
        }
        self._publish_status(summary)
        self.exit_code = 0 if reason is EndReason.LAPS_DONE else 3
        self.get_logger().info(f'run ended: {reason}; {json.dumps(summary, default=str)}')
        if reason in _FAULTS and self._on_end == 'restart':
            self._on_end = 'exit'   # a lost node is not driven round again: the process ends
        if self._on_end == 'restart':
            self._time_offset += self._sim.state.t + self._sim.config.control_period
            self._episode += 1
            self._sim.reset()
            self._state = 'running'
            self._reset_run_counters()
            self._publish_state()
            self._publish_status({'event': 'start', **self._describe()})
            # The caller sends the next frame, as after any step that did not end the run.

    # -- Gazebo's services -----------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._paused

    def _on_reset_world(self, request: Empty.Request, response: Empty.Response) -> Any:
        self.reset_world(keep_time=True)
        return response

    def _on_reset_simulation(self, request: Empty.Request, response: Empty.Response) -> Any:
        self.reset_world(keep_time=False)
        return response

    def _on_pause(self, request: Empty.Request, response: Empty.Response) -> Any:
        self.set_paused(True)
        return response

    def _on_unpause(self, request: Empty.Request, response: Empty.Response) -> Any:
        self.set_paused(False)
        return response

    def reset_world(self, keep_time: bool = True) -> None:
        """
        Put the car back at the circuit's spawn pose and start its run afresh.

        As Gazebo's ``/reset_world`` (``keep_time``: the clock goes on, one control period later)
        or ``/reset_simulation`` (the clock back to 0). Paused or not stays as it was; a run that
        had ended starts again; before the brain is there, only the pose is reset.
        """
        self._time_offset = (
            self._time_offset + self._sim.state.t + self._sim.config.control_period
            if keep_time else 0.0
        )
        self._awaiting = None
        self._sim.reset()
        if self._state == 'waiting':
            self._publish_state()
        else:
            self._episode += 1
            self._state = 'running'
            self._reset_run_counters()
            self._publish_state()
            self._publish_status({'event': 'start', 'reset': True, **self._describe()})
            if not self._paused and not self._realtime:
                self._send_frame()
        self.get_logger().info(
            f"{'world' if keep_time else 'simulation'} reset: the car at the start pose, "
            f't={self._time_offset:.2f} s' + (' (paused)' if self._paused else '')
        )

    def set_paused(self, paused: bool) -> None:
        """
        Pause or resume physics (Gazebo's ``/pause_physics``, ``/unpause_physics``).

        While paused nothing steps and ``/clock`` stands still; answers to the frame that was out
        are dropped, and on resuming (lock-step) the frame of the current pose goes out again.
        """
        was = self._paused
        self._paused = paused
        if paused:
            self._awaiting = None
        elif was and self._state == 'running' and not self._realtime:
            self._send_frame()
        if was != paused:
            self.get_logger().info('physics paused' if paused else 'physics resumed')

    def flush_status(self, timeout_s: float = 2.0) -> None:
        """Wait until subscribers have the last status event (before exiting)."""
        self._status_pub.wait_for_all_acked(Duration(seconds=timeout_s))


def _stopped(node: SimulatorNode) -> None:
    """At SIGINT/SIGTERM during a run: end it (``interrupted``), so that observers hear why."""
    if node._state == 'running':
        node._on_end = 'stop'
        node._end(EndReason.INTERRUPTED)
        node.flush_status(1.0)


def _end_of_run(node: SimulatorNode) -> int:
    node.flush_status()
    return node.exit_code


def main(args: list[str] | None = None) -> int:
    """
    Run the simulator node until the end or a signal.

    ``ros2 run pilotnet_optimized simulator_node --ros-args -p circuit:=simple``.

    :returns: 0 after a signal or a completed run, 3 when ``on_end:=exit`` and the run ended early,
        2 when the node cannot start (one line on stderr says why).
    """
    return spin_node('simulator_node', SimulatorNode, args, finished=lambda node: node.finished,
                     on_finished=_end_of_run, on_stop=_stopped)


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
