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

Also the ROS-free parts: the report completed by the runner, exit wording, the shared-memory
clean-up, and Foxglove's ``mcap`` reader on the recorder's compressed bags.
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
@pytest.mark.parametrize('victim,sig', [('recorder_node', signal.SIGKILL),
                                        ('metrics_node', signal.SIGTERM)])
def test_a_lost_observer_ends_the_run_as_observer_lost(ros_env, tmp_path, victim, sig):
    report, counts, text = _run_and_kill(tmp_path, victim, sig)
    assert report['end_reason'] == 'observer_lost', text[-3000:]
    assert f'/{victim}' in report['cause'], report['cause']
    assert report['nodes'][f'/{victim}']['process']['state'] in ('killed', 'exited')
    assert counts['/odom'] > 0 and counts['/cam_f1_left/image_raw'] >= 40
    assert report['_code'] != 0


@needs_ros
def test_a_killed_simulator_is_named_and_the_car_gets_a_zero(ros_env, tmp_path):
    report, counts, text = _run_and_kill(tmp_path, 'simulator_node', signal.SIGKILL)
    assert report['end_reason'] == 'node_lost', text[-3000:]
    assert 'simulator_node killed by SIGKILL' in report['cause']
    # The brain's watchdog (no images) and its final zero at the stop.
    assert report['_last_cmd'] == (0.0, 0.0)
    assert report['_code'] == 137


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
