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
The ROS 1 bridge's added camera latency: ROS 1 publish -> ROS 2 subscriber callback.

``.venv/bin/python benchmarks/ros1/bridge_latency.py --frames 400 --rate 20``: a roscore of its
own, a ROS 1 publisher of 640x480 rgb8 frames stamped with the wall clock (rospy, through the
bridge's relay), the bridge node, and an rclpy subscriber (reliable) in this process. Prints JSON
and a table: end-to-end p50/p99, the bridge's own part (relay receive -> ROS 2 publish, from its
report), frames sent, received and lost.
"""

import argparse
import json
import os
from pathlib import Path
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROS1_PYTHON = '/usr/bin/python3'
W, H = 640, 480


def _ros1_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'PYTHONHOME', 'LD_LIBRARY_PATH', 'VIRTUAL_ENV')}
    env.update(extra)
    return env


def _pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    """Run the measurement and print JSON and a table."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--frames', type=int, default=400)
    parser.add_argument('--rate', type=float, default=20.0)
    args = parser.parse_args()
    from pilotnet_optimized.nodes.dds import apply_env, dds_env, free_ros_domain
    from pilotnet_optimized.nodes.ros1.wire import Channel
    from pilotnet_optimized.nodes.ros1.half import RELAY
    apply_env(os.environ, {**dds_env(), 'ROS_DOMAIN_ID': str(free_ros_domain())})
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    uri = f'http://127.0.0.1:{port}'
    tmp = Path(tempfile.mkdtemp())
    env = _ros1_env(ROS_MASTER_URI=uri, ROS_IP='127.0.0.1', ROS_HOME=str(tmp))
    procs = [subprocess.Popen(['roscore', '-p', str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)]
    probe = f'import rosgraph, sys; sys.exit(0 if rosgraph.is_master_online("{uri}") else 1)'
    while subprocess.run([ROS1_PYTHON, '-c', probe], env=env).returncode != 0:
        time.sleep(0.5)
    ours, theirs = socket.socketpair()
    procs.append(subprocess.Popen([ROS1_PYTHON, str(RELAY), '--fd', str(theirs.fileno()),
                                   '--name', 'bench_camera'], pass_fds=(theirs.fileno(),),
                                  env=env, start_new_session=True))
    theirs.close()
    car = Channel(ours)
    car.recv()
    car.send({'op': 'advertise', 'topic': '/F1ROS/cameraL/image_raw', 'type': 'sensor_msgs/Image'})
    report = tmp / 'bridge.json'
    bridge = subprocess.Popen(
        [sys.executable, '-m', 'pilotnet_optimized.nodes.ros1_bridge_node', '--ros-args', '-p',
         f'report:={report}'], env={**os.environ, 'ROS_MASTER_URI': uri, 'ROS_IP': '127.0.0.1'},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('bench_ros1_bridge')
    lat = []
    node.create_subscription(
        Image, '/cam_f1_left/image_raw',
        lambda m: lat.append((time.time() - m.header.stamp.sec - m.header.stamp.nanosec * 1e-9)
                             * 1e3), QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    # Our own executor on a thread we stop and join before shutting rclpy down: a thread still in
    # rclpy.spin at interpreter exit aborts it ('terminate called without an active exception').
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinning = threading.Event()
    spinning.set()

    def spin() -> None:
        while spinning.is_set():
            executor.spin_once(timeout_sec=0.1)

    spinner = threading.Thread(target=spin, name='bench-spin')
    spinner.start()
    while True:
        car.send({'op': 'connections', 'topic': '/F1ROS/cameraL/image_raw'})
        if car.recv()[0]['n'] > 0 and node.count_publishers('/cam_f1_left/image_raw') > 0:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    data = bytes(W * H * 3)
    body = struct.pack('<II', H, W) + struct.pack('<I', 4) + b'rgb8' + struct.pack(
        '<BI', 0, W * 3) + struct.pack('<I', len(data)) + data
    started = time.perf_counter()
    for seq in range(1, args.frames + 1):
        ns = time.time_ns()
        head = struct.pack('<III', seq, ns // 10**9, ns % 10**9) + struct.pack('<I', 3) + b'cam'
        car.send({'op': 'publish', 'topic': '/F1ROS/cameraL/image_raw'}, head + body)
        time.sleep(max(0.0, started + seq / args.rate - time.perf_counter()))
    deadline = time.monotonic() + 30
    while len(lat) < args.frames and time.monotonic() < deadline:
        time.sleep(0.1)
    spinning.clear()
    spinner.join()
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    bridge.send_signal(2)
    bridge.wait(timeout=30)
    car.send({'op': 'shutdown'})
    procs[1].wait(timeout=30)
    os.killpg(procs[0].pid, 2)
    procs[0].wait(timeout=30)
    own = json.loads(report.read_text())
    warm = lat[10:]
    result = {'frames_sent': args.frames, 'frames_received': len(lat),
              'lost': args.frames - len(lat), 'rate_hz': args.rate,
              'end_to_end_p50_ms': _pct(warm, 50), 'end_to_end_p99_ms': _pct(warm, 99),
              'bridge_own_p50_ms': own['latency_p50_ms'],
              'bridge_own_p99_ms': own['latency_p99_ms'], 'bridge_counts': own}
    print(json.dumps(result))
    print('| path | p50 ms | p99 ms |\n|---|---|---|')
    print(f"| ROS 1 publish -> ROS 2 callback | {result['end_to_end_p50_ms']:.2f} | "
          f"{result['end_to_end_p99_ms']:.2f} |")
    print(f"| bridge's own (relay receive -> ROS 2 publish) | {own['latency_p50_ms']:.2f} | "
          f"{own['latency_p99_ms']:.2f} |")
    print(f"frames: {args.frames} sent, {len(lat)} received, {result['lost']} lost")
    return 0


if __name__ == '__main__':
    sys.exit(main())
