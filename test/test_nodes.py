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
The nodes: Image <-> numpy, the inference node's safety paths in-process.

Then a real graph of node processes (simulator + inference node, as `pilotnet run` starts them)
watched and driven from a probe node in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import dataclasses
import json
import math
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import cv2
from helpers import FakeBackend
import numpy as np
import pytest

rclpy = pytest.importorskip(
    'rclpy', reason='rclpy is installed by scripts/setup.sh (ros-pypi extra)'
)

# These imports need rclpy, so they come after the skip above (hence E402 and I100).
from geometry_msgs.msg import Twist  # noqa: E402, I100
from nav_msgs.msg import Odometry  # noqa: E402
from pilotnet_optimized.backends import BACKEND_CHOICES  # noqa: E402
from pilotnet_optimized.bags.images import image_to_rgb, rgb_to_image  # noqa: E402
from pilotnet_optimized.errors import ImageError, PilotnetError  # noqa: E402
from pilotnet_optimized.laps import EndReason  # noqa: E402
from pilotnet_optimized.laps.report import TIMING_FIELDS  # noqa: E402
from pilotnet_optimized.nodes import qos, topics  # noqa: E402
from pilotnet_optimized.nodes.graph import describe_graph  # noqa: E402
from pilotnet_optimized.nodes.inference_node import InferenceNode  # noqa: E402
from pilotnet_optimized.nodes.params import declare_parameters, param, ParamSpec  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import GetParameters, SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# -- image conversion -----------------------------------------------------------------------------
def _pattern(h: int = 7, w: int = 5) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb8_round_trip():
    rgb = _pattern()
    msg = rgb_to_image(rgb)
    assert (msg.encoding, msg.height, msg.width, msg.step) == ('rgb8', 7, 5, 15)
    assert bytes(msg.data) == rgb.tobytes()
    back = image_to_rgb(msg)
    assert back.dtype == np.uint8 and back.flags.c_contiguous
    np.testing.assert_array_equal(back, rgb)


def test_bgr8_with_padded_step_matches_cv_bridge_semantics():
    rgb = _pattern()
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    # bytes of padding at the end of each row: step 24, not a multiple of 3 (cv_bridge's int()
    # would break)
    pad = 9
    rows = np.concatenate([bgr.reshape(7, 15), np.full((7, pad), 255, np.uint8)], axis=1)
    msg = Image(height=7, width=5, encoding='bgr8', step=15 + pad, is_bigendian=1)
    msg.data = rows.tobytes()
    # cv_bridge: rows step bytes apart, padding dropped, BGR -> RGB; endianness irrelevant for
    # 8-bit channels.
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)
    np.testing.assert_array_equal(image_to_rgb(rgb_to_image(rgb, 'bgr8')), rgb)
    assert bytes(rgb_to_image(rgb, 'bgr8').data) == bgr.tobytes()


def test_conversion_agrees_with_cv_bridge_where_it_exists():
    cv_bridge = pytest.importorskip(
        'cv_bridge', reason="cv_bridge (ROS 2) comes with a distro; here it isn't"
    )
    rgb = _pattern()
    msg = rgb_to_image(rgb, 'bgr8')
    np.testing.assert_array_equal(
        image_to_rgb(msg), cv_bridge.CvBridge().imgmsg_to_cv2(msg, 'rgb8')
    )


@pytest.mark.parametrize('encoding', ['mono16', 'mono8', 'rgba8', '16UC1'])
def test_other_encodings_are_rejected_by_name(encoding):
    msg = Image(height=2, width=2, encoding=encoding, step=8)
    msg.data = bytes(16)
    with pytest.raises(ImageError, match=f"unsupported image encoding '{encoding}'.*rgb8, bgr8"):
        image_to_rgb(msg)


def test_short_step_or_data_is_an_error():
    msg = Image(height=2, width=4, encoding='rgb8', step=10)
    msg.data = bytes(24)
    with pytest.raises(ImageError, match='step 10 is shorter'):
        image_to_rgb(msg)
    msg.step = 12
    msg.data = bytes(20)
    with pytest.raises(ImageError, match='has 20 bytes'):
        image_to_rgb(msg)


# -- a tiny trained model, converted twice, and a corrupt one -------------------------------------
@pytest.fixture(scope='module')
def models(tiny_driver: dict[str, Path]) -> dict[str, Path]:
    return {
        'a': tiny_driver['float'],
        'b': tiny_driver['dynamic'],
        'corrupt': tiny_driver['corrupt'],
    }


# -- ROS set-up: a private domain and the graph's transport (conftest.ros_env), a probe node
# spinning in a thread ---
class Probe:
    """
    An rclpy node in this process.

    It records what the graph publishes and calls its services.
    """

    def __init__(self, domain_id: int) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('graph_probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.twists: list[tuple[float, float, float]] = []
        self.timing: list[list[float]] = []
        self.odom: list[tuple[float, float]] = []
        self.inference_status: list[dict] = []
        self.sim_status: list[dict] = []
        self.errors: list[str] = []
        n = self.node
        n.create_subscription(
            Twist,
            topics.COMMAND,
            lambda m: self.twists.append((time.monotonic(), m.linear.x, m.angular.z)),
            qos.COMMAND,
        )
        n.create_subscription(
            Float64MultiArray,
            topics.INFERENCE_TIMING,
            lambda m: self.timing.append(list(m.data)),
            qos.TIMING,
        )
        n.create_subscription(
            Odometry,
            topics.ODOMETRY,
            lambda m: self.odom.append((m.pose.pose.position.x, m.pose.pose.position.y)),
            qos.ODOMETRY,
        )
        n.create_subscription(
            String,
            topics.INFERENCE_STATUS,
            lambda m: self.inference_status.append(json.loads(m.data)),
            qos.STATUS,
        )
        n.create_subscription(
            String,
            topics.SIM_STATUS,
            lambda m: self.sim_status.append(json.loads(m.data)),
            qos.STATUS,
        )
        self.image_pub = n.create_publisher(Image, topics.CAMERA, qos.CAMERA)
        self.set_client = n.create_client(SetParameters, '/inference_node/set_parameters')
        self.get_client = n.create_client(GetParameters, '/inference_node/get_parameters')
        self._spin = threading.Thread(target=self._spin_loop, daemon=True)
        self._spin.start()

    def _spin_loop(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception as exc:  # noqa: BLE001
                # Any exception is kept for the failure report; at the end, the context is gone.
                if not self.context.ok():
                    break
                self.errors.append(repr(exc))

    def call(self, client: Any, request: Any, timeout: float = 10.0) -> Any:
        assert client.wait_for_service(timeout_sec=timeout), f'{client.srv_name} not available'
        future = client.call_async(request)
        wait_for(future.done, timeout, f'{client.srv_name} answered')
        return future.result()

    def set_model(self, path: Path) -> bool:
        param = ParameterMsg(
            name='model_path',
            value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(path)),
        )
        return (
            self.call(self.set_client, SetParameters.Request(parameters=[param]))
            .results[0]
            .successful
        )

    def model_path(self) -> str:
        return (
            self.call(self.get_client, GetParameters.Request(names=['model_path']))
            .values[0]
            .string_value
        )

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._spin.join(timeout=2)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for: {what}')
        time.sleep(0.02)


class NodeProcess:
    """One node started from its graph spec, its output collected in the background."""

    def __init__(self, spec: Any) -> None:
        self.name = spec.name
        env = {**os.environ, **spec.env, 'PYTHONUNBUFFERED': '1'}
        self.proc = subprocess.Popen(
            spec.command(sys.executable),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(
            target=lambda: self.lines.extend(self.proc.stdout), daemon=True
        )
        self._reader.start()

    @property
    def output(self) -> str:
        return ''.join(self.lines)

    def interrupt(self, timeout: float = 15.0) -> int:
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=2)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


# -- the inference node in-process: NaN, bad encodings, parameter validation ----------------------
class _Captured:

    def __init__(self) -> None:
        self.msgs: list[Any] = []

    def publish(self, msg: Any) -> None:
        self.msgs.append(msg)

    def wait_for_all_acked(self, timeout: Any) -> bool:
        return True


@pytest.fixture()
def inference_factory(
    ros_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., InferenceNode]]:
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env['ROS_DOMAIN_ID']))
    made: list[InferenceNode] = []
    model = tmp_path / 'fake.tflite'
    model.write_bytes(b'')

    def make(outputs: tuple[float, float] = (0.5, 0.5), **params: Any) -> InferenceNode:
        overrides = [
            Parameter(k, value=v) for k, v in {'model_path': str(model), **params}.items()
        ]
        node = InferenceNode(
            context=context,
            loader=lambda path, backend, threads: FakeBackend(path, outputs),
            parameter_overrides=overrides,
        )
        node._cmd_pub = _Captured()  # what it publishes, without waiting for DDS
        made.append(node)
        return node

    make.context = context  # type: ignore[attr-defined]
    yield make
    for node in made:
        node.destroy_node()
    rclpy.try_shutdown(context=context)


def _frame_msg(encoding: str = 'rgb8') -> Image:
    msg = rgb_to_image(np.full((480, 640, 3), 90, np.uint8), 'rgb8')
    msg.encoding = encoding
    return msg


def test_nan_output_publishes_zero_and_logs_an_error(inference_factory, capfd):
    node = inference_factory(outputs=(math.nan, 0.5))
    node._on_image(_frame_msg())
    cmds = node._cmd_pub.msgs
    assert len(cmds) == 1 and cmds[0].linear.x == 0.0 and cmds[0].angular.z == 0.0
    assert 'NaN or infinite outputs: publishing a zero command' in capfd.readouterr().err


def test_a_good_frame_gives_the_denormalised_command(inference_factory):
    node = inference_factory(outputs=(0.0, 0.5))
    node._on_image(_frame_msg())
    cmd = node._cmd_pub.msgs[-1]
    assert cmd.linear.x == pytest.approx(6.5) and cmd.angular.z == pytest.approx(0.0, abs=1e-6)


def test_wrong_encoding_is_ignored_with_a_throttled_warning(inference_factory, capfd):
    node = inference_factory()
    for _ in range(3):
        node._on_image(_frame_msg('mono16'))
    assert node._cmd_pub.msgs == []  # no command: only the watchdog answers a camera it cannot use
    err = capfd.readouterr().err
    assert err.count("unsupported image encoding 'mono16'") == 1, err


def test_watchdog_publishes_zero_only_while_images_are_stale(inference_factory):
    node = inference_factory()
    node._on_watchdog()  # no image yet
    assert len(node._cmd_pub.msgs) == 1 and node._cmd_pub.msgs[0].linear.x == 0.0
    node._on_image(_frame_msg())
    node._on_watchdog()  # fresh image: nothing from the watchdog
    assert len(node._cmd_pub.msgs) == 2 and node._cmd_pub.msgs[1].linear.x != 0.0
    node._last_image -= 1.0  # older than input_timeout (0.5 s)
    node._on_watchdog()
    assert len(node._cmd_pub.msgs) == 3 and node._cmd_pub.msgs[2].linear.x == 0.0


def test_parameter_changes_are_validated(inference_factory):
    node = inference_factory()
    bad_backend = node.set_parameters([Parameter('backend', value='tensorflw')])[0]
    assert not bad_backend.successful and 'choose one of' in bad_backend.reason
    # range 1..64
    assert not node.set_parameters([Parameter('num_threads', value=0)])[0].successful
    # read-only
    assert not node.set_parameters([Parameter('image_topic', value='/x')])[0].successful
    assert node.set_parameters([Parameter('input_timeout', value=2.0)])[0].successful
    assert node._input_timeout == 2.0


def test_choices_are_enforced_in_one_place_at_start_and_when_set(inference_factory):
    node = inference_factory()
    generation = node._generation
    refused = node.set_parameters([Parameter('backend', value='tensorflw')])[0]
    assert not refused.successful
    assert refused.reason == f"backend 'tensorflw': choose one of {', '.join(BACKEND_CHOICES)}"
    # Checked before the node's own callback: no model load was started for the refused value.
    assert node._generation == generation and param(node, 'backend') == 'auto'
    with pytest.raises(PilotnetError, match="backend 'tflite': choose one of auto, "):
        inference_factory(backend='tflite')
    # Any node declaring a ParamSpec with choices gets the same check, start value and live value
    # alike.
    bare = rclpy.create_node(
        'choices_probe',
        context=inference_factory.context,
        parameter_overrides=[Parameter('mode', value='b')],
    )
    try:
        declare_parameters(bare, (ParamSpec('mode', 'a', 'a mode', choices=('a', 'b')),))
        assert not bare.set_parameters([Parameter('mode', value='c')])[0].successful
        assert bare.set_parameters([Parameter('mode', value='a')])[0].successful
        other = rclpy.create_node('choices_probe_2', context=inference_factory.context,
                                  parameter_overrides=[Parameter('mode', value='c')])
        with pytest.raises(PilotnetError, match="mode 'c': choose one of a, b"):
            declare_parameters(other, (ParamSpec('mode', 'a', 'a mode', choices=('a', 'b')),))
        other.destroy_node()
    finally:
        bare.destroy_node()


def test_stats_period_set_live_restarts_its_timer(inference_factory, capfd):
    node = inference_factory()
    first = node._stats_timer
    assert first is not None and first.timer_period_ns == 10 * 10 ** 9
    node._on_image(_frame_msg())   # counted in the old period: not in the next summary
    assert node.set_parameters([Parameter('stats_period', value=0.5)])[0].successful
    timer = node._stats_timer
    assert timer is not first and timer.timer_period_ns == 5 * 10 ** 8
    assert first not in list(node.timers)   # the old timer is gone, not ticking beside the new one
    for _ in range(5):
        node._on_image(_frame_msg())
    node._on_stats()
    assert '5 frames in 0.5 s (10.0 Hz)' in capfd.readouterr().err
    # 0 = no summaries
    assert node.set_parameters([Parameter('stats_period', value=0.0)])[0].successful
    assert node._stats_timer is None and timer not in list(node.timers)


def test_every_live_parameter_has_its_effect(inference_factory, tmp_path):
    """
    The inference node's parameters that are not read-only.

    Each one set live changes what the node does.
    """
    node = inference_factory()
    # model_path, backend and num_threads start a swap (a new generation); models_dir is read by
    # the next one.
    for name, value in (
        ('model_path', str(node._active.model_path)),
        ('backend', 'litert'),
        ('num_threads', 2),
    ):
        generation = node._generation
        assert node.set_parameters([Parameter(name, value=value)])[0].successful
        assert node._generation == generation + 1, name
    folder = tmp_path / 'other'
    folder.mkdir()
    (folder / 'drq.tflite').write_bytes(b'')
    assert node.set_parameters([Parameter('models_dir', value=str(folder))])[0].successful
    assert node.set_parameters([Parameter('model_path', value='drq')])[0].successful
    wait_for(
        lambda: any(r.model_path == 'drq' for r, *_ in list(node._loaded)),
        10,
        'the drq model loaded',
    )
    loaded = next(m for r, m, *_ in list(node._loaded) if r.model_path == 'drq')
    assert loaded is not None and loaded.model_path == (folder / 'drq.tflite').resolve()
    # input_timeout and stats_period: test_parameter_changes_are_validated,
    # test_stats_period_set_live_....


@pytest.mark.parametrize(
    'node, live',
    [
        (
            'inference_node',
            {
                'model_path',
                'models_dir',
                'backend',
                'num_threads',
                'input_timeout',
                'stats_period',
            },
        ),
        ('simulator_node', {'command_timeout'}),
        ('metrics_node', set()),
        ('recorder_node', set()),
    ],
)
def test_only_parameters_with_a_live_effect_are_settable(node, live):
    """
    Every parameter that is not read-only takes effect when set (the tests above and below).

    Nothing else may be settable, or ``ros2 param set`` would report a change that does nothing.
    """
    import importlib
    module = importlib.import_module(f'pilotnet_optimized.nodes.{node}')
    assert {p.name for p in module.PARAMETERS if not p.read_only} == live


def test_simulator_command_timeout_set_live(inference_factory):
    from pilotnet_optimized.nodes.simulator_node import SimulatorNode
    sim = SimulatorNode(context=inference_factory.context)
    try:
        assert sim._command_timeout == 1.0
        assert sim.set_parameters([Parameter('command_timeout', value=0.25)])[0].successful
        assert sim._command_timeout == 0.25
        # read-only
        assert not sim.set_parameters([Parameter('match', value='order')])[0].successful
    finally:
        sim.destroy_node()


def test_a_bad_initial_model_is_one_line_and_a_non_zero_exit(ros_env, tmp_path):
    cmds = {
        'inference_node': [
            sys.executable,
            '-m',
            'pilotnet_optimized.nodes.inference_node',
            '--ros-args',
            '-p',
            f'model_path:={tmp_path / "missing.tflite"}',
        ],
        'simulator_node': [
            sys.executable,
            '-m',
            'pilotnet_optimized.nodes.simulator_node',
            '--ros-args',
            '-p',
            'circuit:=no_such_circuit',
        ],
    }
    procs = {name: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, cmd in cmds.items()}
    errors = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, (out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f'{name}: error: '), err
        errors[name] = lines[0]
    assert 'missing.tflite' in errors['inference_node'] and 'not found' in errors['inference_node']
    assert "unknown circuit 'no_such_circuit'" in errors['simulator_node']


# -- the real graph -------------------------------------------------------------------------------
def _nonzero(
    twists: list[tuple[float, float, float]], since: float = 0.0
) -> list[tuple[float, float, float]]:
    return [t for t in twists if t[0] >= since and (t[1] != 0.0 or t[2] != 0.0)]


def test_real_graph(models, ros_env, tmp_path):
    """
    Simulator (lock-step, simple) and inference node as processes, from the graph's own specs.

    For a few seconds: commands, timing, odometry, the end-of-run event, two model swaps, the
    watchdog, and the final zero.
    """
    specs = {s.name: s for s in describe_graph({'model': str(models['a']), 'circuit': 'simple'})}
    # The tiny model leaves the road within a second: restart instead of exiting, so commands keep
    # flowing.
    sim_spec = dataclasses.replace(
        specs['simulator_node'],
        parameters={**specs['simulator_node'].parameters, 'on_end': 'restart'},
    )
    probe = Probe(int(ros_env['ROS_DOMAIN_ID']))
    # One after the other, as the runner starts them (two DDS participants born together may never
    # meet).
    sim = NodeProcess(sim_spec)
    brain: NodeProcess | None = None
    feeding = threading.Event()
    try:
        # 0. Both nodes up (a cold start on a loaded 2-core CI machine imports for tens of
        # seconds), then the run.
        wait_for(lambda: 'waiting for a brain' in sim.output, 120, 'the simulator to start')
        brain = NodeProcess(specs['inference_node'])
        wait_for(lambda: 'driving with' in brain.output, 120, 'the inference node to start')
        wait_for(lambda: 'run started' in sim.output, 60, 'the simulator to start its run')
        # 1. Driving: finite commands at a steady rate, timing per frame, the car moving, runs
        # ending and restarting.
        wait_for(lambda: len(_nonzero(probe.twists)) >= 40, 60, '40 commands from the model')
        t0, n0 = time.monotonic(), len(_nonzero(probe.twists))
        time.sleep(2.0)
        rate = (len(_nonzero(probe.twists)) - n0) / (time.monotonic() - t0)
        assert all(math.isfinite(v) and math.isfinite(w) for _, v, w in probe.twists)
        wait_for(lambda: len(probe.timing) >= 20, 10, 'timing samples')
        timing = np.array(probe.timing)
        assert timing.shape[1] == len(TIMING_FIELDS) and np.isfinite(timing).all()
        inference_ms, callback_ms = timing[:, 0], timing[:, 3]
        assert (inference_ms > 0).all() and (callback_ms >= inference_ms).all()
        wait_for(lambda: len(probe.odom) > 20, 15, 'odometry')
        xy = np.array(probe.odom)
        assert np.hypot(*(xy - xy[0]).T).max() > 2.0, 'the car did not move'
        wait_for(
            lambda: any(e['event'] == 'end' for e in probe.sim_status), 30, 'an end-of-run event'
        )
        end = next(e for e in probe.sim_status if e['event'] == 'end')
        assert end['end_reason'] in {r.value for r in EndReason} and end['match'] == 'stamp'
        assert {'percentage_completed', 'completed_distance', 'average_speed', 'frames'} <= set(
            end
        )

        # 2. Swap to another valid model: accepted, loaded in the background, reported; commands
        # keep coming.
        assert probe.set_model(models['b'])
        wait_for(lambda: any(e['event'] == 'model_loaded' and e['requested'] == str(models['b'])
                             for e in probe.inference_status), 30, 'model_loaded for b')
        swapped_at = time.monotonic()
        assert probe.model_path() == str(models['b'])
        wait_for(
            lambda: len(_nonzero(probe.twists, swapped_at)) >= 20, 20, 'commands after the swap'
        )

        # 3. Swap to a corrupt file: accepted, refused in the background, reported, parameter set
        # back; still driving.
        assert probe.set_model(models['corrupt'])
        wait_for(
            lambda: any(
                e['event'] == 'model_error' and e['requested'] == str(models['corrupt'])
                for e in probe.inference_status
            ),
            30,
            'model_error for the corrupt file',
        )
        refused_at = time.monotonic()
        error = next(e for e in probe.inference_status if e['event'] == 'model_error')
        assert error['path'] == str(models['b']) and error['error']
        wait_for(lambda: probe.model_path() == str(models['b']), 10, 'model_path set back')
        wait_for(
            lambda: len(_nonzero(probe.twists, refused_at)) >= 20,
            20,
            'commands after the refused swap',
        )

        # 4. The simulator stops: no more images -> zero commands from the watchdog.
        assert sim.interrupt() == 0, sim.output[-2000:]
        stopped_at = time.monotonic()
        wait_for(
            lambda: len([t for t in probe.twists if t[0] > stopped_at + 0.6]) >= 3,
            10,
            'watchdog zeros',
        )
        late = [t for t in probe.twists if t[0] > stopped_at + 0.6]
        assert all(v == 0.0 and w == 0.0 for _, v, w in late), late[:5]

        # 5. Images again (from the probe): the model drives again.
        frame = rgb_to_image(np.full((480, 640, 3), 100, np.uint8))

        def feed() -> None:
            while not feeding.is_set():
                frame.header.stamp = probe.node.get_clock().now().to_msg()
                probe.image_pub.publish(frame)
                time.sleep(0.05)

        fed_at = time.monotonic()
        threading.Thread(target=feed, daemon=True).start()
        wait_for(
            lambda: len(_nonzero(probe.twists, fed_at)) >= 5, 10, 'commands once images are back'
        )

        # 6. SIGINT to the inference node while it drives: its last command is a zero.
        interrupted_at = time.monotonic()
        assert brain.interrupt() == 0, brain.output[-2000:]
        time.sleep(0.3)
        assert _nonzero(probe.twists, fed_at), 'no commands before the interrupt'
        last = probe.twists[-1]
        assert last[0] > interrupted_at and last[1:] == (0.0, 0.0), probe.twists[-3:]
        out = brain.output
        assert 'published a final zero command' in out
        assert 'swapped model' in out and 'cannot use model' in out
        assert 'no camera image for 0.5 s' in out
        print(
            f'\nreal graph: {rate:.0f} commands/s in lock-step; inference p50'
            f' {np.median(inference_ms):.2f} ms, '
            f'image to command p50 {np.median(callback_ms):.2f} ms, p99'
            f' {np.percentile(callback_ms, 99):.2f} ms; '
            f"first run: {end['end_reason']} after {end['frames']} frames"
        )
        assert rate > 5, f'only {rate:.1f} commands/s'
    finally:
        feeding.set()
        procs = [p for p in (sim, brain) if p is not None]
        for proc in procs:
            proc.kill()
        probe.close()
        # pytest shows this only when the test fails: what each node said, and what the probe saw.
        for proc in procs:
            print(f'--- {proc.name} (exit {proc.proc.returncode}) ---\n{proc.output[-4000:]}')
        print(
            f'--- probe: {len(probe.twists)} twists, {len(probe.timing)} timing, {len(probe.odom)}'
            f' odometry, status {probe.inference_status[-3:]} {probe.sim_status[-3:]}, errors'
            f' {probe.errors[-3:]}'
        )


# -- the runner -----------------------------------------------------------------------------------
def _runner(tmp_path: Path, *assignments: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            '-m',
            'pilotnet_optimized.nodes.runner',
            *assignments,
            f'output_dir:={tmp_path / "run"}',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, 'PYTHONUNBUFFERED': '1'},
    )


def _assert_children_gone(output: str) -> None:
    pids = [int(p) for p in re.findall(r'started \w+ \(pid (\d+)\)', output)]
    assert len(pids) == 3, output  # metrics_node, simulator_node, inference_node
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize('realtime', ['false', 'true'])
def test_runner_run_ends_by_itself_when_the_simulator_ends_it(models, ros_env, realtime, tmp_path):
    proc = _runner(
        tmp_path, f'model:={models["a"]}', 'circuit:=simple', 'laps:=1', f'realtime:={realtime}'
    )
    out, _ = proc.communicate(timeout=120)
    # 0: the laps were done; 3: the run ended early (the tiny model leaves the road).
    assert proc.returncode in (0, 3), out[-3000:]
    assert '[simulator_node]' in out and '[inference_node]' in out
    assert 'run ended:' in out and 'simulator_node ended the run' in out
    assert 'published a final zero command' in out
    _assert_children_gone(out)
    end = json.loads(re.search(r'run ended: \w+; (\{.*\})', out).group(1))
    assert end['mode'] == ('realtime' if realtime == 'true' else 'lockstep') and end['frames'] > 0
    if realtime == 'true':
        return
    # Lock-step makes the graph's run the ROS-free closed loop's run, frame for frame, however
    # loaded the machine.
    from pilotnet_optimized.backends import load_backend
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.episodes import drive_pilot
    alone = drive_pilot(get_circuit('simple'), load_backend(models['a']), laps=1).to_dict()
    assert end['frames'] == alone['frames']
    for key in (
        'end_reason',
        'sim_seconds',
        'completed_distance',
        'percentage_completed',
        'max_abs_lateral_m',
    ):
        assert end[key] == alone[key], key
    assert proc.returncode == (0 if alone['end_reason'] == 'laps_done' else 3)


def test_runner_sigterm_stops_every_node(models, ros_env, tmp_path):
    proc = _runner(tmp_path, f'model:={models["a"]}', 'realtime:=true')
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        # Both nodes up; the simulator waits 0.5 s more before its run (which the tiny model ends
        # within a second).
        wait_for(
            lambda: any('driving with' in line for line in lines)
            and any('waiting for a brain' in line for line in lines),
            60,
            'both nodes to start',
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, ''.join(lines)[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(timeout=5)
    out = ''.join(lines)
    assert 'stopping every node' in out and 'published a final zero command' in out
    _assert_children_gone(out)


def test_runner_refuses_a_missing_model_before_starting_anything(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'pilotnet_optimized.nodes.runner', 'model:=drq',
                           f'models_dir:={tmp_path}'], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"pilotnet run: error: model 'drq' not found in {tmp_path} (models there: none)"
    )
    assert 'started' not in proc.stdout


@pytest.mark.parametrize(
    'frame_id,encoding,shape',
    [
        ('', 'rgb8', (480, 640)),
        ('cam_f1_left', 'bgr8', (7, 5)),
        ('ab', 'rgb8', (3, 3)),
        ('abc', 'bgr8', (2, 1)),
    ],
)
def test_image_serializer_writes_what_rclpy_reads(frame_id, encoding, shape):
    # Every alignment case of the two strings; rclpy's own deserialiser must read back the same
    # message.
    from pilotnet_optimized.bags.images import ImageSerializer
    from rclpy.serialization import deserialize_message, serialize_message
    rgb = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    data = ImageSerializer(frame_id, encoding).serialize(rgb, 12, 345)
    msg = deserialize_message(data, Image)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (
        12,
        345,
        frame_id,
    )
    assert (msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian) == (
        *shape,
        encoding,
        shape[1] * 3,
        0,
    )
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)
    reference = rgb_to_image(rgb, encoding)
    reference.header = msg.header
    assert len(serialize_message(reference)) == len(data)
