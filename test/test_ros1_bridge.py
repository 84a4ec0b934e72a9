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
The ROS 1 bridge against a real ROS 1 master (Debian's roscore and rospy in /usr/bin/python3).

The ROS 1 side is real: a ``roscore`` of its own (its own port), and a stand-in for Behavior
Metrics' Gazebo car driven through the bridge's own ROS 1 half (:mod:`.ros1.relay`, rospy in the
system Python): the car's camera (rgb8 640x480), odometry and clock, the command it obeys, and
Gazebo services (one that works, one that fails, one missing). The ROS 2 side is the bridge node
as a process and an rclpy subscriber. Skipped, with the reason, where ROS 1 is not installed
(``scripts/setup.sh --test`` installs it on Debian/Ubuntu as root or with sudo).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

from helpers import assert_one_line_error
import pytest

ROS1_PYTHON = '/usr/bin/python3'


def _ros1_missing() -> str | None:
    if shutil.which('roscore') is None:
        return 'no roscore: scripts/setup.sh --test installs ROS 1 (Debian/Ubuntu, root or sudo)'
    probe = subprocess.run([ROS1_PYTHON, '-c', 'import rospy, std_srvs.srv'],
                           capture_output=True, env=_ros1_env(os.environ))
    if probe.returncode != 0:
        return f'{ROS1_PYTHON} has no rospy: scripts/setup.sh --test installs python3-rospy'
    return None


def _ros1_env(env, **extra):
    out = {k: v for k, v in env.items()
           if k not in ('PYTHONPATH', 'PYTHONHOME', 'LD_LIBRARY_PATH', 'VIRTUAL_ENV')}
    out.update(extra)
    return out


pytestmark = pytest.mark.skipif(_ros1_missing() is not None, reason=str(_ros1_missing()))

FRAMES = 60
W, H = 640, 480


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def roscore(tmp_path_factory):
    """Start a roscore on a free port; yield its ROS_MASTER_URI."""
    port = _free_port()
    uri = f'http://127.0.0.1:{port}'
    home = tmp_path_factory.mktemp('ros_home')
    env = _ros1_env(os.environ, ROS_MASTER_URI=uri, ROS_HOME=str(home), ROS_IP='127.0.0.1')
    proc = subprocess.Popen(['roscore', '-p', str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    probe = f'import rosgraph, sys; sys.exit(0 if rosgraph.is_master_online("{uri}") else 1)'
    deadline = time.monotonic() + 60
    while subprocess.run([ROS1_PYTHON, '-c', probe], env=env).returncode != 0:
        assert proc.poll() is None and time.monotonic() < deadline, 'roscore did not come up'
        time.sleep(0.5)
    yield uri
    os.killpg(proc.pid, 2)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


class FakeCar:
    """Behavior Metrics' car on ROS 1, through the bridge's own relay: topics and services."""

    def __init__(self, uri: str, fail: str, ok: str) -> None:
        from pilotnet_optimized.nodes.ros1.wire import Channel
        from pilotnet_optimized.nodes.ros1_bridge_node import RELAY
        ours, theirs = socket.socketpair()
        env = _ros1_env(os.environ, ROS_MASTER_URI=uri, ROS_IP='127.0.0.1')
        self.proc = subprocess.Popen([ROS1_PYTHON, str(RELAY), '--fd', str(theirs.fileno()),
                                      '--name', 'fake_gazebo'], pass_fds=(theirs.fileno(),),
                                     env=env, start_new_session=True)
        theirs.close()
        self.ch = Channel(ours)
        assert self.ch.recv()[0]['op'] == 'ready'
        self.commands: list[tuple[float, float]] = []
        self.calls: list[str] = []
        self.replies: dict[str, dict] = {}
        self._events: dict[str, threading.Event] = {}
        for topic, kind in (('/F1ROS/cameraL/image_raw', 'sensor_msgs/Image'),
                            ('/F1ROS/odom', 'nav_msgs/Odometry'),
                            ('/clock', 'rosgraph_msgs/Clock')):
            self.ch.send({'op': 'advertise', 'topic': topic, 'type': kind})
        self.ch.send({'op': 'subscribe', 'topic': '/F1ROS/cmd_vel', 'type': 'geometry_msgs/Twist'})
        self.fail, self.ok = fail, ok
        for service in (fail, ok):
            self.ch.send({'op': 'serve', 'service': service})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        from pilotnet_optimized.nodes.ros1.wire import ClosedError
        try:
            while True:
                header, payload = self.ch.recv()
                if header['op'] == 'msg':
                    lin, *_ = struct.unpack_from('<d', payload, 0)
                    ang = struct.unpack_from('<d', payload, 40)[0]
                    self.commands.append((lin, ang))
                elif header['op'] == 'call_in':
                    self.calls.append(header['service'])
                    ok = header['service'] == self.ok
                    self.ch.send({'op': 'reply', 'id': header['id'], 'ok': ok,
                                  'message': '' if ok else 'physics engine refused'})
                else:
                    self.replies[header['op']] = header
                    self._events.setdefault(header['op'], threading.Event()).set()
        except (ClosedError, OSError):
            pass

    def ask(self, header: dict) -> dict:
        event = self._events.setdefault(header['op'], threading.Event())
        event.clear()
        self.ch.send(header)
        assert event.wait(30), header
        return self.replies[header['op']]

    def wait_for_subscriber(self, topic: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.ask({'op': 'connections', 'topic': topic})['n'] < 1:
            assert time.monotonic() < deadline, f'nobody subscribed to {topic}'
            time.sleep(0.2)

    def publish_frame(self, seq: int) -> None:
        # sensor_msgs/Image in ROS 1: header (seq, stamp, frame_id), height, width, encoding,
        # is_bigendian, step, data.
        frame = bytes([seq % 256]) * (W * H * 3)
        header = struct.pack('<III', seq, seq, 0) + struct.pack('<I', 9) + b'cam_f1_le'
        body = struct.pack('<II', H, W) + struct.pack('<I', 4) + b'rgb8' + struct.pack(
            '<BI', 0, W * 3) + struct.pack('<I', len(frame)) + frame
        self.ch.send({'op': 'publish', 'topic': '/F1ROS/cameraL/image_raw'}, header + body)

    def close(self) -> None:
        self.ch.send({'op': 'shutdown'})
        self.proc.wait(timeout=20)
        self.ch.close()


def _bridge(uri: str, *params: str) -> list[str]:
    cmd = [sys.executable, '-m', 'pilotnet_optimized.nodes.ros1_bridge_node', '--ros-args']
    for p in params:
        cmd += ['-p', p]
    return cmd


def test_frames_commands_and_services_cross_the_bridge(roscore, ros_env, tmp_path):
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from geometry_msgs.msg import Twist
    from std_srvs.srv import Empty
    car = FakeCar(roscore, fail='/gazebo/pause_physics', ok='/gazebo/reset_world')
    report = tmp_path / 'bridge.json'
    env = {**os.environ, 'ROS_MASTER_URI': roscore, 'ROS_IP': '127.0.0.1'}
    log = open(tmp_path / 'bridge.log', 'w')
    bridge = subprocess.Popen(_bridge(roscore, f'report:={report}'), env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    rclpy.init()
    node = rclpy.create_node('ros1_bridge_test')
    got: list[Image] = []
    done = threading.Event()

    def on_image(msg: Image) -> None:
        got.append(msg)
        if len(got) >= FRAMES:
            done.set()
    node.create_subscription(Image, '/cam_f1_left/image_raw', on_image,
                             QoSProfile(depth=FRAMES, reliability=ReliabilityPolicy.RELIABLE))
    cmd = node.create_publisher(Twist, '/cmd_vel', 1)
    clients = {name: node.create_client(Empty, name)
               for name in ('/reset_world', '/pause_physics', '/unpause_physics')}
    spin = threading.Thread(target=rclpy.spin, args=(node,), daemon=True)
    spin.start()
    try:
        car.wait_for_subscriber('/F1ROS/cameraL/image_raw')
        deadline = time.monotonic() + 60
        while node.count_publishers('/cam_f1_left/image_raw') < 1:
            assert time.monotonic() < deadline and bridge.poll() is None, 'no bridge on ROS 2'
            time.sleep(0.1)
        time.sleep(1.0)   # matched in the graph is not yet matched for data
        for seq in range(1, FRAMES + 1):
            car.publish_frame(seq)
        assert done.wait(60), f'{len(got)} of {FRAMES} frames'
        assert [m.header.stamp.sec for m in got] == list(range(1, FRAMES + 1))
        assert got[-1].encoding == 'rgb8' and (got[-1].width, got[-1].height) == (W, H)
        assert bytes(got[7].data[:3]) == bytes([8, 8, 8])

        twist = Twist()
        twist.linear.x, twist.angular.z = 1.5, -0.25
        deadline = time.monotonic() + 30
        while (1.5, -0.25) not in car.commands:
            assert time.monotonic() < deadline, car.commands
            cmd.publish(twist)
            time.sleep(0.2)

        for name in clients:
            assert clients[name].wait_for_service(timeout_sec=30)
            future = clients[name].call_async(Empty.Request())
            deadline = time.monotonic() + 30
            while not future.done():
                assert time.monotonic() < deadline, name
                time.sleep(0.05)
        assert car.calls == ['/gazebo/reset_world', '/gazebo/pause_physics']
        # the failed pause and the missing unpause each stopped the car
        assert car.commands[-1] == (0.0, 0.0)
    finally:
        bridge.send_signal(2)
        bridge.wait(timeout=30)
        node.destroy_node()
        rclpy.try_shutdown()
        car.close()
        log.close()
    text = (tmp_path / 'bridge.log').read_text()
    assert '/gazebo/pause_physics failed: ' in text and 'physics engine refused' in text, text
    assert '/gazebo/unpause_physics failed: the ROS 1 master offers no' in text, text
    summary = json.loads(report.read_text())
    assert summary['frames_in'] == summary['frames_out'] == FRAMES, summary
    assert summary['lost'] == 0 and summary['reordered'] == 0 and summary['seq_gaps'] == 0
    assert summary['service_failures'] == 2 and summary['zero_commands'] >= 3
    assert summary['latency_p50_ms'] is not None


def test_no_ros1_master_is_one_line(ros_env):
    env = {**os.environ, 'ROS_MASTER_URI': f'http://127.0.0.1:{_free_port()}'}
    proc = subprocess.run(_bridge(''), env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert_one_line_error(proc, 'ros1_bridge_node: error: no ROS 1 master at', 'start roscore')


def test_a_master_without_the_car_is_one_line(roscore, ros_env):
    env = {**os.environ, 'ROS_MASTER_URI': roscore, 'ROS_IP': '127.0.0.1'}
    proc = subprocess.run(_bridge(roscore, 'wait_for_car:=1.0'), env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert_one_line_error(proc, 'no publisher of /F1ROS/cameraL/image_raw on the ROS 1 master')


def test_relay_never_imports_ros2():
    from pilotnet_optimized.nodes.ros1_bridge_node import RELAY
    text = (RELAY.parent / 'relay.py').read_text() + (RELAY.parent / 'wire.py').read_text()
    for name in ('rclpy', 'rosbags', 'pilotnet_optimized'):
        assert f'import {name}' not in text and f'from {name}' not in text
    assert Path(RELAY).is_file()


def test_sim_ros1_puts_the_bridge_in_the_graph(tmp_path):
    from pilotnet_optimized.nodes.graph import describe_graph
    specs = describe_graph({'model': '/m/a.tflite', 'sim': 'ros1', 'output_dir': str(tmp_path)})
    names = [s.name for s in specs]
    assert 'simulator_node' not in names
    assert names.index('ros1_bridge_node') < names.index('inference_node')
    bridge = specs[names.index('ros1_bridge_node')]
    assert bridge.parameters['report'] == str(tmp_path / 'ros1_bridge.json')
