"""``pilotnet bench-latency``: image-to-Twist latency through the real graph, per model and DDS transport.

For each model, the real inference node is started as a process (``python -m ...inference_node --ros-args``, as
:mod:`.runner` starts it) in a private ROS domain, with the transport asked for (default: the graph's own,
:func:`~.graph.graph_env`). A driver node in this process, created before the inference node starts, publishes a
rendered 640x480 rgb8 camera frame on the camera topic (best effort, :data:`~.qos.CAMERA`) stamped with the system
clock, one at a time: the next frame goes out only after the stamped answer (``/cmd_vel_stamped``) and the node's
``~/timing`` sample for this frame arrived, or after ``frame_timeout``, so nothing queues. Per frame:

- round trip: receipt of the answer in this process minus the image stamp (camera hop, node, command hop);
- from the node's ``~/timing``, paired by ``image_stamp_s``: ``inference_ms``, ``end_to_end_ms`` (stamp to publish
  in the node: camera hop and callback), ``preprocess_ms``, ``callback_ms``.

The node reads its clock for ``end_to_end_ms`` just after it has published the command, so when the command's hop
back is quicker than that last bit of the node's callback (or the node is descheduled there), one frame's round
trip can be a little shorter than its node end-to-end; both are on the system clock of one machine.

Raw inference is timed in this process after the node has stopped: the same model, backend and threads, with
``predict_normalised`` on the preprocessed frames, as many calls as frames. The node's overhead is node end-to-end
p50 minus raw inference p50; the target is at most :data:`TARGET_OVERHEAD_MS`.

Importing this module imports nothing from ROS (``pilotnet --help`` builds its arguments); the run does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.nodes.graph import (BACKEND_CHOICES, DDS_VARS, DEFAULT_MODELS_DIR, PROJECT_TRANSPORT, NodeSpec,
                                            config_dir, dds_env, free_ros_domain, resolve_model)

__all__ = ['TRANSPORTS', 'TARGET_OVERHEAD_MS', 'LatencyRow', 'add_arguments', 'bench_latency', 'cmd_bench_latency',
           'default_models', 'markdown_table', 'parse_transports']

#: Transport settings (:func:`~.graph.dds_env`): the project's profile (``SHM_LARGE``), Fast DDS's own default
#: (``DEFAULT``: nothing set), or a ``FASTDDS_BUILTIN_TRANSPORTS`` mode.
TRANSPORTS = (PROJECT_TRANSPORT, 'LARGE_DATA', 'DEFAULT', 'SHM', 'UDPv4', 'UDPv6', 'LARGE_DATAv6')
TRANSPORT_VAR = 'FASTDDS_BUILTIN_TRANSPORTS'
#: The issue's bar: node end-to-end p50 at most this much above raw inference p50.
TARGET_OVERHEAD_MS = 1.0
#: Default models, looked up in ``--models-dir``: these names, then the first ONNX and the first Keras/SavedModel.
DEFAULT_NAMES = ('baseline', 'dynamic', 'int8')
NODE_NAME = 'inference_node'
IMAGE_TOPIC = '/cam_f1_left/image_raw'
STAMPED_TOPIC = '/cmd_vel_stamped'
KILL_AFTER_TERM_S = 2.0
EXAMPLE = 'pilotnet bench-latency --models baseline,dynamic,int8 --frames 300 --transports SHM_LARGE,DEFAULT'


@dataclass
class LatencyRow:
    """One model under one transport: latencies in ms (p50/p90/p99), or the error that stopped it."""

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
    camera_hop_p50_ms: float | None = None   # per frame: node e2e - node callback (DDS, take, deserialise, wake-up)
    return_hop_p50_ms: float | None = None   # per frame: round trip - node e2e (may be < 0: see the module doc)
    overhead_ms: float | None = None
    target_met: bool | None = None
    status: str = 'ok'
    error: str | None = None


# -- inputs ----------------------------------------------------------------------------------------------------------
def default_models(models_dir: str | Path = DEFAULT_MODELS_DIR) -> list[str]:
    """One model per backend from ``models_dir`` (the ``pilotnet optimize`` output): baseline, dynamic and int8
    TFLite, the first ONNX file, the first Keras file or SavedModel folder; those that exist.

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
        raise PilotnetError(f'no models in {folder} (run pilotnet optimize, or give --models a.tflite,b.onnx)')
    return list(dict.fromkeys(found))


def parse_transports(text: str) -> list[str]:
    """``'large_data,DEFAULT'`` -> ``['LARGE_DATA', 'DEFAULT']``.

    :raises PilotnetError: for a value Fast DDS does not know (the message lists the valid ones).
    """
    by_key = {t.lower(): t for t in TRANSPORTS}
    out = []
    for item in (t.strip() for t in text.split(',')):
        if not item:
            continue
        if item.lower() not in by_key:
            raise PilotnetError(f"unknown transport '{item}': choose from {', '.join(TRANSPORTS)} "
                                f'({PROJECT_TRANSPORT}: the project\'s profile; DEFAULT: Fast DDS\'s own)')
        out.append(by_key[item.lower()])
    if not out:
        raise PilotnetError('no transport given')
    return list(dict.fromkeys(out))


def render_frames(count: int = 8, circuit: str = 'simple') -> list[np.ndarray]:
    """Real camera frames (640x480 RGB) from the built-in simulator, at ``count`` places along the circuit."""
    from pilotnet_optimized.sim import CameraRenderer, get_circuit
    track = get_circuit(circuit)
    renderer = CameraRenderer(track)
    return [renderer.render(*track.pose_at(track.length * i / count)) for i in range(count)]


@contextlib.contextmanager
def _transport(transport: str) -> Iterator[None]:
    """Set the DDS variables in this process (Fast DDS reads them when a participant is created)."""
    saved = {k: os.environ.get(k) for k in DDS_VARS}
    _apply(os.environ, dds_env(transport))
    try:
        yield
    finally:
        _apply(os.environ, saved)


def _apply(environ: Any, values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value


# -- the inference node as a process ---------------------------------------------------------------------------------
class _NodeProcess:
    """The inference node, started like the runner starts it; its output collected in the background."""

    def __init__(self, spec: NodeSpec, domain: int, transport: str) -> None:
        env = {**os.environ, 'ROS_DOMAIN_ID': str(domain), 'PYTHONUNBUFFERED': '1'}
        _apply(env, dds_env(transport))
        self.proc = subprocess.Popen(spec.command(sys.executable), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True, text=True,
                                     errors='replace')
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def error_line(self) -> str:
        """Why the node stopped: its one-line startup error, else its last line, else the exit code."""
        self._reader.join(timeout=2.0)
        prefix = f'{NODE_NAME}: error: '
        for line in reversed(self.lines):
            if line.startswith(prefix):
                return line[len(prefix):]
        last = next((line.strip() for line in reversed(self.lines) if line.strip()), '')
        return f'inference node exited with code {self.proc.poll()}' + (f': {last}' if last else '')

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGINT (the node publishes its final zero), then SIGTERM, then SIGKILL; returns the exit code."""
        for sig, wait_s in ((signal.SIGINT, timeout), (signal.SIGTERM, KILL_AFTER_TERM_S), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)  # its own process group: a terminal's Ctrl-C does not reach it
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait_s)
        self._reader.join(timeout=2.0)
        return self.proc.poll()


# -- the driver node in this process ---------------------------------------------------------------------------------
class _Driver:
    """Publishes stamped camera frames one at a time and collects the answers and the node's timing."""

    def __init__(self, domain: int) -> None:
        import rclpy
        from geometry_msgs.msg import TwistStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import Image
        from std_msgs.msg import Float64MultiArray, String

        from pilotnet_optimized.nodes import qos
        from pilotnet_optimized.bags.images import ImageSerializer

        self._rclpy = rclpy
        self.context = rclpy.Context()
        # Our own Ctrl-C handling: KeyboardInterrupt reaches the bench, which stops the node before it exits.
        rclpy.init(context=self.context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node('bench_latency_driver', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.image_pub = self.node.create_publisher(Image, IMAGE_TOPIC, qos.CAMERA)
        self._serializer = ImageSerializer(frame_id='cam_f1_left')
        self.node.create_subscription(TwistStamped, STAMPED_TOPIC, self._on_answer, qos.COMMAND)
        self.node.create_subscription(Float64MultiArray, f'/{NODE_NAME}/timing', self._on_timing, qos.TIMING)
        self.node.create_subscription(String, f'/{NODE_NAME}/status', self._on_status, qos.STATUS)
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

    def wait_ready(self, node: _NodeProcess, timeout: float) -> dict:
        """Until the node has loaded its model and both directions are discovered: the camera publisher matched
        to its subscription and its stamped-command publisher seen. Returns the node's ``model_loaded`` event.

        :raises PilotnetError: when the node exits (its one-line reason) or the timeout passes (what is missing).
        """
        deadline = time.monotonic() + timeout
        while True:
            loaded = next((e for e in self.status if e.get('event') == 'model_loaded'), None)
            seen = {'model loaded (~/status)': loaded is not None,
                    f'camera subscription matched ({IMAGE_TOPIC})': self.image_pub.get_subscription_count() > 0,
                    f'stamped command publisher seen ({STAMPED_TOPIC})': self.node.count_publishers(STAMPED_TOPIC) > 0,
                    'timing publisher seen': self.node.count_publishers(f'/{NODE_NAME}/timing') > 0}
            if all(seen.values()):
                assert loaded is not None
                return loaded
            if node.proc.poll() is not None:
                raise PilotnetError(node.error_line())
            if time.monotonic() > deadline:
                missing = ', '.join(k for k, ok in seen.items() if not ok)
                started = any('driving with' in line for line in node.lines)
                hint = ('the node is running but DDS discovery did not complete: rerun, or check '
                        'the DDS settings and ROS_DOMAIN_ID' if started else 'the node did not finish starting')
                raise PilotnetError(f'not ready after {timeout:g} s ({hint}); missing: {missing}')
            self.spin(0.05)

    def frame(self, rgb: np.ndarray, timeout: float) -> tuple[float | None, list[float] | None]:
        """Publish one frame stamped now; wait for its answer and timing. Returns (round trip ms, timing).

        The frame goes out as CDR bytes packed here in 0.02 ms, as a C++ camera driver would send it: rclpy's own
        serialisation of a 640x480 Image takes 1.1 ms, which no real camera adds to the latency."""
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


# -- one row ---------------------------------------------------------------------------------------------------------
def _pcts(values: Sequence[float]) -> tuple[float, float, float] | tuple[None, None, None]:
    if len(values) == 0:
        return None, None, None
    p50, p90, p99 = np.percentile(np.asarray(values, float), [50, 90, 99])
    return round(float(p50), 4), round(float(p90), 4), round(float(p99), 4)


def _raw_inference(path: str, backend: str, threads: int, frames: list[np.ndarray], calls: int,
                   warmup: int) -> tuple[np.ndarray, dict]:
    """``predict_normalised`` on the preprocessed frames in this process: ``calls`` timed calls, in ms."""
    from pilotnet_optimized.backends import load_backend
    from pilotnet_optimized.models.preprocess import preprocess

    with load_backend(path, backend, num_threads=threads) as model:
        inputs = [preprocess(f, model.preprocessing)[None] for f in frames]
        for i in range(warmup):
            model.predict_normalised(inputs[i % len(inputs)])
        times = np.empty(calls)
        for i in range(calls):
            x = inputs[i % len(inputs)]
            t = time.perf_counter()
            model.predict_normalised(x)
            times[i] = time.perf_counter() - t
        return times * 1e3, model.describe()


def bench_model(model: str, transport: str, frames_rgb: list[np.ndarray], *, frames: int = 300,
                warmup: int = 30, threads: int = 1, backend: str = 'auto', models_dir: str = DEFAULT_MODELS_DIR,
                frame_timeout: float = 0.5, start_timeout: float = 120.0, domain: int | None = None,
                progress: Callable[[str], None] | None = None) -> LatencyRow:
    """One model under one transport: start the node, drive ``warmup + frames`` frames, stop it, time raw
    inference. Errors (a model that cannot be found or loaded, a node that does not start) become the row's error.
    """
    say = progress or (lambda text: None)
    row = LatencyRow(model=model, transport=transport, threads=threads)
    try:
        path = str(resolve_model(model, models_dir))
    except PilotnetError as err:
        row.status, row.error = 'error', str(err)
        return row
    row.path = path
    label = f'{Path(path).name} ({transport})'
    domain = free_ros_domain() if domain is None else domain
    config = config_dir() / f'{NODE_NAME}.yaml'
    spec = NodeSpec(name=NODE_NAME, executable=NODE_NAME, module=f'pilotnet_optimized.nodes.{NODE_NAME}',
                    param_files=(str(config),) if config.is_file() else (),
                    parameters={'model_path': path, 'models_dir': models_dir, 'backend': backend,
                                'num_threads': threads})
    round_trips: list[float] = []
    timings: list[list[float]] = []
    paired: list[tuple[float, float, float]] = []   # (round trip, node e2e, node callback) of one frame
    with _transport(transport):
        driver = _Driver(domain)  # exists before the node starts (simultaneous participants can miss each other)
        node: _NodeProcess | None = None
        try:
            t0 = time.perf_counter()
            node = _NodeProcess(spec, domain, transport)
            say(f'{label}: started {NODE_NAME} (pid {node.proc.pid}, domain {domain})')
            loaded = driver.wait_ready(node, start_timeout)
            row.start_s = round(time.perf_counter() - t0, 2)
            row.backend, row.precision = loaded.get('backend'), loaded.get('precision')
            row.size_mb = round(float(loaded['size_mb']), 3) if loaded.get('size_mb') is not None else None
            say(f'{label}: ready in {row.start_s:.1f} s; {warmup} warm-up + {frames} timed frames')
            answered = 0
            for i in range(warmup):
                answered += driver.frame(frames_rgb[i % len(frames_rgb)], frame_timeout)[0] is not None
            if warmup and not answered:
                raise PilotnetError(f'no answer to any of {warmup} warm-up frames within {frame_timeout:g} s each')
            for i in range(frames):
                rt, timing = driver.frame(frames_rgb[i % len(frames_rgb)], frame_timeout)
                if rt is None:
                    row.lost += 1
                    if node.proc.poll() is not None:
                        raise PilotnetError(node.error_line())
                    continue
                round_trips.append(rt)
                if timing is not None:
                    timings.append(timing)
                    paired.append((rt, timing[1], timing[3]))
        except PilotnetError as err:
            row.status, row.error = 'error', ' '.join(str(err).split())
        finally:
            if node is not None:
                node.stop()
            driver.close()
    row.frames = len(round_trips)
    if row.status != 'ok':
        say(f'{label}: error: {row.error}')
        return row
    if not round_trips:
        row.status, row.error = 'error', f'no answer to any of {frames} frames within {frame_timeout:g} s each'
        say(f'{label}: error: {row.error}')
        return row
    try:
        raw, info = _raw_inference(path, backend, threads, frames_rgb, max(frames, 1), warmup)
    except PilotnetError as err:
        row.status, row.error = 'error', f'raw inference: {err}'
        say(f'{label}: error: {row.error}')
        return row
    row.backend, row.precision = info['backend'], info['precision']
    row.raw_p50_ms, row.raw_p90_ms, row.raw_p99_ms = _pcts(raw)
    row.round_trip_p50_ms, row.round_trip_p90_ms, row.round_trip_p99_ms = _pcts(round_trips)
    if timings:
        t = np.asarray(timings)
        row.node_inference_p50_ms, _, row.node_inference_p99_ms = _pcts(t[:, 0])
        row.node_e2e_p50_ms, row.node_e2e_p90_ms, row.node_e2e_p99_ms = _pcts(t[:, 1])
        row.node_preprocess_p50_ms = _pcts(t[:, 2])[0]
        row.node_callback_p50_ms = _pcts(t[:, 3])[0]
        p = np.asarray(paired)
        row.camera_hop_p50_ms = _pcts(p[:, 1] - p[:, 2])[0]
        row.return_hop_p50_ms = _pcts(p[:, 0] - p[:, 1])[0]
        assert row.node_e2e_p50_ms is not None and row.raw_p50_ms is not None
        row.overhead_ms = round(row.node_e2e_p50_ms - row.raw_p50_ms, 4)
        row.target_met = row.overhead_ms <= TARGET_OVERHEAD_MS
    say(f'{label}: round trip p50 {row.round_trip_p50_ms:.3f} ms, node stamp->publish p50 '
        f'{_num(row.node_e2e_p50_ms)} ms, raw inference p50 {row.raw_p50_ms:.3f} ms, overhead '
        f'{_num(row.overhead_ms)} ms' + (f', {row.lost} lost' if row.lost else ''))
    return row


def _num(value: float | None) -> str:
    return '-' if value is None else f'{value:.3f}'


# -- the whole benchmark ---------------------------------------------------------------------------------------------
def bench_latency(models: Sequence[str], transports: Sequence[str] = (PROJECT_TRANSPORT,), *, frames: int = 300,
                  warmup: int = 30, threads: int = 1, backend: str = 'auto', models_dir: str = DEFAULT_MODELS_DIR,
                  frame_timeout: float = 0.5, start_timeout: float = 120.0, command: str | None = None,
                  progress: Callable[[str], None] | None = None) -> dict:
    """Every model under every transport (model by model, so one model's transports run back to back).

    :returns: a JSON-ready report: header (machine, load, versions, settings, command line, times) and rows.
    :raises PilotnetError: for settings that make no sense (no models, frames < 1).
    """
    if not models:
        raise PilotnetError('no models given')
    if frames < 1 or warmup < 0:
        raise PilotnetError(f'--frames must be at least 1 and --warmup at least 0 (got {frames}, {warmup})')
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
        for model in models:
            for transport in transports:
                rows.append(bench_model(model, transport, frames_rgb, frames=frames, warmup=warmup,
                                        threads=threads, backend=backend, models_dir=models_dir,
                                        frame_timeout=frame_timeout, start_timeout=start_timeout, progress=say))
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, old)
    from pilotnet_optimized.sim.bench import machine_description
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
        'versions': _versions(),
        'rmw': os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp (default)'),
        'image': f'{w}x{h} rgb8, rendered by the built-in simulator (simple circuit, {len(frames_rgb)} views)',
        'frames': frames,
        'warmup': warmup,
        'threads': threads,
        'frame_timeout_s': frame_timeout,
        'transports': list(transports),
        'latency': ('one frame at a time between two processes; round trip = answer received here - image stamp; '
                    'node e2e = stamp -> command publish in the node; raw = predict_normalised in this process, '
                    'same model and threads, as many calls as frames'),
        'target': f'node e2e p50 - raw inference p50 <= {TARGET_OVERHEAD_MS:g} ms',
        'rows': [asdict(r) for r in rows],
    }


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for dist in ('ros-rclpy', 'ai-edge-litert', 'onnxruntime', 'tensorflow', 'numpy', 'opencv-python-headless'):
        with contextlib.suppress(PackageNotFoundError):
            out[dist] = version(dist)
    return out


# -- output ----------------------------------------------------------------------------------------------------------
def _trio(row: dict, prefix: str) -> str:
    values = [row.get(f'{prefix}_{p}_ms') for p in ('p50', 'p90', 'p99')]
    return '-' if values[0] is None else ' / '.join(f'{v:.2f}' for v in values)


def markdown_table(report: dict) -> str:
    """The report's rows as a Markdown table (p50 / p90 / p99 in one cell)."""
    header = ['model', 'transport', 'backend', 'precision', 'frames', 'raw inference ms', 'node inference p50 ms',
              'node stamp->publish ms', 'round trip ms', 'overhead ms', f'<= {TARGET_OVERHEAD_MS:g} ms', 'status']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for r in report['rows']:
        frames = '-' if r['status'] != 'ok' else str(r['frames']) + (f" ({r['lost']} lost)" if r['lost'] else '')
        met = '-' if r['target_met'] is None else ('yes' if r['target_met'] else 'no')
        status = 'ok' if r['status'] == 'ok' else f"error: {r['error']}"
        cells = [Path(r['path']).name if r['path'] else r['model'], r['transport'], r['backend'] or '-',
                 r['precision'] or '-', frames, _trio(r, 'raw'), _num(r['node_inference_p50_ms']),
                 _trio(r, 'node_e2e'), _trio(r, 'round_trip'), _num(r['overhead_ms']), met,
                 status.replace('|', '/')]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


# -- command line ----------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``pilotnet bench-latency`` arguments."""
    parser.add_argument('--models', help='comma-separated model files or names looked up in --models-dir (default: '
                        'baseline, dynamic, int8, the first .onnx and the first .keras/SavedModel there)')
    parser.add_argument('--models-dir', default=DEFAULT_MODELS_DIR,
                        help=f'folder where model names are looked up (default: {DEFAULT_MODELS_DIR})')
    parser.add_argument('--frames', type=int, default=300, help='timed frames per model (default: 300)')
    parser.add_argument('--warmup', type=int, default=30, help='untimed frames first (default: 30)')
    parser.add_argument('--threads', type=int, default=1, help='inference threads, node and raw (default: 1)')
    parser.add_argument('--backend', default='auto', choices=BACKEND_CHOICES,
                        help='inference runtime (default: auto, from the file)')
    parser.add_argument('--transports', default=PROJECT_TRANSPORT, metavar='T1,T2',
                        help='DDS transport settings to run each model under, for the node and this process alike: '
                        f"{', '.join(TRANSPORTS)} ({PROJECT_TRANSPORT}: config/fastdds_shm.xml, what the graph uses; "
                        f'DEFAULT: Fast DDS\'s own; the others: {TRANSPORT_VAR} modes) (default: {PROJECT_TRANSPORT})')
    parser.add_argument('--frame-timeout', type=float, default=0.5, metavar='S',
                        help='seconds to wait for the answer to one frame before it counts as lost and the next '
                        'goes out (default: 0.5)')
    parser.add_argument('--start-timeout', type=float, default=120.0, metavar='S',
                        help='seconds for the node to load its model and be discovered (default: 120)')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')


def _command_line(args: argparse.Namespace, models: Sequence[str], transports: Sequence[str]) -> str:
    import shlex
    words = ['pilotnet', 'bench-latency', '--models', ','.join(models), '--frames', str(args.frames),
             '--warmup', str(args.warmup), '--threads', str(args.threads), '--transports', ','.join(transports)]
    if args.backend != 'auto':
        words += ['--backend', args.backend]
    return shlex.join(words)


def _one_process_per_transport(args: argparse.Namespace, models: Sequence[str], transports: Sequence[str]) -> dict:
    """Each transport setting in a process of its own, the reports merged (rows model by model, as one run).

    Fast DDS reads an XML profile once per process, when its first participant is created: the bench process's
    driver node must be the first participant of a process that has that setting from the start."""
    reports = []
    for transport in transports:
        cmd = [sys.executable, '-m', 'pilotnet_optimized.cli', 'bench-latency', '--models', ','.join(models),
               '--models-dir', args.models_dir, '--frames', str(args.frames), '--warmup', str(args.warmup),
               '--threads', str(args.threads), '--backend', args.backend, '--frame-timeout', str(args.frame_timeout),
               '--start-timeout', str(args.start_timeout), '--transports', transport, '--json']
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)   # progress (stderr) goes straight through
        try:
            reports.append(json.loads(done.stdout))
        except ValueError:
            raise PilotnetError(f'the {transport} run failed (exit code {done.returncode})') from None
    merged = {**reports[0], 'command': _command_line(args, models, transports),
              'transports': list(transports), 'finished': reports[-1].get('finished')}
    order = {m: i for i, m in enumerate(models)}
    merged['rows'] = sorted((r for rep in reports for r in rep['rows']),
                            key=lambda r: (order.get(r['model'], len(order)), transports.index(r['transport'])))
    return merged


def cmd_bench_latency(args: argparse.Namespace) -> int:
    """Run the benchmark; print the table (or JSON). Exit code 0 when at least one model ran, else 1."""
    models = [m.strip() for m in args.models.split(',') if m.strip()] if args.models else \
        default_models(args.models_dir)
    transports = parse_transports(args.transports)
    if args.threads < 1:
        raise PilotnetError(f'--threads must be at least 1, not {args.threads}')
    if len(transports) > 1:
        report = _one_process_per_transport(args, models, transports)
    else:
        report = bench_latency(models, transports, frames=args.frames, warmup=args.warmup, threads=args.threads,
                               backend=args.backend, models_dir=args.models_dir, frame_timeout=args.frame_timeout,
                               start_timeout=args.start_timeout, command=_command_line(args, models, transports),
                               progress=lambda text: print(f'[bench-latency] {text}', file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['machine']}, load average {' '.join(str(x) for x in report['load_average'])}; "
              f"{report['image']}; {report['frames']} frames after {report['warmup']} warm-up, one at a time; "
              f"{report['threads']} thread(s); {report['rmw']}")
        print(markdown_table(report))
        print(f"target: {report['target']}")
    return 0 if any(r['status'] == 'ok' for r in report['rows']) else 1
