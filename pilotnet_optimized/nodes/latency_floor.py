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
The bare transport floor of ``pilotnet bench-latency``: a no-op subscriber in the brain's place.

It has the inference node's name, topics and QoS, takes every camera ``Image`` the way the node
does (rclpy deserialises it; the callback reads its pixel buffer in place) and answers at once
with a zero command, stamped with the frame's stamp, and a ``~/timing`` sample of the inference
node's layout (no model: inference and preprocessing 0). So bench-latency drives it exactly as it
drives the node, and its camera hop (stamp to answer, minus the callback) is what moving the same
frame between two processes costs with nothing else in the way: every other figure is a ratio to
it. Started as ``python -m pilotnet_optimized.nodes.latency_floor`` by the benchmark only.
"""

from __future__ import annotations

import json
import sys
import time

from geometry_msgs.msg import Twist, TwistStamped
from pilotnet_optimized.bags.images import image_pixels
from pilotnet_optimized.errors import ImageError
from pilotnet_optimized.laps.report import TIMING_FIELDS
from pilotnet_optimized.nodes import qos, topics
from pilotnet_optimized.nodes.spin import spin_node
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String

__all__ = ['FloorNode', 'main']


class FloorNode(Node):
    """Answers every camera frame with a zero command and a timing sample; no model."""

    def __init__(self, node_name: str = topics.INFERENCE_NODE) -> None:
        super().__init__(node_name)
        self._cmd_pub = self.create_publisher(Twist, topics.COMMAND, qos.COMMAND)
        self._stamped_pub = self.create_publisher(
            TwistStamped, topics.STAMPED_COMMAND, qos.COMMAND
        )
        self._timing_pub = self.create_publisher(Float64MultiArray, topics.TIMING, qos.TIMING)
        self._status_pub = self.create_publisher(String, topics.STATUS, qos.STATUS)
        self.create_subscription(Image, topics.CAMERA, self._on_image, qos.CAMERA)
        self._status_pub.publish(String(data=json.dumps({
            'event': 'model_loaded', 'backend': 'none', 'precision': 'no model', 'size_mb': None,
            'path': '', 'requested': '', 'load_seconds': None,
        })))
        self.get_logger().info(f'driving with no model (transport floor); camera {topics.CAMERA}')

    def _on_image(self, msg: Image) -> None:
        start = time.perf_counter()
        try:
            image_pixels(msg)   # what the inference node does to a frame before its model
        except ImageError:
            return
        cmd = Twist()
        self._cmd_pub.publish(cmd)
        self._stamped_pub.publish(TwistStamped(header=msg.header, twist=cmd))
        end = time.perf_counter()
        stamp = Time.from_msg(msg.header.stamp, clock_type=self.get_clock().clock_type)
        end_to_end_ms = (self.get_clock().now() - stamp).nanoseconds / 1e6
        timing = Float64MultiArray(data=[
            0.0, end_to_end_ms, 0.0, (end - start) * 1e3,
            msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9,
        ])
        timing.layout.dim = [MultiArrayDimension(
            label=','.join(TIMING_FIELDS), size=len(TIMING_FIELDS), stride=len(TIMING_FIELDS)
        )]
        self._timing_pub.publish(timing)


def main(args: list[str] | None = None) -> int:
    """Spin the floor node until SIGINT/SIGTERM; 0 after a clean stop."""
    return spin_node('latency_floor', FloorNode, args)


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
