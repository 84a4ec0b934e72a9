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
One side of a discovery trial (trial.sh).

``pub`` publishes on /x for up to 5 s; ``sub`` prints whether a message arrived within 5 s.
``--wait 6`` is the first version (both sides run 6 s, no early exit).
"""

import sys
import time

import rclpy
from std_msgs.msg import String

role = sys.argv[1]
limit = float(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == '--wait' else 5.0
rclpy.init()
node = rclpy.create_node(role)
got: list[int] = []
t0 = time.time()
if role == 'pub':
    pub = node.create_publisher(String, '/x', 10)
    while time.time() - t0 < limit:
        pub.publish(String(data='hi'))
        rclpy.spin_once(node, timeout_sec=0.05)
        if limit == 5.0 and node.count_subscribers('/x') and time.time() - t0 > 1.5:
            break
else:
    node.create_subscription(String, '/x', lambda m: got.append(1), 10)
    while time.time() - t0 < limit and not got:
        rclpy.spin_once(node, timeout_sec=0.05)
    print('sub got', len(got), 'after', round(time.time() - t0, 2))
