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
Every topic name and message type of the node graph.

In one place (no ROS import: the graph description, the runner and the benchmarks read it without
rclpy).

The names are those of Behavior Metrics' ROS 2 Formula-1 car (camera, commands, odometry), so that
the inference node drives that car unchanged, plus this package's own: the stamped commands of
lock-step, the simulator's status and the inference node's timing and status. The nodes take their
topics from parameters whose defaults are these (and ``config/*.yaml`` repeats them for the
reader); the node-relative names (``~/timing``) become ``/<node name>/timing``.
"""

from __future__ import annotations

__all__ = [
    'CAMERA',
    'CAMERA_FRAME',
    'COMMAND',
    'STAMPED_COMMAND',
    'ODOMETRY',
    'CLOCK',
    'SIM_STATUS',
    'OBSERVED',
    'INFERENCE_NODE',
    'TIMING',
    'STATUS',
    'PROGRESS',
    'INFERENCE_TIMING',
    'INFERENCE_STATUS',
    'TYPES',
    'IMAGE_TYPE',
    'TWIST_TYPE',
    'TWIST_STAMPED_TYPE',
    'ODOMETRY_TYPE',
    'CLOCK_TYPE',
    'STRING_TYPE',
    'TIMING_TYPE',
    'RESET_WORLD',
    'RESET_SIMULATION',
    'PAUSE_PHYSICS',
    'UNPAUSE_PHYSICS',
    'GAZEBO_SERVICES',
]

#: The car's camera (sensor_msgs/Image, rgb8 640x480) and the frame id its images carry.
CAMERA = '/cam_f1_left/image_raw'
CAMERA_FRAME = 'cam_f1_left'
#: Commands to the car (geometry_msgs/Twist: linear.x = v, angular.z = w).
COMMAND = '/cmd_vel'
#: The same commands stamped with the frame they answer (lock-step matching).
STAMPED_COMMAND = '/cmd_vel_stamped'
ODOMETRY = '/odom'
#: Simulated time, published by either simulator.
CLOCK = '/clock'
#: The built-in simulator's run events (``ready``, ``start``, ``end``), latched.
SIM_STATUS = '/sim/status'
#: The observers' acknowledgements (std_msgs/String, JSON: ``node``, ``odom_ns``, ``frame_ns``):
#: the newest odometry and camera stamps each observer (metrics, recorder) has taken. A lock-step
#: simulator runs at most a few steps ahead of them, so that none loses a message.
OBSERVED = '/sim/observed'

#: Gazebo's world services on ROS 2 (``gazebo_ros_init``, std_srvs/srv/Empty), which the built-in
#: simulator serves with the same meaning: the car back to its spawn pose (``/reset_world`` keeps
#: the clock going, ``/reset_simulation`` sets it back to 0), physics paused and resumed
#: (``/clock`` stops while paused).
RESET_WORLD = '/reset_world'
RESET_SIMULATION = '/reset_simulation'
PAUSE_PHYSICS = '/pause_physics'
UNPAUSE_PHYSICS = '/unpause_physics'
GAZEBO_SERVICES = (RESET_WORLD, RESET_SIMULATION, PAUSE_PHYSICS, UNPAUSE_PHYSICS)

#: The brain's node name, which its node-relative topics are under.
INFERENCE_NODE = 'inference_node'
#: Node-relative topics: per-frame timing, events, and the metrics node's progress.
TIMING = '~/timing'
STATUS = '~/status'
PROGRESS = '~/progress'
INFERENCE_TIMING = f'/{INFERENCE_NODE}/timing'
INFERENCE_STATUS = f'/{INFERENCE_NODE}/status'

IMAGE_TYPE = 'sensor_msgs/msg/Image'
TWIST_TYPE = 'geometry_msgs/msg/Twist'
TWIST_STAMPED_TYPE = 'geometry_msgs/msg/TwistStamped'
ODOMETRY_TYPE = 'nav_msgs/msg/Odometry'
CLOCK_TYPE = 'rosgraph_msgs/msg/Clock'
STRING_TYPE = 'std_msgs/msg/String'
TIMING_TYPE = 'std_msgs/msg/Float64MultiArray'

#: The graph's topics with their message types (all but ``/clock``): what the recorder subscribes
#: to at start-up, before their publishers appear.
TYPES: dict[str, str] = {
    CAMERA: IMAGE_TYPE,
    COMMAND: TWIST_TYPE,
    STAMPED_COMMAND: TWIST_STAMPED_TYPE,
    ODOMETRY: ODOMETRY_TYPE,
    INFERENCE_TIMING: TIMING_TYPE,
    SIM_STATUS: STRING_TYPE,
    INFERENCE_STATUS: STRING_TYPE,
}
