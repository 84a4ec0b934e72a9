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
`pilotnet bag-eval`: bags written here with rosbags (rosbag2 MCAP and sqlite3, ROS 1).

Replayed through models.

The commands in each bag are model A's own predictions for its frames, so model A must score MSE ~
0 (float32 round-off: below 1e-10 on normalised labels, MAE below 1e-4 m/s and rad/s) and model B,
initialised differently, clearly more.
"""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import cv2
from helpers import assert_one_line_error
import numpy as np
from pilotnet_optimized.bags.images import message_to_rgb
from pilotnet_optimized.errors import BagError, ImageError
from pilotnet_optimized.evaluate.bag import evaluate_bag, read_bag_frames, write_reports
import pytest
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

FRAMES = 10
# 4 Hz: answer windows (max_delay 0.2 s) of consecutive frames do not overlap
DT_NS = 250_000_000
T0_NS = 1_700_000_000 * 10 ** 9
MSE_SAME = 1e-10              # model A against its own predictions
MAE_SAME = 1e-4


@pytest.fixture(scope='module')
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """
    Two untrained PilotNets (narrow head) with different initial weights.

    Both are float32 TFLite files.
    """
    from pilotnet_optimized.models.pilotnet import build_pilotnet
    from pilotnet_optimized.optimize import to_tflite
    import tf_keras
    root = tmp_path_factory.mktemp('bag_models')
    paths = {}
    for name, seed in (('a', 1), ('b', 2)):
        tf_keras.utils.set_random_seed(seed)
        paths[name] = to_tflite(build_pilotnet(head_units=16), root / f'{name}.tflite')
    return paths


@pytest.fixture(scope='module')
def drive(models: dict[str, Path]) -> tuple[list[np.ndarray], np.ndarray]:
    """
    Return frames along the simple circuit and model A's (v, w) for each.

    The frames are 640x480 RGB from the simulator's camera.
    """
    from pilotnet_optimized.backends import load_backend
    from pilotnet_optimized.sim import CameraRenderer, get_circuit
    circuit = get_circuit('simple')
    renderer = CameraRenderer(circuit)
    frames = []
    for i in range(FRAMES):
        x, y, yaw = circuit.pose_at(12.0 * i, 0.3 * np.sin(i))
        frames.append(renderer.render(x, y, yaw + 0.05 * np.cos(i)))
    with load_backend(models['a']) as a:
        vw = np.array([a.predict(f) for f in frames])
    with load_backend(models['b']) as b:
        vw_b = np.array([b.predict(f) for f in frames])
    assert (
        np.abs(vw - vw_b).max() > 0.1
    ), 'models A and B must disagree for the test to mean anything'
    return frames, vw


# -- writing bags ---------------------------------------------------------------------------------
def _stamp(store, ns: int):
    return store.types['builtin_interfaces/msg/Time'](sec=ns // 10 ** 9, nanosec=ns % 10 ** 9)


def _header(store, ns: int, ros1: bool = False):
    Header = store.types['std_msgs/msg/Header']
    if ros1:
        return Header(seq=0, stamp=_stamp(store, ns), frame_id='cam')
    return Header(stamp=_stamp(store, ns), frame_id='cam')


def _image(store, rgb: np.ndarray, ns: int, encoding: str = 'rgb8', ros1: bool = False):
    pixels = rgb[:, :, ::-1] if encoding == 'bgr8' else rgb
    height, width = rgb.shape[:2]
    return store.types['sensor_msgs/msg/Image'](
        header=_header(store, ns, ros1),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * 3,
        data=np.ascontiguousarray(pixels).reshape(-1),
    )


def _twist(store, v: float, w: float):
    V3 = store.types['geometry_msgs/msg/Vector3']
    Twist = store.types['geometry_msgs/msg/Twist']
    return Twist(linear=V3(x=float(v), y=0.0, z=0.0), angular=V3(x=0.0, y=0.0, z=float(w)))


def write_ros2(
    path: Path,
    frames,
    vw,
    storage: StoragePlugin = StoragePlugin.MCAP,
    stamped: bool = True,
    twist_delays: dict[int, float | None] | None = None,
    encoding: str = 'rgb8',
    compressed: bool = False,
    image_topic: str = '/cam_f1_left/image_raw',
    first_index: int = 0,
) -> Path:
    """
    Our recorder's layout.

    Camera, /cmd_vel (Twist), /cmd_vel_stamped (TwistStamped, stamped like its image).

    ``twist_delays``: frame index -> seconds after the image its Twist is recorded (``None``: no
    answer); others 0.03 s. With ``stamped``, /cmd_vel carries zeros, so picking it instead of the
    stamped topic shows.
    """
    store = get_typestore(Stores.ROS2_HUMBLE)
    delays = twist_delays or {}
    image_type = 'sensor_msgs/msg/CompressedImage' if compressed else 'sensor_msgs/msg/Image'
    with Writer(path, version=9, storage_plugin=storage) as writer:
        cam = writer.add_connection(image_topic, image_type, typestore=store)
        cmd = writer.add_connection('/cmd_vel', 'geometry_msgs/msg/Twist', typestore=store)
        cmd_st = (
            writer.add_connection(
                '/cmd_vel_stamped', 'geometry_msgs/msg/TwistStamped', typestore=store
            )
            if stamped
            else None
        )
        messages = []
        for i, (rgb, (v, w)) in enumerate(zip(frames, vw), start=first_index):
            t = T0_NS + i * DT_NS
            if compressed:
                ok, png = cv2.imencode('.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                msg = store.types['sensor_msgs/msg/CompressedImage'](
                    header=_header(store, t), format='png', data=png.reshape(-1)
                )
            else:
                msg = _image(store, rgb, t, encoding)
            messages.append((t, cam, store.serialize_cdr(msg, image_type)))
            if stamped:
                if i == 7:
                    continue  # never answered
                TwistStamped = store.types['geometry_msgs/msg/TwistStamped']
                st = TwistStamped(header=_header(store, t), twist=_twist(store, v, w))
                # Frame 2's answer is recorded before its image (the big image arrived late at the
                # recorder).
                when = t - 1_000_000 if i == 2 else t + 30_000_000
                messages.append(
                    (when, cmd_st, store.serialize_cdr(st, 'geometry_msgs/msg/TwistStamped'))
                )
                messages.append(
                    (
                        when,
                        cmd,
                        store.serialize_cdr(_twist(store, 0, 0), 'geometry_msgs/msg/Twist'),
                    )
                )
            else:
                delay = delays.get(i, 0.03)
                if delay is not None:
                    messages.append(
                        (
                            t + int(delay * 1e9),
                            cmd,
                            store.serialize_cdr(_twist(store, v, w), 'geometry_msgs/msg/Twist'),
                        )
                    )
        if stamped and not first_index:  # an answer to a frame that is not in the bag
            st = store.types['geometry_msgs/msg/TwistStamped'](
                header=_header(store, 5), twist=_twist(store, 9, 9)
            )
            messages.append(
                (T0_NS + 5, cmd_st, store.serialize_cdr(st, 'geometry_msgs/msg/TwistStamped'))
            )
        for t, conn, raw in sorted(messages, key=lambda m: m[0]):
            writer.write(conn, t, raw)
    return path


def write_ros1(path: Path, frames, vw) -> Path:
    """
    Behavior Metrics' layout.

    /F1ROS/cameraL/image_raw and /F1ROS/cmd_vel (Twist) in a ROS 1 bag.
    """
    store = get_typestore(Stores.ROS1_NOETIC)
    with Writer1(path) as writer:
        cam = writer.add_connection(
            '/F1ROS/cameraL/image_raw', 'sensor_msgs/msg/Image', typestore=store
        )
        cmd = writer.add_connection('/F1ROS/cmd_vel', 'geometry_msgs/msg/Twist', typestore=store)
        for i, (rgb, (v, w)) in enumerate(zip(frames, vw)):
            t = T0_NS + i * DT_NS
            writer.write(
                cam,
                t,
                store.serialize_ros1(_image(store, rgb, t, ros1=True), 'sensor_msgs/msg/Image'),
            )
            writer.write(
                cmd,
                t + 40_000_000,
                store.serialize_ros1(_twist(store, v, w), 'geometry_msgs/msg/Twist'),
            )
    return path


def pilotnet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-m', 'pilotnet_optimized', 'bag-eval', *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def rows_of(report: dict) -> dict[str, dict]:
    return {Path(r['model']).stem: r for r in report['rows']}


def assert_a_matches_b_does_not(report: dict) -> None:
    rows = rows_of(report)
    assert rows['a']['status'] == 'ok' and rows['b']['status'] == 'ok'
    assert rows['a']['mse'] < MSE_SAME
    assert rows['a']['mae_v'] < MAE_SAME and rows['a']['mae_w'] < MAE_SAME
    assert rows['a']['max_err_v'] < MAE_SAME and rows['a']['max_err_w'] < MAE_SAME
    assert rows['b']['mse'] > 1e-5 and rows['b']['mse'] > 1e4 * max(rows['a']['mse'], 1e-12)
    assert rows['b']['mae_v'] + rows['b']['mae_w'] > 0.05
    for r in rows.values():
        assert 0 < r['p50_ms'] <= r['p90_ms'] <= r['p99_ms']
        assert r['frames'] == report['bag']['paired']


def evaluate(bag: Path, models: dict[str, Path], **kw) -> dict:
    return evaluate_bag(bag, [str(models['a']), str(models['b'])], progress=None, warmup=2, **kw)


# -- pairing and formats --------------------------------------------------------------------------
def test_mcap_twiststamped_pairs_by_header_stamp(models, drive, tmp_path):
    bag = write_ros2(tmp_path / 'run', *drive)
    warnings: list[str] = []
    report = evaluate(bag, models, warn=warnings.append)
    b = report['bag']
    assert b['storage'] == 'mcap' and not b['cut_off'] and not warnings
    assert (b['image_topic'], b['cmd_topic']) == ('/cam_f1_left/image_raw', '/cmd_vel_stamped')
    # frame 7 unanswered
    assert b['frames'] == FRAMES and b['paired'] == FRAMES - 1 and b['unpaired'] == 1
    assert b['duration_s'] == pytest.approx((FRAMES - 1) * DT_NS / 1e9 + 0.03, abs=0.01)
    assert_a_matches_b_does_not(report)
    # /cmd_vel holds zeros: choosing it explicitly pairs by arrival and model A no longer matches.
    plain = evaluate(bag, models, cmd_topic='/cmd_vel')
    assert plain['bag']['cmd_type'] == 'geometry_msgs/msg/Twist'
    assert rows_of(plain)['a']['mse'] > 1e-3


def test_sqlite3_twist_pairs_first_command_after_the_image(models, drive, tmp_path):
    # Frame 3: no answer; frame 5: answered after 0.22 s, too late for --max-delay 0.2; bgr8
    # frames.
    bag = write_ros2(tmp_path / 'run', *drive, storage=StoragePlugin.SQLITE3, stamped=False,
                     twist_delays={3: None, 5: 0.22}, encoding='bgr8')
    report = evaluate(bag, models)
    b = report['bag']
    assert b['storage'] == 'sqlite3' and b['cmd_topic'] == '/cmd_vel'
    assert (b['frames'], b['paired'], b['unpaired']) == (FRAMES, FRAMES - 2, 2)
    assert_a_matches_b_does_not(report)
    assert evaluate(bag, models, max_delay=0.23)['bag']['paired'] == FRAMES - 1
    limited = evaluate(bag, models, limit=4)
    assert limited['bag']['paired'] == 4 and rows_of(limited)['a']['frames'] == 4


def test_ros1_bag_of_behavior_metrics(models, drive, tmp_path):
    bag = write_ros1(tmp_path / 'run.bag', *drive)
    report = evaluate(bag, models)
    b = report['bag']
    assert b['storage'] == 'rosbag1'
    assert (b['image_topic'], b['cmd_topic'], b['paired']) == (
        '/F1ROS/cameraL/image_raw',
        '/F1ROS/cmd_vel',
        FRAMES,
    )
    assert_a_matches_b_does_not(report)


def test_compressed_png_frames(models, drive, tmp_path):
    bag = write_ros2(
        tmp_path / 'run', *drive, compressed=True, image_topic='/cam/image_raw/compressed'
    )
    report = evaluate(bag, models)
    assert report['bag']['image_type'] == 'sensor_msgs/msg/CompressedImage'
    assert_a_matches_b_does_not(report)


def test_message_to_rgb_drops_row_padding_and_swaps_bgr():
    class Msg:
        height, width, step, encoding = 2, 3, 12, 'bgr8'
        data = np.arange(24, dtype=np.uint8)
    rgb = message_to_rgb(Msg())
    assert rgb.shape == (2, 3, 3)
    assert rgb[1, 0].tolist() == [14, 13, 12]
    Msg.encoding = 'mono8'
    with pytest.raises(ImageError, match="unsupported image encoding 'mono8'"):
        message_to_rgb(Msg())


# -- damaged and odd bags -------------------------------------------------------------------------
def test_cut_off_mcap_is_read_up_to_where_it_ends(models, drive, tmp_path):
    bag = write_ros2(tmp_path / 'run', *drive)
    mcap = next(bag.glob('*.mcap'))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * 0.6)])
    for path in (bag, mcap):   # the folder with its (now stale) metadata.yaml, and the bare file
        warnings: list[str] = []
        report = evaluate(path, models, warn=warnings.append)
        b = report['bag']
        assert b['cut_off'] and 'stream' in b['storage']
        assert 2 <= b['paired'] < FRAMES - 1
        assert any('cut off' in w for w in warnings) and any('index' in w for w in warnings)
        assert_a_matches_b_does_not(report)
    (bag / 'metadata.yaml').unlink()
    warnings = []
    report = evaluate(bag, models, warn=warnings.append)
    assert report['bag']['cut_off'] and any('no metadata.yaml' in w for w in warnings)


def test_folder_without_metadata_yaml(models, drive, tmp_path):
    bag = write_ros2(tmp_path / 'run', *drive, storage=StoragePlugin.SQLITE3)
    (bag / 'metadata.yaml').unlink()
    warnings: list[str] = []
    report = evaluate(bag, models, warn=warnings.append)
    assert not report['bag']['cut_off'] and report['bag']['paired'] == FRAMES - 1
    assert warnings and 'no metadata.yaml' in warnings[0]
    assert_a_matches_b_does_not(report)


def test_split_bag_with_stale_metadata_reads_every_file(models, drive, tmp_path):
    frames, vw = drive
    bag = write_ros2(tmp_path / 'run', frames[:5], vw[:5])
    second = write_ros2(tmp_path / 'second', frames[5:], vw[5:], first_index=5)
    # The recorder split to a second file and was killed before rewriting metadata.yaml.
    next(bag.glob('*.mcap')).rename(bag / 'run_2.mcap')
    next(second.glob('*.mcap')).rename(bag / 'run_10.mcap')
    meta = bag / 'metadata.yaml'
    meta.write_text(meta.read_text().replace('run.mcap', 'run_2.mcap'))
    warnings: list[str] = []
    report = evaluate(bag, models, warn=warnings.append)
    assert any('stale' in w and 'run_10.mcap' in w for w in warnings)
    assert (report['bag']['frames'], report['bag']['paired']) == (FRAMES, FRAMES - 1)
    assert_a_matches_b_does_not(report)


def test_bag_errors_name_the_problem(drive, tmp_path):
    frames, vw = drive
    with pytest.raises(BagError, match='no such file'):
        read_bag_frames(tmp_path / 'nope', [])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagError, match='no metadata.yaml, and no .mcap or .db3'):
        read_bag_frames(tmp_path / 'empty', [])
    bag = write_ros2(tmp_path / 'run', frames[:3], vw[:3])
    with pytest.raises(BagError, match='no topic /nope'):
        read_bag_frames(bag, [], image_topic='/nope')
    with pytest.raises(BagError, match='not an Image'):
        read_bag_frames(bag, [], image_topic='/cmd_vel')


# -- the command line -----------------------------------------------------------------------------
def test_cli_json_and_reports_with_a_missing_model(models, drive, tmp_path):
    bag = write_ros2(tmp_path / 'run', *drive)
    out = tmp_path / 'eval'
    proc = pilotnet(
        str(bag),
        '--models',
        f"{models['a']},nosuchmodel,{models['b']}",
        '--models-dir',
        str(models['a'].parent),
        '--json',
        '--warmup',
        '1',
        '--out',
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [r['status'] for r in report['rows']] == ['ok', 'failed', 'ok']
    assert "model 'nosuchmodel' not found" in report['rows'][1]['error']
    assert_a_matches_b_does_not({**report, 'rows': [report['rows'][0], report['rows'][2]]})
    assert json.loads((out / 'bag_eval.json').read_text())['bag']['paired'] == FRAMES - 1
    md = (out / 'bag_eval.md').read_text()
    assert 'a.tflite | float32 |' in md and 'nosuchmodel' in md
    # Model names resolve in --models-dir; the table goes to stdout.
    table = pilotnet(
        str(bag), '--models', 'a', '--models-dir', str(models['a'].parent), '--warmup', '1'
    )
    assert table.returncode == 0, table.stderr
    assert '| a |' in table.stdout and 'MSE' in table.stdout
    none_ran = pilotnet(
        str(bag), '--models', 'nosuchmodel', '--models-dir', str(models['a'].parent), '--json'
    )
    assert none_ran.returncode == 1


def test_cli_bad_input_is_one_error_line(models, drive, tmp_path):
    frames, vw = drive
    assert_one_line_error(pilotnet(str(tmp_path / 'missing'), '--models', str(models['a'])),
                          'bag-eval', 'no such file or directory')
    # No camera topic: a bag of commands only.
    store = get_typestore(Stores.ROS2_HUMBLE)
    with Writer(tmp_path / 'cmds', version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection('/cmd_vel', 'geometry_msgs/msg/Twist', typestore=store)
        writer.write(
            conn, T0_NS, store.serialize_cdr(_twist(store, 1, 0), 'geometry_msgs/msg/Twist')
        )
    assert_one_line_error(pilotnet(str(tmp_path / 'cmds'), '--models', str(models['a'])),
                          'no sensor_msgs/msg/Image', '/cmd_vel')
    # A camera in an encoding the models cannot take.
    bag = tmp_path / 'mono16'
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        cam = writer.add_connection(
            '/cam_f1_left/image_raw', 'sensor_msgs/msg/Image', typestore=store
        )
        cmd = writer.add_connection('/cmd_vel', 'geometry_msgs/msg/Twist', typestore=store)
        msg = store.types['sensor_msgs/msg/Image'](
            header=_header(store, T0_NS),
            height=2,
            width=2,
            encoding='mono16',
            is_bigendian=0,
            step=4,
            data=np.zeros(8, np.uint8),
        )
        writer.write(cam, T0_NS, store.serialize_cdr(msg, 'sensor_msgs/msg/Image'))
        writer.write(
            cmd, T0_NS + 1, store.serialize_cdr(_twist(store, 1, 0), 'geometry_msgs/msg/Twist')
        )
    assert_one_line_error(pilotnet(str(bag), '--models', str(models['a'])),
                          "unsupported image encoding 'mono16'", '/cam_f1_left/image_raw')
    # A stray file that is no bag at all.
    junk = tmp_path / 'junk.mcap'
    junk.write_bytes(b'not an mcap file' * 10)
    assert_one_line_error(pilotnet(str(junk), '--models', str(models['a'])), 'junk.mcap')


def test_write_reports_lists_errors_under_the_table(tmp_path):
    report = {
        'bag': {
            'path': 'b',
            'storage': 'mcap',
            'duration_s': 1.0,
            'cut_off': True,
            'paired': 1,
            'frames': 2,
            'unpaired': 1,
            'image_topic': '/i',
            'cmd_topic': '/c',
            'pairing': 'x',
        },
        'machine': 'm',
        'threads': 1,
        'latency': 'l',
        'rows': [{'model': 'x', 'status': 'failed', 'error': 'boom'}],
    }
    md = write_reports(report, tmp_path)['md'].read_text()
    assert 'cut off' in md and '- x: boom' in md
