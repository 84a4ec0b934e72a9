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
An observer's acknowledgements to a lock-step simulator, on :data:`~.topics.OBSERVED`.

Each acknowledgement (std_msgs/String, JSON) says what the observer has taken, so that the
simulator runs no further ahead than it can follow::

    {"node": "/metrics_node", "odom_ns": 1500000000, "frame_ns": null,
     "inputs": {"/inference_node/timing": 1}}

- ``odom_ns``: the newest odometry stamp taken (-1: none yet);
- ``frame_ns``: the newest camera frame taken, for an observer that records the camera (``null``
  for one that does not, which the frame gate then does not wait for);
- ``inputs``: for each topic it takes from another node than the simulator (the brain's timing
  and commands), how many publishers its subscription has matched. The simulator sends the first
  frame only once each count has reached the publishers it sees on that topic: a subscription that
  has not matched yet would lose what those publishers send about the first frames (a metrics node
  that missed the timing of a short run reported no inference time at all).

An observer acknowledges each odometry (and frame) it takes and, until odometry after the start
pose shows that the first frame went out, again when an input's count changes: the simulator,
holding the first frame, has no other message to wait on.
"""

from __future__ import annotations

import json
from typing import Callable

from pilotnet_optimized.nodes import qos, topics
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.subscription import Subscription
from std_msgs.msg import String

__all__ = ['INPUT_CHECK_S', 'matched_publishers', 'ObserverAck', 'parse_ack']

#: Seconds between checks of the inputs' matched publishers (only until the run's first frame).
INPUT_CHECK_S = 0.05


class ObserverAck:
    """
    Publish one observer's acknowledgements.

    ``inputs`` returns, per input topic, the publishers its subscription has matched now.
    """

    def __init__(self, node: Node, inputs: Callable[[], dict[str, int]]) -> None:
        self._pub = node.create_publisher(String, topics.OBSERVED, qos.ACK)
        self._name = node.get_fully_qualified_name()
        self._inputs = inputs
        self._sent: tuple[int, int | None, dict[str, int]] | None = None
        self._checks = node.create_timer(
            INPUT_CHECK_S, self._check_inputs, clock=Clock(clock_type=ClockType.STEADY_TIME)
        )

    def send(self, odom_ns: int, frame_ns: int | None = None) -> None:
        """Acknowledge odometry up to ``odom_ns`` (and a frame up to ``frame_ns``)."""
        inputs = self._inputs()
        self._sent = (odom_ns, frame_ns, inputs)
        if odom_ns > 0 and not self._checks.is_canceled():
            # Odometry after the start pose: the first frame was sent, nobody waits on the inputs.
            self._checks.cancel()
        self._pub.publish(String(data=json.dumps(
            {'node': self._name, 'odom_ns': odom_ns, 'frame_ns': frame_ns, 'inputs': inputs}
        )))

    def _check_inputs(self) -> None:
        # Only once something was acknowledged: an acknowledgement before the first odometry
        # tells the simulator nothing it can act on.
        if self._sent is not None and self._inputs() != self._sent[2]:
            self.send(self._sent[0], self._sent[1])


def matched_publishers(node: Node, subscription: Subscription) -> int:
    """
    Return the publishers ``subscription`` has matched.

    Humble's rclpy cannot say (``Subscription.get_publisher_count`` came with Iron): there, the
    publishers ``node`` sees on the topic in the graph, which a match follows closely.
    """
    count = getattr(subscription, 'get_publisher_count', None)
    return int(count()) if count is not None else node.count_publishers(subscription.topic_name)


def parse_ack(data: str) -> tuple[str, int, int | None, dict[str, int]] | None:
    """
    Read one acknowledgement: node, odometry stamp, frame stamp, inputs; ``None`` if malformed.

    An acknowledgement without ``inputs`` (an older observer, or one written elsewhere) has none.
    """
    try:
        ack = json.loads(data)
        name = str(ack['node'])
        odom_ns = int(ack.get('odom_ns', -1))
        frame_ns = None if ack.get('frame_ns') is None else int(ack['frame_ns'])
        inputs = {str(t): int(n) for t, n in dict(ack.get('inputs') or {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return name, odom_ns, frame_ns, inputs
