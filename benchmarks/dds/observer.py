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
A participant subscribed to /x for 400 s.

The third participant of the discovery trials (as a test's probe).
"""

import time

import rclpy
from std_msgs.msg import String

rclpy.init()
node = rclpy.create_node('observer')
node.create_subscription(String, '/x', lambda m: None, 10)
t0 = time.time()
while time.time() - t0 < 400:
    rclpy.spin_once(node, timeout_sec=0.1)
