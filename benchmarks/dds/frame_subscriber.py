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
Stamp-to-callback latency of frame_publisher.py's frames for 8 s.

P50 and p90 after the first 20.

Usage: frame_subscriber.py single|events|raw (rclpy's SingleThreadedExecutor, its EventsExecutor,
or a raw subscription that takes the CDR bytes undeserialised).
"""

import struct
import sys
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

mode = sys.argv[1]
rclpy.init()
node = rclpy.create_node('sub')
latency: list[float] = []


def on_image(msg: Image) -> None:
    latency.append(
        (time.time_ns() - (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)) / 1e6
    )


def on_raw(raw: bytes) -> None:
    sec, nsec = struct.unpack_from('<iI', raw, 4)
    latency.append((time.time_ns() - (sec * 10**9 + nsec)) / 1e6)


node.create_subscription(
    Image,
    '/img',
    on_raw if mode == 'raw' else on_image,
    qos_profile_sensor_data,
    raw=mode == 'raw',
)
for _ in range(3):
    node.create_timer(0.1, lambda: None)  # a node's usual timers
if mode == 'events':
    from rclpy.experimental import EventsExecutor
    executor = EventsExecutor()
else:
    executor = SingleThreadedExecutor()
executor.add_node(node)
t0 = time.time()
while time.time() - t0 < 8:
    executor.spin_once(timeout_sec=0.1)
ms = np.array(latency[20:])
print(
    mode,
    'n',
    len(latency),
    'p50',
    round(np.percentile(ms, 50), 3),
    'p90',
    round(np.percentile(ms, 90), 3),
)
