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
Publishes a 640x480 rgb8 frame (or 64x48 with ``small``) as CDR bytes every 20 ms for 10 s.

Stamped with the system clock just before it is packed.
"""

import sys
import time

import numpy as np
from pilotnet_optimized.bags.images import ImageSerializer
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

shape = (48, 64, 3) if sys.argv[1:] == ['small'] else (480, 640, 3)
rclpy.init()
node = rclpy.create_node('pub')
serializer = ImageSerializer()
img = np.random.randint(0, 255, shape, np.uint8)
pub = node.create_publisher(Image, '/img', qos_profile_sensor_data)
t0 = time.time()
while time.time() - t0 < 10:
    ns = time.time_ns()
    pub.publish(serializer.serialize(img, ns // 10**9, ns % 10**9))
    time.sleep(0.02)
