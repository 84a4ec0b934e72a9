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
The ROS 1 side of the bridge, its wire format, and the built-in simulator as a ROS 1 car.

rospy and rclpy cannot share a process, so :mod:`.relay` runs in the interpreter that has rospy
(``/usr/bin/python3`` on Debian) and the ROS 2 side talks to it over a socket (:mod:`.half`
starts it). Nothing here imports ROS 2 or anything that does; :mod:`.wire` is stdlib only and
:mod:`.relay` imports nothing of the project. :mod:`.car` (``pilotnet ros1-car``) runs in the
project's Python: the ROS-free simulator publishing on ROS 1 through a relay of its own.
"""

__all__: list = []
