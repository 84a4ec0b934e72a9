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
Every QoS profile of the node suite, in one place, each chosen for what its topic carries.

- :data:`CAMERA`: best effort, keep last 1, volatile. A late frame is worthless: drive on the
  newest (sensor-data QoS with depth 1).
- :data:`COMMAND`: reliable, keep last 10, volatile. The newest command must arrive (the final
  zero above all); a subscriber that wants only the newest asks for depth 1 (:data:`LATEST`), a
  recorder gets every one.
- :data:`ODOMETRY`: reliable, keep last 10, volatile. Metrics and recorders want every pose.
- :data:`CLOCK`: best effort, keep last 1, volatile. As rclcpp's ``ClockQoS`` and rclpy's time
  source subscribe.
- :data:`TIMING`: reliable, keep last 50, transient local. One sample per frame for a metrics node;
  a burst must not drop samples, and neither may discovery: matching is one-sided (the metrics
  node's subscription can have matched the brain's publisher before the publisher has matched it,
  and a volatile writer sends nothing to a reader it does not know yet), so the writer keeps its
  last 50 rows for a reader it matches late. The report drops rows older than its first pose.
- :data:`ACK`: reliable, keep last 10, volatile. The observers' acknowledgements to a lock-step
  simulator (only the newest of each matters).
- :data:`STATUS`: reliable, keep last 1, transient local. Events (model swaps, end of run): a late
  subscriber still gets the latest one.

A reliable publisher also serves best-effort subscribers, not the other way round: so the camera
publisher is best effort only because the camera is (Gazebo's camera plugin and
``qos_profile_sensor_data`` are), and every subscriber here asks for no more than its publisher
offers.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

__all__ = ['CAMERA', 'COMMAND', 'LATEST', 'ODOMETRY', 'CLOCK', 'TIMING', 'ACK', 'STATUS']

CAMERA = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
COMMAND = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
LATEST = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
ODOMETRY = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
CLOCK = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
TIMING = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=50,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
ACK = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
STATUS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
