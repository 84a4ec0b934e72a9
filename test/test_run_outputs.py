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
A run's outputs: the report (ROS-free), bags a killed writer left (ROS-free).

Then the real metrics and recorder nodes in a graph of node processes: `pilotnet run ...
record:=true` to the end, and a recorder killed mid-run.
"""

from __future__ import annotations

from collections.abc import Iterator
import dataclasses
import json
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import numpy as np
from pilotnet_optimized.bags.read import BAG_READ_ERRORS, open_bag
from pilotnet_optimized.bags.repair import bag_is_complete, repair_bag
from pilotnet_optimized.laps import (checkpoint_progress, compute_lap_metrics, PerfectLap,
                                     Trajectory)
from pilotnet_optimized.laps.report import (REPORT_JSON, REPORT_MD, RunReport, TIMING_FIELDS,
                                            write_report)
from pilotnet_optimized.nodes.graph import describe_graph, output_dir_of
from pilotnet_optimized.sim import get_circuit
from pilotnet_optimized.sim.episodes import drive_expert, perfect_lap_of
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BM_KEYS = {
    'completed_distance',
    'circuit_diameter',
    'percentage_completed',
    'lap_seconds',
    'average_speed',
    'run_seconds',
    'position_deviation_mean_m',
    'position_deviation_max_m',
    'position_deviation_bm',
    'laps_completed',
    'end_reason',
}
OUR_KEYS = {
    'inference_mean_ms',
    'inference_p50_ms',
    'inference_p90_ms',
    'inference_p99_ms',
    'end_to_end_p50_ms',
    'end_to_end_p90_ms',
    'end_to_end_p99_ms',
    'callback_p50_ms',
    'callback_p99_ms',
    'brain_loop_hz',
    'brain_loop_hz_wall',
    'frames',
    'real_time_factor',
    'sim_seconds',
    'model',
    'simulator',
}


# -- the report, without ROS ----------------------------------------------------------------------
def _lap_report(rng: np.random.Generator) -> tuple[RunReport, Trajectory, np.ndarray, PerfectLap]:
    """
    Return the expert's lap of the simple circuit fed to a report as odometry.

    The timing rows are made up.
    """
    circuit = get_circuit('simple')
    perfect = perfect_lap_of(circuit)
    traj = drive_expert(circuit, laps=1).trajectory
    report = RunReport(perfect, circuit='simple')
    timing = np.column_stack([rng.gamma(2.0, 2.0, len(traj)), rng.uniform(0, 5, len(traj)),
                              rng.uniform(0, 1, len(traj)), rng.uniform(5, 9, len(traj)), traj.t])
    for i in range(len(traj)):
        wall = traj.t[i] / 2.0  # twice as fast as real time
        report.add_odometry(traj.t[i], traj.xy[i, 0], traj.xy[i, 1], traj.yaw[i], wall=wall)
        report.add_timing(dict(zip(TIMING_FIELDS, timing[i], strict=True)), wall=wall)
    return report, traj, timing, perfect


def test_live_progress_goes_on_from_where_it_stopped(monkeypatch):
    """
    Progress asked for at odd moments, two laps long, equals the whole run's figures.

    It walks only the poses since the last call, so each answer must still be the whole run's:
    checkpoints, path, seconds, and the p50 of the latest frames. Small column blocks and window
    make a short run cross many of each.
    """
    from pilotnet_optimized.laps import report as report_module
    monkeypatch.setattr(report_module._Doubles, 'BLOCK', 64)
    monkeypatch.setattr(report_module, 'PROGRESS_WINDOW', 100)
    circuit = get_circuit('simple')
    perfect = perfect_lap_of(circuit)
    traj = drive_expert(circuit, laps=2).trajectory
    report = RunReport(perfect, circuit='simple')
    rng = np.random.default_rng(3)
    checks = set(rng.integers(0, len(traj), 40).tolist()) | {0, 1, 31, 32, 33, len(traj) - 1}
    for i in range(len(traj)):
        report.add_odometry(traj.t[i], traj.xy[i, 0], traj.xy[i, 1], traj.yaw[i])
        report.add_timing({'inference_ms': float(i % 11), 'image_stamp_s': traj.t[i]})
        if i not in checks:
            continue
        live = report.progress()
        reached = checkpoint_progress(traj.xy[:i + 1], perfect).reached
        assert live['percentage_completed'] == round(reached / len(perfect) * 100, 3), i
        path = Trajectory(t=traj.t[:i + 1], xy=traj.xy[:i + 1]).path_length()
        assert live['completed_distance'] == pytest.approx(path, abs=2e-3), i
        assert live['sim_seconds'] == pytest.approx(traj.t[i] - traj.t[0], abs=1e-3)
        window = np.arange(max(0, i + 1 - 100), i + 1) % 11
        assert live['inference_p50_ms'] == pytest.approx(np.percentile(window, 50), abs=1e-4)
    assert report.progress()['percentage_completed'] > 199.0


def test_timing_rows_before_the_first_pose_are_dropped_and_counted():
    """The brain's publisher replays its last rows to a late subscriber: not this run's frames."""
    report = RunReport(None)
    assert report.add_timing({'inference_ms': 1.0, 'image_stamp_s': 3.0})   # no pose yet: taken
    report.add_odometry(5.0, 0.0, 0.0)
    assert not report.add_timing({'inference_ms': 9.0, 'image_stamp_s': 4.95})
    assert report.add_timing({'inference_ms': 2.0, 'image_stamp_s': 5.0})
    assert report.add_timing({'inference_ms': 2.0})                          # no stamp: taken
    out = report.end('interrupted')
    assert out['timing_rows_before_start'] == 1 and out['timing_samples'] == 3
    assert out['inference_p50_ms'] == pytest.approx(2.0)


def test_a_late_timing_subscriber_gets_the_rows_sent_before_it_matched(ros_context):
    """
    Matching is one-sided: the brain's timing publisher may match the metrics node late.

    What it published before (the first frames' rows) must still reach it: the profile keeps
    the last rows for a subscriber that matches later.
    """
    from pilotnet_optimized.nodes import qos
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from std_msgs.msg import Float64MultiArray

    brain = Node('early_brain', context=ros_context)
    observer = Node('late_observer', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    for node in (brain, observer):
        executor.add_node(node)
    try:
        timing = brain.create_publisher(Float64MultiArray, '/early_brain/timing', qos.TIMING)
        for i in range(5):
            timing.publish(Float64MultiArray(data=[float(i)]))
        rows: list[float] = []
        observer.create_subscription(Float64MultiArray, '/early_brain/timing',
                                     lambda m: rows.append(m.data[0]), qos.TIMING)
        _spin_until(executor, lambda: len(rows) >= 5, 10, 'the rows sent before the match')
        assert rows == [0.0, 1.0, 2.0, 3.0, 4.0]
    finally:
        executor.shutdown()
        for node in (brain, observer):
            node.destroy_node()


def test_report_of_a_full_lap():
    report, traj, timing, perfect = _lap_report(np.random.default_rng(0))
    # a frame answered twice counts once ...
    report.add_timing(timing[5])
    assert report.frames == len(traj)
    assert not report.add_odometry(traj.t[3], 0.0, 0.0)           # ... an old pose is dropped
    progress = report.progress()
    assert progress['percentage_completed'] > 99.5 and progress['frames'] == len(traj)
    out = report.end('laps_done', {'event': 'end', 'end_reason': 'laps_done', 'frames': len(traj)})
    assert BM_KEYS | OUR_KEYS <= set(out)
    expected = compute_lap_metrics(traj, perfect).to_dict()
    for key in BM_KEYS - {'end_reason'}:
        assert out[key] == expected[key], key
    assert out['percentage_completed'] == pytest.approx(100.0, abs=0.5)
    assert out['completed_distance'] == pytest.approx(get_circuit('simple').length, rel=0.02)
    inference = np.append(timing[:, 0], timing[5, 0])
    for q in (50, 90, 99):
        assert out[f'inference_p{q}_ms'] == pytest.approx(np.percentile(inference, q), abs=1e-4)
    assert out['inference_mean_ms'] == pytest.approx(inference.mean(), abs=1e-4)
    assert out['end_to_end_p99_ms'] == pytest.approx(
        np.percentile(np.append(timing[:, 1], timing[5, 1]), 99), abs=1e-4
    )
    # 20 Hz
    assert out['brain_loop_hz'] == pytest.approx((len(traj) - 1) / traj.duration, rel=1e-3)
    assert out['real_time_factor'] == pytest.approx(2.0, rel=1e-3)
    assert out['simulator'] == {'end_reason': 'laps_done', 'frames': len(traj)}
    assert out['end_reason'] == 'laps_done' and out['frames'] == len(traj)
    # Ended: later input is ignored, a second end gives the first result.
    report.add_odometry(1e6, 0.0, 0.0)
    assert report.end('interrupted') is out


def test_report_without_data_and_without_perfect_lap_is_still_valid_json(tmp_path):
    empty = RunReport(perfect_lap_of(get_circuit('simple')), circuit='simple').end('interrupted')
    assert (
        empty['frames'] == 0
        and empty['percentage_completed'] is None
        and empty['inference_p50_ms'] is None
    )
    no_lap = RunReport(None)
    for t in range(5):
        no_lap.add_odometry(t * 0.5, t * 1.0, 0.0)
    out = no_lap.end('interrupted')
    assert (
        out['completed_distance'] == 4.0
        and out['average_speed'] == 2.0
        and out['percentage_completed'] is None
    )
    json_path, md_path = write_report(out, tmp_path / 'new' / 'folder')
    assert json.loads(json_path.read_text(encoding='utf-8'))['completed_distance'] == 4.0
    assert '| distance | 4.0 m |' in md_path.read_text(encoding='utf-8')
    # no temporary left
    assert sorted(p.name for p in json_path.parent.iterdir()) == [REPORT_JSON, REPORT_MD]


def test_timing_fields_are_the_inference_nodes():
    inference_node = pytest.importorskip(
        'pilotnet_optimized.nodes.inference_node', reason='needs rclpy'
    )
    assert TIMING_FIELDS is inference_node.TIMING_FIELDS   # imported, not a copy that could drift


# -- bags a killed writer left, without ROS -------------------------------------------------------
# The script's own lines run over 99 columns (hence the noqa at its end).
_WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    String, Image = store.types['std_msgs/msg/String'], store.types['sensor_msgs/msg/Image']
    Header, Time = store.types['std_msgs/msg/Header'], store.types['builtin_interfaces/msg/Time']
    writer = Writer(sys.argv[1], version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    text = writer.add_connection('/text', 'std_msgs/msg/String', typestore=store)
    image = writer.add_connection('/image', 'sensor_msgs/msg/Image', typestore=store)
    frame = store.serialize_cdr(Image(header=Header(stamp=Time(sec=0, nanosec=0), frame_id='c'), height=480,
                                      width=640, encoding='rgb8', is_bigendian=0, step=1920,
                                      data=np.zeros(640 * 480 * 3, np.uint8)), 'sensor_msgs/msg/Image')
    i = 0
    while True:
        writer.write(text, i, store.serialize_cdr(String(data=str(i)), 'std_msgs/msg/String'))
        if i % 10 == 0:
            writer.write(image, i, frame)
        i += 1
        if i == 1000:
            print('written', flush=True)
""")  # noqa: E501


def test_a_killed_writers_bag_is_repaired_and_read(tmp_path):
    """
    Check that repair_bag keeps every complete record of a bag whose writer was killed.

    rosbags' MCAP writer killed mid-write leaves no metadata.yaml and no footer, and usually half a
    chunk.
    """
    bag = tmp_path / 'bag'
    proc = subprocess.Popen(
        [sys.executable, '-c', _WRITER, str(bag)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == 'written'
        time.sleep(0.3)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert not (bag / 'metadata.yaml').exists() and not bag_is_complete(bag)
    size = (bag / 'bag.mcap').stat().st_size
    from rosbags.highlevel import AnyReader
    with pytest.raises(
        Exception
    ):  # noqa: B017 - whatever rosbags raises: the point is that it cannot read it
        with AnyReader([bag]):
            pass
    # Read-only, the one reader streams it as it is, with a warning.
    with open_bag(bag) as source:
        assert source.warnings and not bag_is_complete(bag)
        unrepaired = []
        with pytest.raises(BAG_READ_ERRORS):   # where the file is cut off
            for message in source.messages({'/text'}):
                unrepaired.append(int(message.decode().data))
    (fix,) = repair_bag(bag)
    assert fix.repaired and 0 <= fix.dropped_bytes < 2 ** 21 and bag_is_complete(bag)
    assert (bag / 'bag.mcap').stat().st_size <= size + 64
    with open_bag(bag) as source:
        assert not source.warnings
        counts = {c.topic: c.msgcount for c in source.connections}
        texts = [int(m.decode().data) for m in source.messages({'/text'})]
        image = next(m.decode() for m in source.messages({'/image'}))
    # Everything up to the last complete chunk, in order, with nothing missing in between.
    assert texts == list(range(len(texts))) and len(texts) >= 100
    assert unrepaired == texts   # the stream read what the repair kept
    assert counts['/image'] == (len(texts) + 9) // 10
    assert (image.width, image.height, image.encoding) == (640, 480, 'rgb8')
    meta = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert meta['message_count'] == len(texts) + counts['/image']
    assert repair_bag(bag)[0].repaired is False   # a second repair finds a complete bag


def test_a_bag_cut_inside_a_record_loses_only_that_record(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores

    store = get_typestore(Stores.ROS2_KILTED)
    bag = tmp_path / 'bag'
    writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conn = writer.add_connection('/text', 'std_msgs/msg/String', typestore=store)
    blob = 'x' * 20_000   # 20 kB messages: 1 MiB chunks of ~50 messages
    for i in range(300):
        writer.write(
            conn,
            i,
            store.serialize_cdr(
                store.types['std_msgs/msg/String'](data=f'{i} {blob}'), 'std_msgs/msg/String'
            ),
        )
    writer.close()
    data = (bag / 'bag.mcap').read_bytes()
    (bag / 'bag.mcap').write_bytes(data[:len(data) // 2])   # inside a chunk record
    (bag / 'metadata.yaml').unlink()
    fix, = repair_bag(bag)
    assert fix.repaired and fix.dropped_bytes > 0
    with open_bag(bag) as source:
        texts = [int(m.decode().data.split()[0]) for m in source.messages()]
    assert 50 <= len(texts) < 300 and texts == list(range(len(texts)))


# -- the real graph -------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def model(tiny_driver: dict[str, Path]) -> Path:
    pytest.importorskip('rclpy', reason='rclpy is installed by scripts/setup.sh (ros-pypi extra)')
    return tiny_driver['float']


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for: {what}')
        time.sleep(0.05)


@pytest.fixture()
def ros_context(ros_env: dict[str, str]) -> Iterator[Any]:
    """Yield an rclpy context of its own (in this process), on the test's domain."""
    import rclpy
    from rclpy.context import Context
    context = Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


def _spin_until(executor: Any, predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for: {what}')
        executor.spin_once(timeout_sec=0.02)


def test_recorder_imports_on_humbles_rclpy(monkeypatch):
    """
    Humble's rclpy has no ``rclpy.event_handler`` (Iron renamed ``rclpy.qos_event`` to it).

    The recorder takes the same classes from ``rclpy.qos_event`` there. Humble is simulated:
    ``event_handler`` cannot be imported, and ``qos_event`` holds what Humble's holds (the two
    classes the recorder uses).
    """
    pytest.importorskip('rclpy', reason='rclpy is installed by scripts/setup.sh (ros-pypi extra)')
    import importlib
    import types

    import rclpy.event_handler as current

    humble = types.ModuleType('rclpy.qos_event')
    humble.SubscriptionEventCallbacks = current.SubscriptionEventCallbacks
    humble.QoSRequestedIncompatibleQoSInfo = current.QoSRequestedIncompatibleQoSInfo
    # `import rclpy.event_handler` fails
    monkeypatch.setitem(sys.modules, 'rclpy.event_handler', None)
    monkeypatch.setitem(sys.modules, 'rclpy.qos_event', humble)
    monkeypatch.delitem(sys.modules, 'pilotnet_optimized.nodes.recorder_node', raising=False)
    recorder = importlib.import_module('pilotnet_optimized.nodes.recorder_node')
    assert recorder.SubscriptionEventCallbacks is humble.SubscriptionEventCallbacks
    assert recorder.QoSRequestedIncompatibleQoSInfo is humble.QoSRequestedIncompatibleQoSInfo


def test_recorder_subscribes_to_the_graphs_topics_before_they_have_publishers(
    ros_context, tmp_path
):
    """
    The graph's own topics are subscribed at start-up (known types, the publishers' QoS).

    The latched status, a volatile command and a best-effort frame published right after the
    publishers appear are all in the bag; a topic of unknown type is still recorded once it has a
    publisher; every subscription is raw.
    """
    from geometry_msgs.msg import Twist
    from pilotnet_optimized.bags.images import rgb_to_image
    from pilotnet_optimized.nodes import qos
    from pilotnet_optimized.nodes.recorder_node import DEFAULT_TOPICS, KNOWN_TOPICS, RecorderNode
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from std_msgs.msg import Int32, String

    topics = [*DEFAULT_TOPICS, '/extra']
    recorder = RecorderNode(context=ros_context, parameter_overrides=[
        Parameter('output_dir', value=str(tmp_path)), Parameter('topics', value=topics)])
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(recorder)
    try:
        # before any publisher
        assert set(recorder._recording) == set(KNOWN_TOPICS) == set(DEFAULT_TOPICS)
        assert all(sub.raw for sub in recorder._recording.values())
        probe = Node('probe', context=ros_context)
        executor.add_node(probe)
        status = probe.create_publisher(String, '/sim/status', qos.STATUS)
        # before the recorder matched: latched
        status.publish(String(data='{"event": "ready"}'))
        cmd = probe.create_publisher(Twist, '/cmd_vel', qos.COMMAND)
        image = probe.create_publisher(Image, '/cam_f1_left/image_raw', qos.CAMERA)
        extra = probe.create_publisher(Int32, '/extra', qos.COMMAND)
        _spin_until(
            executor,
            lambda: cmd.get_subscription_count() and image.get_subscription_count(),
            10,
            'the recorder matching the command and camera publishers',
        )
        cmd.publish(Twist())
        image.publish(rgb_to_image(np.zeros((480, 640, 3), np.uint8)))
        _spin_until(
            executor,
            lambda: '/extra' in recorder._recording,
            10,
            'the lazy subscription to /extra',
        )
        _spin_until(
            executor, lambda: extra.get_subscription_count(), 10, 'the recorder matching /extra'
        )
        extra.publish(Int32(data=7))
        _spin_until(
            executor,
            lambda: all(
                recorder.counts.get(t)
                for t in ('/sim/status', '/cmd_vel', '/extra', '/cam_f1_left/image_raw')
            ),
            10,
            'the messages in the bag',
        )
        recorder.close()
    finally:
        executor.shutdown()
        recorder.destroy_node()
    with open_bag(tmp_path / 'bag') as source:
        counts = {c.topic: c.msgcount for c in source.connections}
        types = dict(source.topics)
        data = {}
        for m in source.messages():
            data.setdefault(m.topic, []).append(m.decode())
    texts = [m.data for m in data['/sim/status']]
    extras = [m.data for m in data['/extra']]
    assert counts['/sim/status'] == 1 and texts == ['{"event": "ready"}']
    assert counts['/cmd_vel'] == 1 and counts['/cam_f1_left/image_raw'] == 1 and extras == [7]
    assert types['/extra'] == 'std_msgs/msg/Int32' and types['/odom'] == 'nav_msgs/msg/Odometry'


def test_simulator_waits_for_its_observers_and_a_brain(ros_context):
    """
    wait_for_observers: no run before that many subscribers of odometry and status.

    A node that only subscribes to the camera (a recorder) is not a brain.
    """
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from pilotnet_optimized.nodes import qos
    from pilotnet_optimized.nodes.simulator_node import SimulatorNode
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    sim = SimulatorNode(
        context=ros_context, parameter_overrides=[Parameter('wait_for_observers', value=1)]
    )
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(sim)
    nodes = []

    def add(name: str) -> Node:
        node = Node(name, context=ros_context)
        executor.add_node(node)
        nodes.append(node)
        return node

    def spin_for(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.02)

    try:
        camera_only = add('camera_only')   # as a recorder: the camera, no commands
        camera_only.create_subscription(
            Image, '/cam_f1_left/image_raw', lambda m: None, qos.CAMERA
        )
        commands_only = add('commands_only')
        commands_only.create_publisher(Twist, '/cmd_vel', qos.COMMAND)
        spin_for(1.0)
        assert not sim._brain_present() and sim._state == 'waiting'
        brain = add('brain')
        brain.create_subscription(Image, '/cam_f1_left/image_raw', lambda m: None, qos.CAMERA)
        brain.create_publisher(Twist, '/cmd_vel', qos.COMMAND)
        _spin_until(executor, sim._brain_present, 10, 'the brain in the graph')
        spin_for(1.0)   # twice the settling time: only the observer is missing
        assert sim._state == 'waiting'
        observer = add('observer')
        observer.create_subscription(Odometry, '/odom', lambda m: None, qos.ODOMETRY)
        spin_for(1.0)
        assert sim._state == 'waiting'   # odometry only: it would miss the start event
        observer.create_subscription(String, '/sim/status', lambda m: None, qos.STATUS)
        _spin_until(executor, lambda: sim._state == 'running', 10, 'the run to start')
    finally:
        executor.shutdown()
        for node in [*nodes, sim]:
            node.destroy_node()


def test_first_frame_waits_for_the_observers_inputs_to_match(ros_context):
    """
    Lock-step: the first frame waits until each observer has matched the brain's timing.

    An observer that took the start pose but whose timing subscription has not matched the
    brain's publisher yet would lose the timing of the first frames (a short run's, all of it).
    Here the observer is a hand-made node that says what it has matched, as the metrics node does.
    """
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from pilotnet_optimized.nodes import qos, topics
    from pilotnet_optimized.nodes.simulator_node import SimulatorNode
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float64MultiArray, String

    sim = SimulatorNode(
        context=ros_context, parameter_overrides=[Parameter('wait_for_observers', value=1)]
    )
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(sim)
    brain = Node('brain', context=ros_context)
    observer = Node('observer', context=ros_context)
    frames: list[Image] = []
    brain.create_subscription(Image, topics.CAMERA, frames.append, qos.CAMERA)
    brain.create_publisher(Twist, topics.COMMAND, qos.COMMAND)
    brain.create_publisher(Float64MultiArray, '/brain/timing', qos.TIMING)
    acks = observer.create_publisher(String, topics.OBSERVED, qos.ACK)
    odometry: list[int] = []
    observer.create_subscription(
        Odometry, topics.ODOMETRY,
        lambda m: odometry.append(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec),
        qos.ODOMETRY,
    )
    observer.create_subscription(String, topics.SIM_STATUS, lambda m: None, qos.STATUS)
    for node in (brain, observer):
        executor.add_node(node)

    def ack(matched: int) -> None:
        acks.publish(String(data=json.dumps({
            'node': '/observer', 'odom_ns': odometry[-1], 'frame_ns': None,
            'inputs': {'/brain/timing': matched},
        })))

    try:
        _spin_until(executor, lambda: sim._state == 'running' and odometry, 20, 'the start pose')
        _spin_until(executor, lambda: sim.count_publishers('/brain/timing') == 1, 10,
                    "the brain's timing publisher in the simulator's graph")
        ack(0)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.02)
        assert sim._pending_frame and sim._frames == 0 and not frames, (
            'the first frame went out before the observer matched the timing'
        )
        ack(1)
        _spin_until(executor, lambda: bool(frames), 10, 'the first frame, once matched')
        assert sim._frames == 1
    finally:
        executor.shutdown()
        for node in (brain, observer, sim):
            node.destroy_node()


def test_a_lost_brain_leaves_its_car_stopped(ros_context):
    """
    A brain lost while driving: the end event's last command is zero, not its last order.

    Its node may leave the graph before a command timeout's zero step (SIGKILL under load).
    """
    from pilotnet_optimized.nodes import qos, topics
    from pilotnet_optimized.nodes.simulator_node import SimulatorNode
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from std_msgs.msg import String

    sim = SimulatorNode(context=ros_context)
    probe = Node('status_probe', context=ros_context)
    events: list[dict] = []
    probe.create_subscription(String, topics.SIM_STATUS,
                              lambda m: events.append(json.loads(m.data)), qos.STATUS)
    executor = SingleThreadedExecutor(context=ros_context)
    for node in (sim, probe):
        executor.add_node(node)
    try:
        sim._advance(12.0, 0.4)      # the brain's last order, applied
        sim._lose_brain('its node left the graph')
        _spin_until(executor, lambda: any(e.get('event') == 'end' for e in events), 10,
                    'the end event')
        end = next(e for e in events if e.get('event') == 'end')
        assert end['end_reason'] == 'brain_lost' and end['last_command'] == [0.0, 0.0]
    finally:
        executor.shutdown()
        for node in (sim, probe):
            node.destroy_node()


def test_an_observer_acknowledges_again_when_an_input_matches(ros_context):
    """
    The first frame is held for it: an observer must say so itself when its input matches.

    It acknowledged the start pose with nothing matched; once the brain's publisher appears, a
    new acknowledgement says one publisher is matched, without new odometry to trigger it.
    """
    from pilotnet_optimized.nodes import qos, topics
    from pilotnet_optimized.nodes.observer import matched_publishers, ObserverAck, parse_ack
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from std_msgs.msg import Float64MultiArray, String

    observer = Node('observer', context=ros_context)
    probe = Node('probe', context=ros_context)
    timing = observer.create_subscription(
        Float64MultiArray, '/late_brain/timing', lambda m: None, qos.TIMING
    )
    out = ObserverAck(
        observer, lambda: {'/late_brain/timing': matched_publishers(observer, timing)}
    )
    heard: list[Any] = []
    probe.create_subscription(String, topics.OBSERVED, lambda m: heard.append(
        parse_ack(m.data)), qos.ACK)
    executor = SingleThreadedExecutor(context=ros_context)
    for node in (observer, probe):
        executor.add_node(node)
    try:
        _spin_until(executor, lambda: probe.count_publishers(topics.OBSERVED) > 0, 10, 'acks')
        time.sleep(0.5)
        executor.spin_once(timeout_sec=0.1)
        out.send(0)
        _spin_until(executor, lambda: bool(heard), 10, 'the first acknowledgement')
        assert heard[-1] == ('/observer', 0, None, {'/late_brain/timing': 0})
        brain = Node('brain', context=ros_context)
        brain.create_publisher(Float64MultiArray, '/late_brain/timing', qos.TIMING)
        _spin_until(executor, lambda: heard[-1][3] == {'/late_brain/timing': 1}, 10,
                    'an acknowledgement with the match')
        assert heard[-1][:3] == ('/observer', 0, None)
        brain.destroy_node()
    finally:
        executor.shutdown()
        for node in (observer, probe):
            node.destroy_node()


def test_run_with_record_writes_report_and_bag(model, ros_env, tmp_path):
    """
    Check ``pilotnet run ... record:=true`` to the end of the run.

    Commands flow, the report agrees with the simulator's end event, the bag holds the run.
    """
    from pilotnet_optimized.nodes.recorder_node import DEFAULT_TOPICS
    out_dir = tmp_path / 'run'
    proc = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'pilotnet_optimized.nodes.runner',
            f'model:={model}',
            'circuit:=simple',
            'laps:=1',
            'record:=true',
            f'output_dir:={out_dir}',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, 'PYTHONUNBUFFERED': '1'},
    )
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        # the runner stops its nodes (each in a session of its own)
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        flake = 'no brain after' in out
        pytest.fail(
            (
                'discovery failure: the simulator never saw the brain, and drove on zero commands'
                if flake
                else 'the run did not end within 90 s'
            )
            + '\n'
            + out[-5000:]
        )
    print(out)   # shown when the test fails
    assert proc.returncode in (0, 3), out[-3000:]
    end = json.loads(re.search(r'run ended: \w+; (\{.*\})', out).group(1))
    # the tiny model leaves the road within a second; enough frames to judge the flow
    assert end['frames'] >= 5

    # The report: Behavior Metrics' keys and ours, in agreement with the simulator's own figures.
    report = json.loads((out_dir / REPORT_JSON).read_text())
    assert BM_KEYS | OUR_KEYS <= set(report)
    assert report['end_reason'] == end['end_reason']
    assert (
        report['simulator']['frames'] == end['frames']
        and report['simulator']['mode'] == 'lockstep'
    )
    assert report['frames'] == end['frames']
    # The simulator publishes the start pose when the run starts, once the metrics node and the
    # recorder have matched its odometry (wait_for_observers): the report has every step from the
    # start.
    assert report['percentage_completed'] == pytest.approx(end['percentage_completed'], abs=0.5)
    assert 0 <= end['completed_distance'] - report['completed_distance'] <= 1.25
    assert report['sim_seconds'] == pytest.approx(end['sim_seconds'], abs=0.051)
    assert (
        0 < report['inference_p50_ms'] <= report['inference_p90_ms'] <= report['inference_p99_ms']
    )
    assert report['callback_p50_ms'] >= report['inference_p50_ms']
    # lock-step: answered within the same simulated instant
    assert report['end_to_end_p50_ms'] == 0.0
    # one frame per 0.05 s of simulated time
    assert report['brain_loop_hz'] == pytest.approx(20.0, rel=0.05)
    assert report['brain_loop_hz_wall'] > 1 and report['real_time_factor'] > 0
    assert report['model']['path'] == str(model) and report['model']['backend']
    assert (out_dir / REPORT_MD).read_text().startswith('# Run on simple')

    # The bag: closed cleanly, every topic, counts that match the frames.
    bag = out_dir / 'bag'
    assert bag_is_complete(bag)
    with open_bag(bag) as source:
        counts = {c.topic: c.msgcount for c in source.connections}
        # The graph's topics are subscribed when the recorder starts, before any publisher exists.
        assert set(counts) == set(DEFAULT_TOPICS), counts
        assert counts[
            '/cmd_vel'
        ], f"the recorder had not matched the brain's publishers when the run ended: {counts}"
        frames = end['frames']
        # best effort, resends
        assert frames * 0.8 <= counts['/cam_f1_left/image_raw'] <= frames + 20, counts
        assert counts['/cmd_vel_stamped'] >= frames * 0.95, counts   # one answer per frame
        # plus watchdog zeros and the final zero
        assert counts['/cmd_vel'] >= counts['/cmd_vel_stamped']
        assert frames * 0.95 <= counts['/odom'] <= frames + 1, counts
        assert counts['/inference_node/timing'] >= frames * 0.95
        assert counts['/sim/status'] >= 2 and counts['/inference_node/status'] >= 1
        image = next(source.messages({'/cam_f1_left/image_raw'})).decode()
        assert (image.width, image.height, image.encoding, len(image.data)) == (
            640,
            480,
            'rgb8',
            640 * 480 * 3,
        )
        times = [m.record_ns for m in source.messages({'/odom'})]
        first = next(source.messages({'/odom'})).decode()
        # the start pose, at t = 0
        assert (first.header.stamp.sec, first.header.stamp.nanosec) == (0, 0)
        # Receive times on the simulated clock: within the run's simulated time.
        assert times == sorted(times) and times[-1] / 1e9 <= end['sim_seconds'] + 0.2
        statuses = [json.loads(m.decode().data) for m in source.messages({'/sim/status'})]
        assert statuses[-1]['event'] == 'end' and statuses[-1]['frames'] == frames
    assert 'run report (' in out and f'bag {bag}:' in out
    assert output_dir_of(describe_graph({'model': str(model), 'output_dir': str(out_dir)})) == str(
        out_dir
    )


def test_killed_recorder_leaves_a_readable_bag(model, ros_env, tmp_path):
    """
    SIGKILL the recorder mid-run.

    The bag is repaired and read back, with messages up to the last flush.
    """
    out_dir = tmp_path / 'run'
    specs = {
        s.name: s
        for s in describe_graph(
            {'model': str(model), 'record': 'true', 'output_dir': str(out_dir)}
        )
    }
    # Restart instead of exiting, so that frames keep flowing; receive times on the wall clock, to
    # compare with the time of the kill. No metrics node here: the recorder is the one observer the
    # simulator waits for.
    sim_params = {
        **specs['simulator_node'].parameters,
        'on_end': 'restart',
        'wait_for_observers': 1,
    }
    sim = dataclasses.replace(specs['simulator_node'], parameters=sim_params)
    rec = dataclasses.replace(
        specs['recorder_node'],
        parameters={**specs['recorder_node'].parameters, 'use_sim_time': False},
    )
    procs: dict[str, subprocess.Popen] = {}
    lines: dict[str, list[str]] = {}
    try:
        for spec in (rec, sim, specs['inference_node']):
            proc = subprocess.Popen(
                spec.command(sys.executable),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**os.environ, **spec.env, 'PYTHONUNBUFFERED': '1'},
                text=True,
                start_new_session=True,
            )
            procs[spec.name], lines[spec.name] = proc, []
            threading.Thread(
                target=lambda p=proc, buf=lines[spec.name]: buf.extend(p.stdout), daemon=True
            ).start()
        meta_path = out_dir / 'bag' / 'metadata.yaml'

        def camera_count() -> int:
            try:
                meta = yaml.safe_load(meta_path.read_text())['rosbag2_bagfile_information']
            except (OSError, TypeError, KeyError, yaml.YAMLError):
                return 0
            return sum(t['message_count'] for t in meta['topics_with_message_count']
                       if t['topic_metadata']['name'] == '/cam_f1_left/image_raw')

        # metadata.yaml is rewritten at every flush while recording: wait for 40 frames in it.
        _wait_for(lambda: camera_count() >= 40, 90, '40 camera frames flushed to the bag')
        time.sleep(1.0)
        before = yaml.safe_load(meta_path.read_text())['rosbag2_bagfile_information']
        killed_at = time.time()
        procs['recorder_node'].kill()
        procs['recorder_node'].wait(timeout=10)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for name, proc in procs.items():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            print(
                f'--- {name} (exit {proc.returncode}) ---\n' + ''.join(lines.get(name, []))[-3000:]
            )
    bag = out_dir / 'bag'
    assert not bag_is_complete(bag)
    assert before['custom_data']['complete'] == 'false'
    fixes = repair_bag(bag)
    assert fixes[0].repaired
    with open_bag(bag) as source:
        counts = {c.topic: c.msgcount for c in source.connections}
        last = max(m.record_ns for m in source.messages())
        image = next(source.messages({'/cam_f1_left/image_raw'})).decode()
    assert (image.width, image.height, image.encoding) == (640, 480, 'rgb8')
    print(
        f'\nkilled recorder: {sum(counts.values())} messages kept ({counts}),'
        f' {fixes[0].dropped_bytes} bytes of a cut-off record dropped, last message'
        f' {killed_at - last / 1e9:.2f} s before the kill'
    )
    # Nothing that was flushed (and counted in metadata.yaml) before the kill is lost ...
    for entry in before['topics_with_message_count']:
        assert counts[entry['topic_metadata']['name']] >= entry['message_count'], (entry, counts)
    # ... and the bag reaches to within a flush period (0.5 s) of the kill.
    assert killed_at - last / 1e9 < 1.5, killed_at - last / 1e9
    assert counts['/odom'] > 0 and counts['/cmd_vel'] > 0


def test_recorder_keeps_its_chunk_index_on_disk_and_the_bag_reads_back(tmp_path):
    """
    A long recording's chunk-index records go to a temporary file, not memory.

    The bag's summary still lists every chunk, for rosbags and for Foxglove's reader.
    """
    from mcap.reader import make_reader
    from pilotnet_optimized.nodes.recorder_node import _spill_chunk_index, _SpilledRecords
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores
    store = get_typestore(Stores.ROS2_KILTED)
    bag = tmp_path / 'bag'
    writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    assert _spill_chunk_index(writer) and isinstance(writer.storage.chunks, _SpilledRecords)
    assert not _spill_chunk_index(writer)   # only an empty list is replaced
    conn = writer.add_connection('/text', 'std_msgs/msg/String', typestore=store)
    String = store.types['std_msgs/msg/String']
    for i in range(200):
        writer.write(conn, i, store.serialize_cdr(String(data=f'{i:05d}' * 8), conn.msgtype))
        writer.storage.close_chunk()   # as the recorder's flush does: a chunk per message here
    chunks = len(writer.storage.chunks)
    writer.close()
    assert chunks == 200
    with open(bag / 'bag.mcap', 'rb') as f:
        reader = make_reader(f)
        assert len(reader.get_summary().chunk_indexes) == 200
        assert sum(1 for _ in reader.iter_messages()) == 200
    with open_bag(bag) as source:
        texts = [m.decode().data[:5] for m in source.messages({'/text'})]
    assert texts == [f'{i:05d}' for i in range(200)]
