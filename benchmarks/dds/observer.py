"""A participant subscribed to /x for 400 s: the third participant of the discovery trials (as a test's probe)."""

import time

import rclpy
from std_msgs.msg import String

rclpy.init()
node = rclpy.create_node('observer')
node.create_subscription(String, '/x', lambda m: None, 10)
t0 = time.time()
while time.time() - t0 < 400:
    rclpy.spin_once(node, timeout_sec=0.1)
