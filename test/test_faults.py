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
Faults named, nothing lost: a recorded lock-step graph under ``pilotnet run``, one node killed.

Every node, SIGKILL and SIGTERM. Also the ROS-free parts: the report completed by the runner, exit
wording, the shared-memory clean-up, Foxglove's ``mcap`` reader on the recorder's compressed bags,
and the words of issue 11's "Found" list: a cut-off bag, a missing model name, and the inference
node in this process (model_path during a swap, a load holding the interpreter, image warnings per
cause, frames too small).
"""

from __future__ import annotations

import dataclasses
import fcntl
import io
import json
import os
from pathlib import Path
import signal
import threading
import time

from helpers import FakeBackend
from pilotnet_optimized.bags.read import open_bag
from pilotnet_optimized.bags.repair import bag_is_complete, repair_bag
from pilotnet_optimized.laps.report import complete_report, REPORT_JSON
from pilotnet_optimized.nodes.graph import describe_graph
from pilotnet_optimized.nodes.process import clean_dead_shm, describe_exit, exit_status
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# The shipped default model drives laps, so that a run lasts long enough to kill a node in it.
DRIVER = ROOT / 'models' / 'default' / 'pilotnet_nvidia.keras'


# -- without ROS ----------------------------------------------------------------------------------
def test_exit_wording_names_the_signal_and_the_shell_status():
    assert describe_exit(-9) == 'killed by SIGKILL (exit status 137)' and exit_status(-9) == 137
    assert describe_exit(3) == 'exit code 3' and exit_status(3) == 3


def test_runner_completes_a_report_the_metrics_node_never_wrote(tmp_path):
    end = {'event': 'end', 'end_reason': 'observer_lost', 'frames': 12,
           'observers_lost': {'/metrics_node': 'left the graph'}}
    complete_report(tmp_path, {'metrics_node': {'state': 'killed', 'how': 'killed by SIGKILL'}},
                    'metrics_node killed by SIGKILL during the run', end)
    report = json.loads((tmp_path / REPORT_JSON).read_text())
    assert report['end_reason'] == 'observer_lost' and report['simulator']['frames'] == 12
    assert report['cause'] == 'observer lost: /metrics_node (left the graph)'
    assert report['nodes']['/metrics_node']['process']['state'] == 'killed'


def test_an_interrupted_report_with_a_dead_node_says_node_lost(tmp_path):
    (tmp_path / REPORT_JSON).write_text(json.dumps({'end_reason': 'interrupted',
                                                    'simulator': None, 'nodes': {}}))
    complete_report(tmp_path, {'simulator_node': {'state': 'killed'}},
                    'simulator_node killed by SIGKILL (exit status 137) during the run')
    report = json.loads((tmp_path / REPORT_JSON).read_text())
    assert report['end_reason'] == 'node_lost' and 'simulator_node killed' in report['cause']


def test_an_episodes_run_gets_its_node_states_in_its_summary_not_a_made_up_report(tmp_path):
    (tmp_path / 'summary.json').write_text(json.dumps({'repetitions': 3, 'completed': 3}))
    end = {'event': 'episodes_end', 'repetitions': 3, 'completed': 3, 'exit_code': 0}
    path = complete_report(tmp_path, {'episode_node': {'state': 'exited', 'exit_code': 0}},
                           None, end)
    summary = json.loads(path.read_text())
    assert path.name == 'summary.json' and not (tmp_path / REPORT_JSON).exists()
    assert summary['completed'] == 3 and summary['cause'] is None
    assert summary['nodes']['/episode_node']['process']['exit_code'] == 0


def test_shared_memory_of_dead_owners_is_removed_and_of_living_ones_kept(tmp_path):
    for name in ('fastdds_dead', 'fastdds_alive', 'other_thing'):
        (tmp_path / name).write_bytes(b'x' * 10)
        (tmp_path / f'{name}_el').write_bytes(b'')
    (tmp_path / 'sem.fastdds_dead_mutex').write_bytes(b'')
    fd = os.open(tmp_path / 'fastdds_alive_el', os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)   # as a living participant holds it
    try:
        assert clean_dead_shm(tmp_path, min_age_s=2.0) == []   # too young to judge
        old = time.time() - 60
        for f in tmp_path.iterdir():
            os.utime(f, (old, old))
        assert clean_dead_shm(tmp_path) == ['fastdds_dead']
    finally:
        os.close(fd)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ['fastdds_alive', 'fastdds_alive_el', 'other_thing', 'other_thing_el']


@pytest.mark.parametrize('argv,words', [
    ('bench-sim --frames 0', 'argument --frames: 0 is too small: give 1 or more'),
    ('bench-sim --frames -3', 'argument --frames: -3 is too small'),
    ('evaluate --limit 0', 'argument --limit: 0 is too small'),
    ('evaluate --runs 0', 'argument --runs: 0 is too small'),
    ('drive --laps 0', 'argument --laps: 0 is too small'),
    ('drive-expert --laps -1', 'argument --laps: -1 is too small'),
    ('dataset --circuit simple --frames 5 --out {file}', 'is a file, not a folder: give a new'),
    ('dataset --circuit simple --frames 5 --out {file}/x', 'is a file, not a folder'),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, argv, words):
    import subprocess
    import sys
    existing = tmp_path / 'taken.csv'
    existing.write_text('x')
    proc = subprocess.run([sys.executable, '-m', 'pilotnet_optimized',
                           *argv.format(file=existing).split()],
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if 'error:' in line]
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr
    assert len(lines) == 1 and words in lines[0], proc.stderr


# -- a real graph, one node killed ----------------------------------------------------------------
class _Out(io.StringIO):
    """The runner's prefixed output, shown when a test fails."""


def _camera_flushed(bag: Path) -> int:
    try:
        meta = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    except (OSError, TypeError, KeyError, yaml.YAMLError):
        return 0
    return sum(t['message_count'] for t in meta['topics_with_message_count']
               if t['topic_metadata']['name'] == '/cam_f1_left/image_raw')


def _run_and_kill(tmp_path: Path, victim: str | None, sig: int) -> tuple[dict, dict, str]:
    """
    Run ``pilotnet run ... record:=true`` with the default model; kill ``victim`` mid-run.

    Returns the report, the bag's counts per topic and the runner's output.
    """
    from pilotnet_optimized.nodes.runner import GraphRunner
    out_dir = tmp_path / 'run'
    specs = describe_graph({'model': str(DRIVER), 'record': 'true', 'laps': '3',
                            'output_dir': str(out_dir)})
    # Short fault timeouts: the test waits seconds, not the defaults' tens of seconds.
    specs = [dataclasses.replace(s, parameters={**s.parameters, 'brain_timeout': 2.0,
                                                'observer_timeout': 3.0})
             if s.name == 'simulator_node' else s for s in specs]
    out = _Out()
    runner = GraphRunner(specs, stop_timeout=10.0, out=out)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(runner.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 150
    while _camera_flushed(out_dir / 'bag') < 40:
        assert time.monotonic() < deadline and thread.is_alive(), out.getvalue()[-5000:]
        time.sleep(0.2)
    if victim is None:
        runner.request_stop()
    else:
        runner.procs[victim].send(sig)
    thread.join(timeout=120)
    text = out.getvalue()
    print(text[-6000:])
    assert not thread.is_alive(), text[-5000:]
    report = json.loads((out_dir / REPORT_JSON).read_text())
    if not bag_is_complete(out_dir / 'bag'):   # a killed recorder's: readable once repaired
        assert victim == 'recorder_node' and sig == signal.SIGKILL
        assert repair_bag(out_dir / 'bag')[0].repaired
    with open_bag(out_dir / 'bag') as bag:
        counts = {c.topic: c.msgcount for c in bag.connections}
        last_cmd = None
        for m in bag.messages({'/cmd_vel'}):
            last_cmd = m.decode()
    report['_last_cmd'] = (last_cmd.linear.x, last_cmd.angular.z) if last_cmd else None
    report['_code'] = codes[0]
    return report, counts, text


needs_ros = pytest.mark.skipif(not DRIVER.is_file(), reason='the shipped default model is missing')


@needs_ros
@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGTERM], ids=['SIGKILL', 'SIGTERM'])
def test_a_killed_brain_ends_the_run_as_brain_lost(ros_env, tmp_path, sig):
    report, counts, text = _run_and_kill(tmp_path, 'inference_node', sig)
    sim = report['simulator']
    assert report['end_reason'] == 'brain_lost', text[-3000:]
    assert 'brain lost: /inference_node' in report['cause']
    # SIGTERM: the brain leaves the graph at once, and may still be shutting down at the end.
    assert report['nodes']['/inference_node']['process']['state'] in ('killed', 'exited')
    # The car: zero (stepped with zero commands, or the brain's own final zero at SIGTERM).
    assert sim['last_command'] == [0.0, 0.0] or report['_last_cmd'] == (0.0, 0.0)
    # Lock-step, nothing lost: the bag and the report hold every message the simulator published.
    assert counts['/odom'] == sim['published']['/odom'] == report['odometry_messages']
    assert counts['/cam_f1_left/image_raw'] == sim['published']['/cam_f1_left/image_raw']
    assert report['_code'] != 0


@needs_ros
@pytest.mark.parametrize('victim,sig', [
    ('recorder_node', signal.SIGKILL), ('recorder_node', signal.SIGTERM),
    ('metrics_node', signal.SIGKILL), ('metrics_node', signal.SIGTERM),
], ids=['recorder-SIGKILL', 'recorder-SIGTERM', 'metrics-SIGKILL', 'metrics-SIGTERM'])
def test_a_lost_observer_ends_the_run_as_observer_lost(ros_env, tmp_path, victim, sig):
    report, counts, text = _run_and_kill(tmp_path, victim, sig)
    sim = report['simulator']
    assert report['end_reason'] == 'observer_lost', text[-3000:]
    assert f'/{victim}' in report['cause'], report['cause']
    assert sim['observers_lost'].get(f'/{victim}'), sim['observers_lost']
    assert report['nodes'][f'/{victim}']['process']['state'] in ('killed', 'exited')
    assert report['_code'] != 0
    # The car: the brain's final zero command when the runner stops the graph.
    assert 'published a final zero command' in text, text[-3000:]
    # A readable bag (a SIGKILLed recorder's once repaired) and counts that agree.
    assert counts['/odom'] > 0 and counts['/cam_f1_left/image_raw'] >= 40
    published = sim['published']
    if victim == 'metrics_node':
        # The recorder saw the whole run, lock-step: every message the simulator published.
        assert counts['/odom'] == published['/odom'], (counts, published)
        assert counts['/cam_f1_left/image_raw'] == published['/cam_f1_left/image_raw']
    else:
        # The metrics node saw the whole run; the bag holds what the recorder had written.
        assert report['odometry_messages'] == published['/odom'], (report, published)
        assert counts['/odom'] <= published['/odom']
        if sig == signal.SIGTERM:   # a clean stop: nothing it had received is lost
            assert bag_is_complete(tmp_path / 'run' / 'bag')


@needs_ros
@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGTERM], ids=['SIGKILL', 'SIGTERM'])
def test_a_stopped_simulator_is_named_and_the_car_gets_a_zero(ros_env, tmp_path, sig):
    report, counts, text = _run_and_kill(tmp_path, 'simulator_node', sig)
    state = report['nodes']['/simulator_node']['process']
    # The brain's watchdog (no images) and its final zero at the stop.
    assert report['_last_cmd'] == (0.0, 0.0)
    if sig == signal.SIGKILL:
        assert report['end_reason'] == 'node_lost', text[-3000:]
        assert 'simulator_node killed by SIGKILL' in report['cause']
        assert state['state'] == 'killed' and report['_code'] == 137
        # Nothing from the simulator: the observers' own counts agree with each other.
        assert counts['/odom'] == report['odometry_messages']
    else:
        # Stopped, not crashed: it ends its run itself and says so.
        assert report['end_reason'] == 'interrupted', text[-3000:]
        assert report['simulator']['end_reason'] == 'interrupted'
        assert state['state'] == 'exited'
        published = report['simulator']['published']
        assert counts['/odom'] == published['/odom'] == report['odometry_messages']
        assert counts['/cam_f1_left/image_raw'] == published['/cam_f1_left/image_raw']


def test_foxglove_mcap_reads_compressed_bags(tmp_path):
    """The recorder's chunk compression, as it sets it on rosbags' writer, for every choice."""
    from mcap.reader import make_reader
    from pilotnet_optimized.nodes.recorder_node import _set_chunk_compression
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores
    store = get_typestore(Stores.LATEST)
    Odometry = store.types['nav_msgs/msg/Odometry']
    sizes = {}
    for choice in ('zstd', 'lz4', 'none'):
        path = tmp_path / choice
        writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        assert _set_chunk_compression(writer, choice) == choice
        conn = writer.add_connection('/odom', 'nav_msgs/msg/Odometry', typestore=store)
        msg = Odometry.__msgtype__
        template = store.serialize_cdr(_odometry(store), msg)
        for i in range(3000):
            writer.write(conn, i * 50_000_000, template)
        writer.close()
        with (path / f'{choice}.mcap').open('rb') as fh:
            reader = make_reader(fh)
            chunks = {c.compression for c in reader.get_summary().chunk_indexes}
            n = sum(1 for _ in reader.iter_messages())
        assert n == 3000 and chunks == {'' if choice == 'none' else choice}
        with open_bag(path) as bag:
            assert sum(1 for _ in bag.messages({'/odom'})) == 3000
        sizes[choice] = (path / f'{choice}.mcap').stat().st_size
    assert sizes['zstd'] < sizes['none'] and sizes['lz4'] < sizes['none']


def _odometry(store):
    t = store.types
    Header, Time = t['std_msgs/msg/Header'], t['builtin_interfaces/msg/Time']
    Pose, PoseC = t['geometry_msgs/msg/Pose'], t['geometry_msgs/msg/PoseWithCovariance']
    Point, Quat = t['geometry_msgs/msg/Point'], t['geometry_msgs/msg/Quaternion']
    Twist, TwistC = t['geometry_msgs/msg/Twist'], t['geometry_msgs/msg/TwistWithCovariance']
    Vec = t['geometry_msgs/msg/Vector3']
    import numpy as np
    return t['nav_msgs/msg/Odometry'](
        Header(Time(1, 2), 'odom'), 'base_link',
        PoseC(Pose(Point(1.0, 2.0, 0.0), Quat(0.0, 0.0, 0.0, 1.0)), np.zeros(36)),
        TwistC(Twist(Vec(1.0, 0.0, 0.0), Vec(0.0, 0.0, 0.1)), np.zeros(36)))


# -- Found 5: the words ---------------------------------------------------------------------------
def _odometry_bag(path: Path, n: int) -> Path:
    """Write a rosbag2 MCAP bag of ``n`` poses round a 50 m circle, one every 0.05 s."""
    import math as m
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores
    store = get_typestore(Stores.LATEST)
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conn = writer.add_connection('/odom', 'nav_msgs/msg/Odometry', typestore=store)
    msg = _odometry(store)
    for i in range(n):
        a = i * 0.01
        msg.pose.pose.position.x, msg.pose.pose.position.y = 50 * m.cos(a), 50 * m.sin(a)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(i * 50_000_000, 1_000_000_000)
        writer.write(conn, 1_000_000_000 + i * 50_000_000,
                     store.serialize_cdr(msg, 'nav_msgs/msg/Odometry'))
    writer.close()
    return path


def test_laps_on_a_cut_off_bag_says_it_was_cut_off_and_how_to_repair_it(tmp_path):
    import math as m
    import subprocess
    import sys
    bag = _odometry_bag(tmp_path / 'bag', 6000)   # a few 1 MiB chunks
    mcap = bag / 'bag.mcap'
    os.truncate(mcap, int(mcap.stat().st_size * 0.6))   # as a SIGKILLed recorder leaves it
    lap = tmp_path / 'lap.csv'
    lap.write_text('t,x,y\n' + ''.join(
        f'{i * 0.05},{50 * m.cos(i * 0.01)},{50 * m.sin(i * 0.01)}\n' for i in range(629)))

    def laps() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, '-m', 'pilotnet_optimized', 'laps', '--trajectory',
                               str(bag), '--perfect-lap', str(lap), '--json'],
                              capture_output=True, text=True, timeout=120)

    proc = laps()
    assert proc.returncode == 0, proc.stderr
    assert 'File end magic is invalid' not in proc.stderr
    assert 'the bag was cut off' in proc.stderr, proc.stderr
    assert f'`pilotnet bag-repair {bag}`' in proc.stderr
    cut = json.loads(proc.stdout)
    assert 0 < cut['points'] < 6000
    # The repair it names: afterwards the same figures, and no warning.
    assert repair_bag(bag)[0].repaired
    again = laps()
    assert again.returncode == 0 and 'warning' not in again.stderr, again.stderr
    assert json.loads(again.stdout)['points'] == cut['points']


def test_a_missing_model_name_lists_every_folder_looked_in(tmp_path, monkeypatch):
    from pilotnet_optimized.errors import ModelError
    from pilotnet_optimized.store import resolve_model
    # A fresh clone: only the shipped model, no models/optimized, no models/default/optimized.
    (tmp_path / 'models' / 'default').mkdir(parents=True)
    (tmp_path / 'models' / 'default' / 'pilotnet_nvidia.keras').write_bytes(b'')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as err:
        resolve_model('missingname')
    assert str(err.value) == (
        "model 'missingname' not found: looked in models/optimized (no such folder: `pilotnet "
        'optimize --out models/optimized` writes it); models/default/optimized (no such folder: '
        '`pilotnet demo` writes it); models/default (models there: pilotnet_nvidia)')
    assert resolve_model('pilotnet_nvidia') == tmp_path / 'models/default/pilotnet_nvidia.keras'
    # After `pilotnet demo`, its names are found without models_dir:=.
    (tmp_path / 'models' / 'default' / 'optimized').mkdir()
    (tmp_path / 'models' / 'default' / 'optimized' / 'dynamic.tflite').write_bytes(b'')
    assert resolve_model('dynamic').name == 'dynamic.tflite'
    with pytest.raises(ModelError, match=r'models/default/optimized \(models there: dynamic\);'
                                         r".*\(did you mean 'dynamic'\?\)"):
        resolve_model('dynamc')


class _Captured:
    """Stands in for the command publisher: keeps what the node publishes, in order."""

    def __init__(self) -> None:
        self.msgs: list = []

    def publish(self, msg) -> None:
        self.msgs.append((time.monotonic(), msg.linear.x, msg.angular.z))

    def wait_for_all_acked(self, timeout) -> bool:
        return True


@pytest.fixture()
def brain(ros_env, tmp_path):
    """Make an inference node in this process with ``loader``; spin it with ``spin=True``."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from pilotnet_optimized.nodes.inference_node import InferenceNode
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env['ROS_DOMAIN_ID']))
    first = tmp_path / 'first.tflite'
    first.write_bytes(b'')
    made, threads = [], []
    executor = SingleThreadedExecutor(context=context)

    def make(loader=lambda path, backend, threads: FakeBackend(path), spin=False, **params):
        node = InferenceNode(context=context, loader=loader, parameter_overrides=[
            Parameter(k, value=v) for k, v in {'model_path': str(first), **params}.items()])
        node._cmd_pub = _Captured()
        made.append(node)
        if spin:
            executor.add_node(node)
            thread = threading.Thread(target=executor.spin, daemon=True)
            thread.start()
            threads.append(thread)
        return node

    make.context = context
    make.executor = executor
    make.first = first
    yield make
    executor.shutdown(timeout_sec=2)
    for node in made:
        node.destroy_node()
    rclpy.try_shutdown(context=context)
    for thread in threads:
        thread.join(timeout=5)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f'timed out after {timeout} s waiting for: {what}'
        time.sleep(0.02)


def _image(width: int = 640, height: int = 480, encoding: str = 'rgb8'):
    import numpy as np
    from pilotnet_optimized.bags.images import rgb_to_image
    msg = rgb_to_image(np.full((height, width, 3), 90, np.uint8), 'rgb8')
    msg.encoding = encoding
    return msg


def test_model_path_reads_the_model_in_use_until_the_new_one_drives(brain, tmp_path):
    from rclpy.parameter import Parameter
    release = threading.Event()

    def loader(path, backend, threads):
        if 'slow' in path:
            assert release.wait(60)
            if 'bad' in path:
                raise RuntimeError('not a model')
        return FakeBackend(path)

    from rcl_interfaces.srv import GetParameters, SetParameters
    node = brain(loader, spin=True)
    # As `ros2 param set` and `ros2 param get` do it: over the node's parameter services.
    client = node.create_client(SetParameters, '/inference_node/set_parameters')
    getter = node.create_client(GetParameters, '/inference_node/get_parameters')
    assert client.wait_for_service(timeout_sec=10) and getter.wait_for_service(timeout_sec=10)

    def call(cli, request):
        future = cli.call_async(request)
        _wait(future.done, 10, f'{cli.srv_name} answered')
        return future.result()

    def set_model(path: Path) -> bool:
        msg = Parameter('model_path', value=str(path)).to_parameter_msg()
        return call(client, SetParameters.Request(parameters=[msg])).results[0].successful

    def read() -> str:
        return call(getter, GetParameters.Request(names=['model_path'])).values[0].string_value

    slow, bad = tmp_path / 'slow.tflite', tmp_path / 'slow_bad.tflite'
    slow.write_bytes(b'')
    bad.write_bytes(b'')
    assert set_model(slow)
    # Accepted, loading: the parameter reads the model that still drives.
    _wait(lambda: read() == str(brain.first), 10, 'model_path read back as the model in use')
    time.sleep(0.5)
    assert read() == str(brain.first) and node.backend.model_path == brain.first
    release.set()
    _wait(lambda: node.backend.model_path == slow, 10, 'the swap')
    _wait(lambda: read() == str(slow), 10, 'model_path reads the new model once it drives')
    # A swap that fails: the old path all along, and the old model still driving.
    release.clear()
    assert set_model(bad)
    _wait(lambda: read() == str(slow), 10, 'model_path read back while the bad one loads')
    release.set()
    time.sleep(1.0)
    assert read() == str(slow) and node.backend.model_path == slow


def test_a_load_holding_the_interpreter_does_not_trip_the_camera_watchdog(brain, tmp_path, capfd):
    """A model load on the worker thread that holds the GIL (as TensorFlow's import does)."""
    import ctypes
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from pilotnet_optimized.nodes import qos, topics

    def loader(path, backend, threads):
        if 'keras' in path:
            ctypes.PyDLL(None).usleep(2_000_000)   # 2 s with the GIL held: nothing else runs
        return FakeBackend(path)

    node = brain(loader, spin=True)
    camera = node.create_publisher(Image, topics.CAMERA, qos.CAMERA)
    stop = threading.Event()

    def publish() -> None:
        frame = _image()
        while not stop.wait(0.05):
            camera.publish(frame)

    feeder = threading.Thread(target=publish, daemon=True)
    feeder.start()
    try:
        cmds = node._cmd_pub.msgs
        _wait(lambda: sum(1 for _, v, _ in cmds if v != 0.0) >= 10, 30, 'commands from images')
        driving_since = next(t for t, v, _ in cmds if v != 0.0)
        slow = tmp_path / 'slow.keras'
        slow.write_bytes(b'')
        assert node.set_parameters([Parameter('model_path', value=str(slow))])[0].successful
        _wait(lambda: node.backend.model_path == slow, 30, 'the slow model swapped in')
        swapped = len(cmds)
        _wait(lambda: len(cmds) >= swapped + 10, 30, 'commands after the swap')
    finally:
        stop.set()
        feeder.join(timeout=5)
    err = capfd.readouterr().err
    assert 'no camera image' not in err, err
    assert [v for t, v, _ in cmds if t > driving_since and v == 0.0] == []
    assert 'the node was held up for' in err, err


def test_each_image_error_cause_has_its_own_throttle(brain, capfd):
    node = brain()
    short = _image(4, 2)
    short.step = 10
    for _ in range(3):
        node._on_image(_image(encoding='mono16'))
        node._on_image(short)
        node._on_image(_image(encoding='bgra8'))
    err = capfd.readouterr().err
    assert err.count("unsupported image encoding 'mono16'") == 1, err
    assert err.count("unsupported image encoding 'bgra8'") == 1, err
    assert err.count('image step 10 is shorter') == 1, err
    assert node._cmd_pub.msgs == []


def test_frames_too_small_for_the_preprocessing_get_one_warning_and_a_zero(brain, capfd):
    from pilotnet_optimized.models.preprocess import Preprocessing
    from pilotnet_optimized.nodes.inference_node import min_frame_size
    assert min_frame_size(Preprocessing()) == (200, 132)
    node = brain()
    for width, height in ((8, 6), (1, 1), (640, 100), (150, 480)):
        node._on_image(_image(width, height))
    err = capfd.readouterr().err
    assert [v for _, v, _ in node._cmd_pub.msgs] == [0.0] * 4
    assert err.count('is too small') == 1, err
    assert ('camera image 8x6 is too small: the model preprocessing needs at least 200x132 (crop'
            ' from row 240 of 480, resize to 200x66): publishing a zero command') in err
    assert 'ERROR' not in err and 'inference failed' not in err, err
    node._on_image(_image(200, 132))   # the smallest that drives
    assert node._cmd_pub.msgs[-1][1] > 0.0
