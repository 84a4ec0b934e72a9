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
The `pilotnet` command as a user runs it.

A real subprocess, its exit code, stdout and stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import cv2
from helpers import assert_one_line_error
import numpy as np
import pytest

BAGS = Path(__file__).resolve().parents[2] / 'shared' / 'behavior_metrics' / 'perfect_bags'
needs_bags = pytest.mark.skipif(
    not BAGS.is_dir(), reason=f'Behavior Metrics perfect laps not found at {BAGS}'
)


def pilotnet(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-m', 'pilotnet_optimized', *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_help_lists_every_subcommand():
    proc = pilotnet('--help')
    assert proc.returncode == 0
    for sub in (
        'circuits',
        'drive-expert',
        'render',
        'dataset',
        'bench-sim',
        'laps',
        'train',
        'steer',
        'drive',
        'optimize',
        'evaluate',
        'run',
        'demo',
        'compare',
        'bag-eval',
        'bench-latency',
        'bag-repair',
    ):
        assert sub in proc.stdout
        sub_help = pilotnet(sub, '--help')
        assert sub_help.returncode == 0 and 'example' in sub_help.stdout


def test_circuits_json():
    proc = pilotnet('circuits', '--json')
    assert proc.returncode == 0, proc.stderr
    rows = {r['name']: r for r in json.loads(proc.stdout)}
    assert {'simple', 'many_curves', 'long_fast', 'hairpins'} <= set(rows)
    assert rows['simple']['length_m'] == pytest.approx(460, rel=0.02)


def test_drive_expert_prints_lap_metrics():
    proc = pilotnet('drive-expert', '--circuit', 'simple', '--json')
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out['end_reason'] == 'laps_done'
    assert out['percentage_completed'] >= 100
    assert out['lap_seconds'] > 0 and out['average_speed'] > 6.5
    table = pilotnet('drive-expert', '--circuit', 'hairpins')
    assert table.returncode == 0 and 'percentage_completed' in table.stdout


def test_render_writes_a_frame(tmp_path):
    out = tmp_path / 'f.png'
    proc = pilotnet('render', '--circuit', 'simple', '--s', '30', '--out', str(out))
    assert proc.returncode == 0, proc.stderr
    assert cv2.imread(str(out)).shape == (480, 640, 3)


def test_dataset_command(tmp_path):
    proc = pilotnet(
        'dataset',
        '--circuit',
        'many_curves',
        '--frames',
        '5',
        '--out',
        str(tmp_path / 'd'),
        '--json',
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row['frames'] == 5 and row['seconds'] > 0
    assert row['frames_per_s'] == pytest.approx(5 / row['seconds'], rel=0.1)
    assert len(list((tmp_path / 'd').glob('*.png'))) == 5
    again = pilotnet(
        'dataset', '--circuit', 'many_curves', '--frames', '5', '--out', str(tmp_path / 'd')
    )
    assert_one_line_error(again, 'overwrite')


def test_bench_sim_json():
    proc = pilotnet('bench-sim', '--frames', '50', '--steps', '2000', '--json')
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    rows = {r['what']: r for r in result['rows']}
    assert rows['render frame']['count'] == 50 and rows['render frame']['per_second'] > 0
    assert rows['kinematics step']['p50_us'] <= rows['kinematics step']['p99_us']


def test_unknown_circuit_is_one_clear_line():
    assert_one_line_error(
        pilotnet('drive-expert', '--circuit', 'monza'), "unknown circuit 'monza'", 'simple'
    )


def test_csv_with_missing_columns_is_one_clear_line(tmp_path):
    bad = tmp_path / 'run.csv'
    bad.write_text('t,x\n0,1\n1,2\n')
    good = tmp_path / 'perfect.csv'
    good.write_text('t,x,y\n0,0,0\n1,1,0\n2,1,1\n')
    assert_one_line_error(
        pilotnet('laps', '--trajectory', str(bad), '--perfect-lap', str(good)), 'y'
    )


def test_missing_file_is_one_clear_line(tmp_path):
    proc = pilotnet(
        'laps',
        '--trajectory',
        str(tmp_path / 'nope.bag'),
        '--perfect-lap',
        str(tmp_path / 'x.bag'),
    )
    assert_one_line_error(proc, 'nope.bag')


@needs_bags
def test_laps_on_each_perfect_lap_against_itself():
    lengths = {
        'simple-circuit': 463.4,
        'montmelo': 764.8,
        'montreal': 1513.1,
        'nurburgring': 586.6,
    }
    for name, length in lengths.items():
        bag = str(BAGS / f'lap-{name}.bag')
        proc = pilotnet('laps', '--trajectory', bag, '--perfect-lap', bag, '--json')
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out['percentage_completed'] == pytest.approx(100.0)
        assert out['position_deviation_mean_m'] == pytest.approx(0.0, abs=1e-6)
        assert out['position_deviation_max_m'] == pytest.approx(0.0, abs=1e-6)
        assert out['completed_distance'] == pytest.approx(length, abs=0.1)
        # Behavior Metrics' "diameter" stops at the first point within 1 m of the start.
        assert out['circuit_diameter'] == pytest.approx(length, abs=1.0)


@needs_bags
def test_expert_run_judged_against_a_perfect_lap(tmp_path):
    bag = BAGS / 'lap-nurburgring.bag'
    run = tmp_path / 'run.csv'
    drive = pilotnet('drive-expert', '--circuit', str(bag), '--trajectory-out', str(run), '--json')
    assert drive.returncode == 0, drive.stderr
    proc = pilotnet('laps', '--trajectory', str(run), '--perfect-lap', str(bag), '--json')
    out = json.loads(proc.stdout)
    assert out['percentage_completed'] >= 99.0
    assert out['position_deviation_mean_m'] < 1.0


def test_bag_without_odometry_is_one_clear_line(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores
    store = get_typestore(Stores.ROS2_HUMBLE)
    path = tmp_path / 'no_odom'
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=store)
        msg = store.types['std_msgs/msg/String'](data='hello')
        writer.write(conn, 1, store.serialize_cdr(msg, 'std_msgs/msg/String'))
    proc = pilotnet('laps', '--trajectory', str(path), '--perfect-lap', str(path))
    assert_one_line_error(proc, 'Odometry')


def test_help_imports_neither_tensorflow_nor_rclpy():
    code = (
        'import sys\nfrom pilotnet_optimized.cli import main\nfor argv in (["--help"],'
        ' ["optimize", "--help"], ["laps", "--help"]):\n    try:\n        main(argv)\n    except'
        ' SystemExit:\n        pass\nheavy = sorted(m for m in ("tensorflow", "tf_keras", "rclpy",'
        ' "onnxruntime") if m in sys.modules)\nprint("heavy:", heavy)\n'
    )
    proc = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert 'heavy: []' in proc.stdout, proc.stdout[-500:]


def _odometry_bag(path: Path, xy: list[tuple[float, float]]) -> None:
    """
    Write a rosbag2 MCAP bag of nav_msgs/Odometry at 20 Hz through the points ``xy``.

    With 100 kB padding messages on another topic so that the writer closes a 1 MiB chunk every
    hundred poses or so (as camera frames do).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores
    store = get_typestore(Stores.ROS2_HUMBLE)
    t = store.types
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conn = writer.add_connection('/odom', 'nav_msgs/msg/Odometry', typestore=store)
    pad = writer.add_connection('/pad', 'std_msgs/msg/String', typestore=store)
    padding = store.serialize_cdr(
        t['std_msgs/msg/String'](data='x' * 100_000), 'std_msgs/msg/String'
    )
    for i, (x, y) in enumerate(xy):
        ns = i * 50_000_000
        if i % 10 == 0:
            writer.write(pad, ns, padding)
        stamp = t['builtin_interfaces/msg/Time'](sec=ns // 10 ** 9, nanosec=ns % 10 ** 9)
        pose = t['geometry_msgs/msg/PoseWithCovariance'](
            pose=t['geometry_msgs/msg/Pose'](
                position=t['geometry_msgs/msg/Point'](x=x, y=y, z=0.0),
                orientation=t['geometry_msgs/msg/Quaternion'](x=0, y=0, z=0, w=1),
            ),
            covariance=np.zeros(36),
        )
        twist = t['geometry_msgs/msg/TwistWithCovariance'](
            twist=t['geometry_msgs/msg/Twist'](
                linear=t['geometry_msgs/msg/Vector3'](x=0, y=0, z=0),
                angular=t['geometry_msgs/msg/Vector3'](x=0, y=0, z=0),
            ),
            covariance=np.zeros(36),
        )
        msg = t['nav_msgs/msg/Odometry'](
            header=t['std_msgs/msg/Header'](stamp=stamp, frame_id='odom'),
            child_frame_id='base',
            pose=pose,
            twist=twist,
        )
        writer.write(conn, ns + 1, store.serialize_cdr(msg, 'nav_msgs/msg/Odometry'))
    writer.close()


def test_laps_reads_a_cut_off_bag_read_only_and_bag_repair_mends_it(tmp_path):
    """
    A bag a killed recorder left (no footer, no metadata.yaml).

    `pilotnet laps` reads it up to the cut with a warning and changes nothing; `pilotnet
    bag-repair` then makes it a complete bag with the same poses.
    """
    from pilotnet_optimized.bags.repair import bag_is_complete
    from pilotnet_optimized.sim import get_circuit
    circuit = get_circuit('simple')
    xy = [tuple(map(float, circuit.pose_at(s)[:2])) for s in np.arange(0.0, circuit.length, 0.5)]
    perfect = tmp_path / 'perfect.csv'
    perfect.write_text('t,x,y\n' + ''.join(f'{i * 0.05},{x},{y}\n' for i, (x, y) in enumerate(xy)))
    bag = tmp_path / 'bag'
    _odometry_bag(bag, xy)
    mcap = bag / 'bag.mcap'
    data = mcap.read_bytes()
    mcap.write_bytes(data[:len(data) // 2])
    (bag / 'metadata.yaml').unlink()
    cut = mcap.read_bytes()
    proc = pilotnet('laps', '--trajectory', str(bag), '--perfect-lap', str(perfect), '--json')
    assert proc.returncode == 0, proc.stderr
    assert 'warning' in proc.stderr and 'cut off' in proc.stderr
    read_cut = json.loads(proc.stdout)
    assert 10 < read_cut['percentage_completed'] < 90
    assert mcap.read_bytes() == cut and not (bag / 'metadata.yaml').exists()   # read-only
    repair = pilotnet('bag-repair', str(bag))
    assert repair.returncode == 0, repair.stderr
    assert 'repaired' in repair.stdout and '/odom (nav_msgs/msg/Odometry)' in repair.stdout
    assert bag_is_complete(bag)
    again = pilotnet('laps', '--trajectory', str(bag), '--perfect-lap', str(perfect), '--json')
    assert again.returncode == 0 and 'warning' not in again.stderr
    assert json.loads(again.stdout)['percentage_completed'] == pytest.approx(
        read_cut['percentage_completed'], abs=1.0
    )
