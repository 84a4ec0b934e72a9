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
``pilotnet bench-latency``.

Image-to-Twist latency through the real graph, per model and DDS transport.

For each model, the real inference node is started as a process (the graph's own ``inference_node``
:class:`~.graph.NodeSpec` from :func:`~.graph.describe_graph`, started and stopped by
:mod:`.process` as :mod:`.runner` does) in a private ROS domain, with the transport asked for
(default: the graph's own, :func:`~.dds.graph_env`). A driver node in this process, created before
the inference node starts, publishes a rendered 640x480 rgb8 camera frame on the camera topic (best
effort, :data:`~.qos.CAMERA`) stamped with the system clock, one at a time: the next frame goes out
only after the stamped answer (``/cmd_vel_stamped``) and the node's ``~/timing`` sample for this
frame arrived, or after ``frame_timeout``, so nothing queues. Per frame:

- round trip: receipt of the answer in this process minus the image stamp (camera hop, node,
  command hop);
- from the node's ``~/timing``, paired by ``image_stamp_s``: ``inference_ms``, ``end_to_end_ms``
  (stamp to publish in the node: camera hop and callback), ``preprocess_ms``, ``callback_ms``.

The node reads its clock for ``end_to_end_ms`` just after it has published the command, so when the
command's hop back is quicker than that last bit of the node's callback (or the node is descheduled
there), one frame's round trip can be a little shorter than its node end-to-end; both are on the
system clock of one machine.

Raw inference is timed in this process after the node has stopped
(:func:`~pilotnet_optimized.backends.timing. time_each`): the same model, backend and threads, with
``predict_normalised`` on the preprocessed frames, as many calls as frames. The node's overhead is
node end-to-end p50 minus raw inference p50; the target is at most :data:`TARGET_OVERHEAD_MS`.

Importing this module imports nothing from ROS (``pilotnet --help`` builds its arguments); the run
does.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping, Sequence
import contextlib
import dataclasses
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
import json
import os
from pathlib import Path
import platform
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
from pilotnet_optimized.backends import BACKEND_CHOICES
from pilotnet_optimized.backends.timing import percentiles, time_each
from pilotnet_optimized.errors import one_line, PilotnetError
from pilotnet_optimized.evaluate.report import (Column, format_cell, machine_description,
                                                markdown_table, versions)
from pilotnet_optimized.nodes import topics
from pilotnet_optimized.nodes.dds import (apply_env, BUILTIN_TRANSPORTS_VAR, dds_env, DDS_VARS,
                                          free_ros_domain, PROJECT_TRANSPORT)
from pilotnet_optimized.nodes.graph import describe_graph, NodeSpec
from pilotnet_optimized.nodes.memory import keep_heap
from pilotnet_optimized.nodes.process import NodeProcess
from pilotnet_optimized.store import DEFAULT_MODELS_DIR, resolve_model, split_names

__all__ = [
    'EXAMPLE',
    'FLOOR',
    'TRANSPORTS',
    'TARGET_OVERHEAD_MS',
    'TARGET_HOP_RATIO',
    'LatencyRow',
    'COLUMNS',
    'add_arguments',
    'bench_latency',
    'compare_with_floor',
    'run',
    'default_models',
    'latency_table',
    'parse_transports',
]

#: Transport settings (:func:`~.dds.dds_env`): the project's profile (``SHM_LARGE``), Fast DDS's
#: own default (``DEFAULT``: nothing set), or a ``FASTDDS_BUILTIN_TRANSPORTS`` mode.
TRANSPORTS = (PROJECT_TRANSPORT, 'LARGE_DATA', 'DEFAULT', 'SHM', 'UDPv4', 'UDPv6', 'LARGE_DATAv6')
#: The issue's bar: node end-to-end p50 at most this much above raw inference p50.
TARGET_OVERHEAD_MS = 1.0
#: And the camera hop p50 at most this many times the bare transport floor's, measured beside it.
TARGET_HOP_RATIO = 1.5
#: The model name of the transport floor row: a no-op subscriber (:mod:`.latency_floor`) in the
#: inference node's place, the same frames, first under each transport.
FLOOR = 'floor'
#: Default models, looked up in ``--models-dir``: these names, then the first ONNX and the first
#: Keras/SavedModel.
DEFAULT_NAMES = ('baseline', 'dynamic', 'int8', 'openvino', 'openvino-int8')
EXAMPLE = (
    'pilotnet bench-latency --models baseline,dynamic,int8 --frames 300 --transports'
    ' SHM_LARGE,DEFAULT'
)


@dataclass
class LatencyRow:
    """
    One model under one transport.

    Latencies in ms (p50/p90/p99), or the error that stopped it (``status`` ``'failed'``).
    """

    model: str
    transport: str
    path: str | None = None
    backend: str | None = None
    precision: str | None = None
    size_mb: float | None = None
    threads: int = 1
    frames: int = 0                 # timed frames answered
    lost: int = 0                   # timed frames without an answer within the frame timeout
    start_s: float | None = None    # node process start to ready (model loaded, discovered)
    raw_p50_ms: float | None = None
    raw_p90_ms: float | None = None
    raw_p99_ms: float | None = None
    node_inference_p50_ms: float | None = None
    node_inference_p99_ms: float | None = None
    node_preprocess_p50_ms: float | None = None
    node_callback_p50_ms: float | None = None
    node_e2e_p50_ms: float | None = None
    node_e2e_p90_ms: float | None = None
    node_e2e_p99_ms: float | None = None
    round_trip_p50_ms: float | None = None
    round_trip_p90_ms: float | None = None
    round_trip_p99_ms: float | None = None
    # per frame: node e2e - node callback (DDS, take, deserialise, wake-up)
    camera_hop_p50_ms: float | None = None
    # per frame: round trip - node e2e (may be < 0: see the module doc)
    return_hop_p50_ms: float | None = None
    # camera hop p50 / the transport floor's (FLOOR, same transport, same run)
    camera_hop_vs_floor: float | None = None
    hop_target_met: bool | None = None
    overhead_ms: float | None = None
    target_met: bool | None = None
    status: str = 'ok'
    error: str | None = None


# -- inputs ---------------------------------------------------------------------------------------
def default_models(models_dir: str | Path = DEFAULT_MODELS_DIR) -> list[str]:
    """
    Return one model per backend from ``models_dir`` (the ``pilotnet optimize`` output).

    Baseline, dynamic and int8 TFLite, OpenVINO float32 and int8, the first ONNX file, the first
    Keras file or SavedModel folder; those that exist.

    :raises PilotnetError: when none of them is there.
    """
    folder = Path(models_dir)
    found: list[str] = []
    for name in DEFAULT_NAMES:
        with contextlib.suppress(PilotnetError):
            found.append(str(resolve_model(name, folder)))
    if folder.is_dir():
        entries = sorted(folder.iterdir())
        onnx = [p for p in entries if p.suffix == '.onnx']
        keras = [p for p in entries if p.suffix in ('.keras', '.h5')] or \
            [p for p in entries if p.is_dir() and (p / 'saved_model.pb').is_file()]
        found += [str(p.resolve()) for p in (onnx[:1] + keras[:1])]
    if not found:
        raise PilotnetError(
            f'no models in {folder} (run pilotnet optimize, or give --models a.tflite,b.onnx)'
        )
    return list(dict.fromkeys(found))


def parse_transports(text: str) -> list[str]:
    """
    Parse a comma-separated list of transports.

    ``'large_data,DEFAULT'`` -> ``['LARGE_DATA', 'DEFAULT']``.

    :raises PilotnetError: for a value Fast DDS does not know (the message lists the valid ones).
    """
    by_key = {t.lower(): t for t in TRANSPORTS}
    out = []
    for item in (t.strip() for t in text.split(',')):
        if not item:
            continue
        if item.lower() not in by_key:
            raise PilotnetError(
                f"unknown transport '{item}': choose from {', '.join(TRANSPORTS)} "
                f"({PROJECT_TRANSPORT}: the project's profile; DEFAULT: Fast DDS's own)"
            )
        out.append(by_key[item.lower()])
    if not out:
        raise PilotnetError('no transport given')
    return list(dict.fromkeys(out))


def render_frames(count: int = 8, circuit: str = 'simple') -> list[np.ndarray]:
    """
    Real camera frames (640x480 RGB) from the built-in simulator.

    At ``count`` places along the circuit.
    """
    from pilotnet_optimized.sim import CameraRenderer, get_circuit
    track = get_circuit(circuit)
    renderer = CameraRenderer(track)
    return [renderer.render(*track.pose_at(track.length * i / count)) for i in range(count)]


@contextlib.contextmanager
def _transport(transport: str) -> Iterator[None]:
    """
    Set the DDS variables in this process.

    Fast DDS reads them when a participant is created.
    """
    saved = {k: os.environ.get(k) for k in DDS_VARS}
    apply_env(os.environ, dds_env(transport))
    try:
        yield
    finally:
        apply_env(os.environ, saved)


# -- the driver node in this process --------------------------------------------------------------
class _Driver:
    """
    Driver node in this process.

    Publishes stamped camera frames one at a time and collects the answers and the node's timing.
    """

    def __init__(self, domain: int) -> None:
        from geometry_msgs.msg import TwistStamped
        from pilotnet_optimized.bags.images import ImageSerializer
        from pilotnet_optimized.nodes import qos
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import Image
        from std_msgs.msg import Float64MultiArray, String

        self._rclpy = rclpy
        # This process is the camera: its frames reuse heap memory, as the simulator node's do.
        keep_heap()
        self.context = rclpy.Context()
        # Our own Ctrl-C handling: KeyboardInterrupt reaches the bench, which stops the node before
        # it exits.
        rclpy.init(
            context=self.context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO
        )
        self.node = rclpy.create_node('bench_latency_driver', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.image_pub = self.node.create_publisher(Image, topics.CAMERA, qos.CAMERA)
        self._serializer = ImageSerializer(frame_id=topics.CAMERA_FRAME)
        self.node.create_subscription(
            TwistStamped, topics.STAMPED_COMMAND, self._on_answer, qos.COMMAND
        )
        self.node.create_subscription(
            Float64MultiArray, topics.INFERENCE_TIMING, self._on_timing, qos.TIMING
        )
        self.node.create_subscription(String, topics.INFERENCE_STATUS, self._on_status, qos.STATUS)
        self.status: list[dict] = []
        self._expect: tuple[int, int] = (-1, -1)
        self._answer_ns: int | None = None
        self._timing: list[float] | None = None

    def _on_answer(self, msg: Any) -> None:
        now = time.time_ns()
        if (msg.header.stamp.sec, msg.header.stamp.nanosec) == self._expect:
            self._answer_ns = now

    def _on_timing(self, msg: Any) -> None:
        sec, nanosec = self._expect
        if abs(msg.data[4] - (sec + nanosec * 1e-9)) < 1e-6:
            self._timing = list(msg.data)

    def _on_status(self, msg: Any) -> None:
        with contextlib.suppress(ValueError):
            self.status.append(json.loads(msg.data))

    def spin(self, seconds: float) -> None:
        self.executor.spin_once(timeout_sec=seconds)

    def wait_ready(self, node: NodeProcess, timeout: float) -> dict:
        """
        Until the node has loaded its model and both directions are discovered.

        The camera publisher matched to its subscription and its stamped-command publisher seen.
        Returns the node's ``model_loaded`` event.

        :raises PilotnetError: when the node exits (its one-line reason) or the timeout passes
            (what is missing).
        """
        deadline = time.monotonic() + timeout
        while True:
            loaded = next((e for e in self.status if e.get('event') == 'model_loaded'), None)
            seen = {
                'model loaded (~/status)': loaded is not None,
                f'camera subscription matched ({topics.CAMERA})': (
                    self.image_pub.get_subscription_count() > 0
                ),
                f'stamped command publisher seen ({topics.STAMPED_COMMAND})': (
                    self.node.count_publishers(topics.STAMPED_COMMAND) > 0
                ),
                'timing publisher seen': self.node.count_publishers(topics.INFERENCE_TIMING) > 0,
            }
            if all(seen.values()):
                assert loaded is not None
                return loaded
            if node.poll() is not None:
                raise PilotnetError(node.error_line())
            if time.monotonic() > deadline:
                missing = ', '.join(k for k, ok in seen.items() if not ok)
                started = any('driving with' in line for line in node.lines)
                hint = (
                    'the node is running but DDS discovery did not complete: rerun, or check '
                    'the DDS settings and ROS_DOMAIN_ID'
                    if started
                    else 'the node did not finish starting'
                )
                raise PilotnetError(f'not ready after {timeout:g} s ({hint}); missing: {missing}')
            self.spin(0.05)

    def frame(self, rgb: np.ndarray, timeout: float) -> tuple[float | None, list[float] | None]:
        """
        Publish one frame stamped now; wait for its answer and timing.

        Returns (round trip ms, timing).

        The frame goes out as CDR bytes packed here in 0.02 ms, as a C++ camera driver would send
        it: rclpy's own serialisation of a 640x480 Image takes 1.1 ms, which no real camera adds to
        the latency.
        """
        stamp_ns = time.time_ns()
        sec, nanosec = divmod(stamp_ns, 10 ** 9)
        self._expect, self._answer_ns, self._timing = (int(sec), int(nanosec)), None, None
        self.image_pub.publish(self._serializer.serialize(rgb, int(sec), int(nanosec)))
        deadline = time.monotonic() + timeout
        while self._answer_ns is None or self._timing is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.spin(min(left, 0.05))
        answer = None if self._answer_ns is None else (self._answer_ns - stamp_ns) / 1e6
        return answer, self._timing

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)


# -- one row --------------------------------------------------------------------------------------
def _put(
    row: LatencyRow, values: Sequence[float] | np.ndarray, stage: str, which: Sequence[int] = (50,)
) -> None:
    """Set the row's ``<stage>_p<q>_ms`` fields from the samples (``None`` without any)."""
    for key, value in percentiles(values, which, prefix=f'{stage}_', digits=4).items():
        setattr(row, key, value)


def _raw_inference(path: str, backend: str, threads: int, frames: list[np.ndarray], calls: int,
                   warmup: int) -> tuple[np.ndarray, dict]:
    """
    Time ``predict_normalised`` on the preprocessed frames in this process.

    ``calls`` timed calls, in ms.
    """
    from pilotnet_optimized.backends import load_backend
    from pilotnet_optimized.models.preprocess import preprocess

    with load_backend(path, backend, num_threads=threads) as model:
        inputs = [preprocess(f, model.preprocessing)[None] for f in frames]
        times = time_each(
            model.predict_normalised,
            [inputs[i % len(inputs)] for i in range(calls)],
            warmup=[inputs[i % len(inputs)] for i in range(warmup)],
        )
        return times, model.describe()


def bench_model(
    model: str,
    transport: str,
    frames_rgb: list[np.ndarray],
    *,
    frames: int = 300,
    warmup: int = 30,
    threads: int = 1,
    backend: str = 'auto',
    models_dir: str = DEFAULT_MODELS_DIR,
    frame_timeout: float = 0.5,
    start_timeout: float = 120.0,
    domain: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> LatencyRow:
    """
    Benchmark one model under one transport.

    Start the node, drive ``warmup + frames`` frames, stop it, time raw inference. Errors (a model
    that cannot be found or loaded, a node that does not start) become the row's error. The model
    :data:`FLOOR` is the bare transport floor: :mod:`.latency_floor` in the node's place, no raw
    inference.
    """
    say = progress or (lambda text: None)
    row = LatencyRow(model=model, transport=transport, threads=threads)
    domain = free_ros_domain() if domain is None else domain
    if model == FLOOR:
        path = None
        label = f'transport floor ({transport})'
        spec = NodeSpec(
            name=topics.INFERENCE_NODE,
            executable='latency_floor',
            module='pilotnet_optimized.nodes.latency_floor',
            parameters={'use_sim_time': False},
        )
    else:
        try:
            path = str(resolve_model(model, models_dir))
            graph = describe_graph(
                {'model': path, 'models_dir': models_dir, 'backend': backend,
                 'num_threads': threads}
            )
        except PilotnetError as err:
            row.status, row.error = 'failed', one_line(err)
            return row
        row.path = path
        label = f'{Path(path).name} ({transport})'
        spec = next(s for s in graph if s.name == topics.INFERENCE_NODE)
        # The graph's inference node, but on the system clock (the driver stamps frames with it,
        # and nothing publishes /clock) and with this benchmark's transport (in the environment
        # below) instead of the graph's.
        spec = dataclasses.replace(
            spec, parameters={**spec.parameters, 'use_sim_time': False}, env={}
        )
    env = {**os.environ, 'ROS_DOMAIN_ID': str(domain)}
    apply_env(env, dds_env(transport))
    round_trips: list[float] = []
    timings: list[list[float]] = []
    # (round trip, node e2e, node callback) of one frame
    paired: list[tuple[float, float, float]] = []
    with _transport(transport):
        # exists before the node starts (simultaneous participants can miss each other)
        driver = _Driver(domain)
        node: NodeProcess | None = None
        try:
            t0 = time.perf_counter()
            node = NodeProcess(spec, env=env)
            say(f'{label}: started {spec.name} (pid {node.pid}, domain {domain})')
            loaded = driver.wait_ready(node, start_timeout)
            row.start_s = round(time.perf_counter() - t0, 2)
            row.backend, row.precision = loaded.get('backend'), loaded.get('precision')
            row.size_mb = (
                round(float(loaded['size_mb']), 3) if loaded.get('size_mb') is not None else None
            )
            say(f'{label}: ready in {row.start_s:.1f} s; {warmup} warm-up + {frames} timed frames')
            answered = 0
            for i in range(warmup):
                answered += (
                    driver.frame(frames_rgb[i % len(frames_rgb)], frame_timeout)[0] is not None
                )
            if warmup and not answered:
                raise PilotnetError(
                    f'no answer to any of {warmup} warm-up frames within {frame_timeout:g} s each'
                )
            for i in range(frames):
                rt, timing = driver.frame(frames_rgb[i % len(frames_rgb)], frame_timeout)
                if rt is None:
                    row.lost += 1
                    if node.poll() is not None:
                        raise PilotnetError(node.error_line())
                    continue
                round_trips.append(rt)
                if timing is not None:
                    timings.append(timing)
                    paired.append((rt, timing[1], timing[3]))
        except PilotnetError as err:
            row.status, row.error = 'failed', one_line(err)
        finally:
            if node is not None:
                node.stop()
            driver.close()
    row.frames = len(round_trips)
    if row.status != 'ok':
        say(f'{label}: error: {row.error}')
        return row
    if not round_trips:
        row.status, row.error = (
            'failed',
            f'no answer to any of {frames} frames within {frame_timeout:g} s each',
        )
        say(f'{label}: error: {row.error}')
        return row
    if path is None:
        # The floor: no model, so no raw inference; its camera hop is what the rows compare with.
        _put(row, round_trips, 'round_trip', (50, 90, 99))
        if timings:
            t = np.asarray(timings)
            _put(row, t[:, 1], 'node_e2e', (50, 90, 99))
            _put(row, t[:, 3], 'node_callback')
            p = np.asarray(paired)
            _put(row, p[:, 1] - p[:, 2], 'camera_hop')
            _put(row, p[:, 0] - p[:, 1], 'return_hop')
        say(
            f'{label}: round trip p50 {row.round_trip_p50_ms:.3f} ms, camera hop p50 '
            f"{format_cell(row.camera_hop_p50_ms, '{:.3f}')} ms"
        )
        return row
    try:
        raw, info = _raw_inference(path, backend, threads, frames_rgb, max(frames, 1), warmup)
    except PilotnetError as err:
        row.status, row.error = 'failed', f'raw inference: {one_line(err)}'
        say(f'{label}: error: {row.error}')
        return row
    row.backend, row.precision = info['backend'], info['precision']
    _put(row, raw, 'raw', (50, 90, 99))
    _put(row, round_trips, 'round_trip', (50, 90, 99))
    if timings:
        t = np.asarray(timings)
        _put(row, t[:, 0], 'node_inference', (50, 99))
        _put(row, t[:, 1], 'node_e2e', (50, 90, 99))
        _put(row, t[:, 2], 'node_preprocess')
        _put(row, t[:, 3], 'node_callback')
        p = np.asarray(paired)
        _put(row, p[:, 1] - p[:, 2], 'camera_hop')
        _put(row, p[:, 0] - p[:, 1], 'return_hop')
        assert row.node_e2e_p50_ms is not None and row.raw_p50_ms is not None
        row.overhead_ms = round(row.node_e2e_p50_ms - row.raw_p50_ms, 4)
        row.target_met = row.overhead_ms <= TARGET_OVERHEAD_MS
    say(
        f'{label}: round trip p50 {row.round_trip_p50_ms:.3f} ms, node stamp->publish p50 '
        f"{format_cell(row.node_e2e_p50_ms, '{:.3f}')} ms, raw inference p50 {row.raw_p50_ms:.3f}"
        ' ms, overhead '
        f"{format_cell(row.overhead_ms, '{:.3f}')} ms" + (f', {row.lost} lost' if row.lost else '')
    )
    return row


# -- the whole benchmark --------------------------------------------------------------------------
def bench_latency(
    models: Sequence[str],
    transports: Sequence[str] = (PROJECT_TRANSPORT,),
    *,
    frames: int = 300,
    warmup: int = 30,
    threads: int = 1,
    backend: str = 'auto',
    models_dir: str = DEFAULT_MODELS_DIR,
    frame_timeout: float = 0.5,
    start_timeout: float = 120.0,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
    floor: bool = True,
) -> dict:
    """
    Benchmark every model under every transport.

    It goes model by model, so one model's transports run back to back.

    With ``floor``, each transport starts with the :data:`FLOOR` row, and every row's camera hop
    is also given as a ratio to it (``camera_hop_vs_floor``).

    :returns: a JSON-ready report: header (machine, load, versions, settings, command line, times)
        and rows.
    :raises PilotnetError: for settings that make no sense (no models, frames < 1).
    """
    if not models:
        raise PilotnetError('no models given')
    if frames < 1 or warmup < 0:
        raise PilotnetError(
            f'--frames must be at least 1 and --warmup at least 0 (got {frames}, {warmup})'
        )
    say = progress or (lambda text: None)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    load = [round(x, 2) for x in os.getloadavg()]
    frames_rgb = render_frames()
    rows: list[LatencyRow] = []
    # SIGTERM stops the bench like Ctrl-C does: every node is stopped on the way out.
    in_main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main else None
    try:
        if floor:
            for transport in transports:
                rows.append(
                    bench_model(FLOOR, transport, frames_rgb, frames=frames, warmup=warmup,
                                frame_timeout=frame_timeout, start_timeout=start_timeout,
                                progress=say)
                )
        for model in models:
            for transport in transports:
                rows.append(
                    bench_model(
                        model,
                        transport,
                        frames_rgb,
                        frames=frames,
                        warmup=warmup,
                        threads=threads,
                        backend=backend,
                        models_dir=models_dir,
                        frame_timeout=frame_timeout,
                        start_timeout=start_timeout,
                        progress=say,
                    )
                )
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, old)
    compare_with_floor(rows)
    h, w = frames_rgb[0].shape[:2]
    return {
        'benchmark': 'bench-latency',
        'command': command,
        'started': started.isoformat(timespec='seconds'),
        'finished': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'seconds': round(time.perf_counter() - t0, 1),
        'machine': machine_description(),
        'load_average': load,
        'python': platform.python_version(),
        'versions': versions(),
        'rmw': os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp (default)'),
        'image': (
            f'{w}x{h} rgb8, rendered by the built-in simulator (simple circuit, {len(frames_rgb)}'
            ' views)'
        ),
        'frames': frames,
        'warmup': warmup,
        'threads': threads,
        'frame_timeout_s': frame_timeout,
        'transports': list(transports),
        'latency': (
            'one frame at a time between two processes; round trip = answer received here - image'
            ' stamp; node e2e = stamp -> command publish in the node; raw = predict_normalised in'
            ' this process, same model and threads, as many calls as frames'
        ),
        'target': (
            f'node e2e p50 - raw inference p50 <= {TARGET_OVERHEAD_MS:g} ms; camera hop p50 <='
            f' {TARGET_HOP_RATIO:g}x the transport floor (a no-op subscriber, same frames)'
        ),
        'rows': [asdict(r) for r in rows],
    }


def compare_with_floor(rows: Sequence[LatencyRow]) -> None:
    """Set each model row's camera hop as a ratio to its transport's :data:`FLOOR` row."""
    floors = {
        r.transport: r.camera_hop_p50_ms
        for r in rows
        if r.model == FLOOR and r.status == 'ok' and r.camera_hop_p50_ms
    }
    for r in rows:
        base = floors.get(r.transport)
        if r.model != FLOOR and base and r.camera_hop_p50_ms is not None:
            r.camera_hop_vs_floor = round(r.camera_hop_p50_ms / base, 3)
            r.hop_target_met = r.camera_hop_vs_floor <= TARGET_HOP_RATIO


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# -- output ---------------------------------------------------------------------------------------
#: The table's columns, over the cells of :func:`_cells` (p50 / p90 / p99 in one cell).
COLUMNS = (
    Column('model', 'name'),
    Column('transport', 'transport'),
    Column('backend', 'backend'),
    Column('precision', 'precision'),
    Column('frames', 'frames'),
    Column('raw inference ms', 'raw'),
    Column('node inference p50 ms', 'node_inference_p50_ms', '{:.3f}'),
    Column('node stamp->publish ms', 'node_e2e'),
    Column('round trip ms', 'round_trip'),
    Column('overhead ms', 'overhead_ms', '{:.3f}'),
    Column(f'<= {TARGET_OVERHEAD_MS:g} ms', 'target'),
    Column('camera hop ms', 'camera_hop_p50_ms', '{:.3f}'),
    Column('x floor', 'camera_hop_vs_floor', '{:.2f}'),
    Column(f'<= {TARGET_HOP_RATIO:g}x', 'hop_target'),
    Column('status', 'status'),
)


def _trio(row: Mapping[str, Any], stage: str) -> str | None:
    values = [row.get(f'{stage}_{p}_ms') for p in ('p50', 'p90', 'p99')]
    return None if values[0] is None else ' / '.join(f'{v:.2f}' for v in values)


def _cells(r: Mapping[str, Any]) -> dict[str, Any]:
    """Return one report row as the table shows it."""
    ok = r['status'] == 'ok'
    return {
        **r,
        'name': Path(r['path']).name if r['path'] else r['model'],
        'backend': r['backend'] or None,
        'precision': r['precision'] or None,
        'frames': (
            None if not ok else str(r['frames']) + (f" ({r['lost']} lost)" if r['lost'] else '')
        ),
        'raw': _trio(r, 'raw'),
        'node_e2e': _trio(r, 'node_e2e'),
        'round_trip': _trio(r, 'round_trip'),
        'target': None if r['target_met'] is None else ('yes' if r['target_met'] else 'no'),
        'hop_target': (
            None if r.get('hop_target_met') is None else ('yes' if r['hop_target_met'] else 'no')
        ),
        'status': 'ok' if ok else f"{r['status']}: {r['error']}",
    }


def latency_table(report: Mapping[str, Any]) -> str:
    """Return the report's rows as a Markdown table (p50 / p90 / p99 in one cell)."""
    return markdown_table([_cells(r) for r in report['rows']], COLUMNS)


# -- command line ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pilotnet bench-latency`` arguments."""
    parser.add_argument(
        '--models',
        nargs='+',
        metavar='MODEL',
        help=(
            'model files or names looked up in --models-dir, comma- or space-separated (default: '
            'baseline, dynamic, int8, the first .onnx and the first .keras/SavedModel there)'
        ),
    )
    parser.add_argument(
        '--models-dir',
        default=DEFAULT_MODELS_DIR,
        help=f'folder where model names are looked up (default: {DEFAULT_MODELS_DIR})',
    )
    parser.add_argument(
        '--frames', type=int, default=300, help='timed frames per model (default: 300)'
    )
    parser.add_argument(
        '--warmup', type=int, default=30, help='untimed frames first (default: 30)'
    )
    parser.add_argument(
        '--threads', type=int, default=1, help='inference threads, node and raw (default: 1)'
    )
    parser.add_argument('--backend', default='auto', choices=BACKEND_CHOICES,
                        help='inference runtime (default: auto, from the file)')
    parser.add_argument(
        '--transports',
        default=PROJECT_TRANSPORT,
        metavar='T1,T2',
        help=(
            'DDS transport settings to run each model under, for the node and this process alike: '
            f"{', '.join(TRANSPORTS)} ({PROJECT_TRANSPORT}: config/fastdds_shm.xml, what the graph"
            ' uses; '
            f"DEFAULT: Fast DDS's own; the others: {BUILTIN_TRANSPORTS_VAR} modes) "
            f'(default: {PROJECT_TRANSPORT})'
        ),
    )
    parser.add_argument(
        '--frame-timeout',
        type=float,
        default=0.5,
        metavar='S',
        help=(
            'seconds to wait for the answer to one frame before it counts as lost and the next '
            'goes out (default: 0.5)'
        ),
    )
    parser.add_argument(
        '--start-timeout',
        type=float,
        default=120.0,
        metavar='S',
        help='seconds for the node to load its model and be discovered (default: 120)',
    )
    parser.add_argument(
        '--no-floor',
        action='store_true',
        help=(
            "skip the transport floor (a no-op subscriber in the node's place, run first under "
            'each transport; the camera hops are given as ratios to it)'
        ),
    )
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')


def _command_line(
    args: argparse.Namespace, models: Sequence[str], transports: Sequence[str]
) -> str:
    import shlex
    words = [
        'pilotnet',
        'bench-latency',
        '--models',
        ','.join(models),
        '--frames',
        str(args.frames),
        '--warmup',
        str(args.warmup),
        '--threads',
        str(args.threads),
        '--transports',
        ','.join(transports),
    ]
    if args.backend != 'auto':
        words += ['--backend', args.backend]
    if args.no_floor:
        words.append('--no-floor')
    return shlex.join(words)


def _one_process_per_transport(
    args: argparse.Namespace, models: Sequence[str], transports: Sequence[str]
) -> dict:
    """
    Run each transport setting in a process of its own.

    Return the reports merged (rows model by model, as one run).

    Fast DDS reads an XML profile once per process, when its first participant is created: the
    bench process's driver node must be the first participant of a process that has that setting
    from the start.
    """
    reports = []
    for transport in transports:
        cmd = [
            sys.executable,
            '-m',
            'pilotnet_optimized.cli',
            'bench-latency',
            '--models',
            ','.join(models),
            '--models-dir',
            args.models_dir,
            '--frames',
            str(args.frames),
            '--warmup',
            str(args.warmup),
            '--threads',
            str(args.threads),
            '--backend',
            args.backend,
            '--frame-timeout',
            str(args.frame_timeout),
            '--start-timeout',
            str(args.start_timeout),
            '--transports',
            transport,
            '--json',
        ] + (['--no-floor'] if args.no_floor else [])
        # progress (stderr) goes straight through
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        try:
            reports.append(json.loads(done.stdout))
        except ValueError:
            raise PilotnetError(
                f'the {transport} run failed (exit code {done.returncode})'
            ) from None
    merged = {**reports[0], 'command': _command_line(args, models, transports),
              'transports': list(transports), 'finished': reports[-1].get('finished')}
    order = {FLOOR: -1, **{m: i for i, m in enumerate(models)}}
    merged['rows'] = sorted(
        (r for rep in reports for r in rep['rows']),
        key=lambda r: (order.get(r['model'], len(order)), transports.index(r['transport'])),
    )
    return merged


def run(args: argparse.Namespace) -> int:
    """
    Run the benchmark; print the table (or JSON).

    Exit code 0 when at least one model ran (the floor is not a model), else 1.
    """
    models = split_names(args.models) if args.models else default_models(args.models_dir)
    transports = parse_transports(args.transports)
    if args.threads < 1:
        raise PilotnetError(f'--threads must be at least 1, not {args.threads}')
    if len(transports) > 1:
        report = _one_process_per_transport(args, models, transports)
    else:
        report = bench_latency(
            models,
            transports,
            frames=args.frames,
            warmup=args.warmup,
            threads=args.threads,
            backend=args.backend,
            models_dir=args.models_dir,
            frame_timeout=args.frame_timeout,
            start_timeout=args.start_timeout,
            command=_command_line(args, models, transports),
            progress=lambda text: print(f'[bench-latency] {text}', file=sys.stderr, flush=True),
            floor=not args.no_floor,
        )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{report['machine']}, load average"
            f" {' '.join(str(x) for x in report['load_average'])}; {report['image']};"
            f" {report['frames']} frames after {report['warmup']} warm-up, one at a time;"
            f" {report['threads']} thread(s); {report['rmw']}"
        )
        print(latency_table(report))
        print(f"target: {report['target']}")
    return 0 if any(r['status'] == 'ok' and r['model'] != FLOOR for r in report['rows']) else 1
