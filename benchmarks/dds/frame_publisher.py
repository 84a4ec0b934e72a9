"""Publishes a 640x480 rgb8 frame (or 64x48 with ``small``) as CDR bytes every 20 ms for 10 s, stamped with the
system clock just before it is packed."""

import sys
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from pilotnet_optimized.bags.images import ImageSerializer

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
