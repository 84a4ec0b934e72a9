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
The brain: camera ``Image`` in, ``Twist`` out.

Through any :mod:`~pilotnet_optimized.backends` model.

Topics (names are parameters; defaults are Behavior Metrics' ROS 2 Formula-1 car):

- ``image_topic`` (``/cam_f1_left/image_raw``): sensor_msgs/Image, QoS :data:`~.qos.CAMERA`;
  in: rgb8 or bgr8.
- ``cmd_topic`` (``/cmd_vel``): geometry_msgs/Twist, QoS :data:`~.qos.COMMAND`; out: linear.x = v,
  angular.z = w.
- ``stamped_cmd_topic`` (``/cmd_vel_stamped``): geometry_msgs/TwistStamped, QoS
  :data:`~.qos.COMMAND`; out: the same command stamped with the image's stamp, so a lock-step
  simulator can tell which frame it answers ('' = off).
- ``~/timing``: std_msgs/Float64MultiArray, QoS :data:`~.qos.TIMING`; out: one per frame,
  :data:`TIMING_FIELDS`.
- ``~/status``: std_msgs/String (JSON), QoS :data:`~.qos.STATUS`; out: ``model_loaded`` /
  ``model_error`` events.

Timing, per frame, in :data:`TIMING_FIELDS` order: ``inference_ms`` (the model call only, as
Behavior Metrics measures it), ``end_to_end_ms`` (image header stamp to command publish on the node
clock: with ``use_sim_time`` that is simulated time, 0 in lock-step by construction),
``preprocess_ms`` (Image to model input: conversion, crop, resize), ``callback_ms`` (image callback
start to command published, steady clock) and ``image_stamp_s`` (to pair a sample with its frame).
The names are also in ``layout.dim[0].label``.

Model swap: ``ros2 param set /inference_node model_path drq`` (or ``backend``, ``num_threads``) is
accepted at once and the model loads on a worker thread, while the old one keeps driving; when it
has loaded (and answered one blank frame) it replaces the old one between two frames. Until then
the parameters read back the model in use (``ros2 param get`` always tells the truth: they read
the new model once it drives). A model that cannot be loaded is refused: an error is logged, a
``model_error`` event goes out on ``~/status``, the old model keeps driving, and the parameters
still read the model in use.

Safety: a NaN or infinite model output, or any failure in the model call, is answered with a zero
command and an error log. An image the node cannot use (an encoding other than rgb8/bgr8, a short
buffer, a frame smaller than the model's preprocessing needs: :func:`min_frame_size`) is refused
with a warning, throttled per cause (a second cause is not hidden by the first); a frame too small
is answered with a zero command. A watchdog on the steady clock (simulated time stops when the
simulator does) publishes a zero command every 0.1 s while the newest usable image is older than
``input_timeout``; time the node itself was held up (a model loading on the worker thread holds
the interpreter, a busy machine) does not count, since images that arrived meanwhile are still
waiting to be taken. On SIGINT or SIGTERM the node publishes a last zero command and waits (at most
1 s) for it to be acknowledged before it exits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
import functools
import json
import math
import re
import sys
import threading
import time
from typing import Any

from geometry_msgs.msg import Twist, TwistStamped
import numpy as np
from pilotnet_optimized.backends import Backend, BACKEND_CHOICES, load_backend
from pilotnet_optimized.backends.timing import percentiles, timed_predict
from pilotnet_optimized.bags.images import image_pixels
from pilotnet_optimized.errors import ImageError, ModelOutputError, one_line
from pilotnet_optimized.laps.report import TIMING_FIELDS
from pilotnet_optimized.nodes import qos, topics
from pilotnet_optimized.nodes.params import declare_parameters, param, ParamSpec
from pilotnet_optimized.nodes.spin import spin_node
from pilotnet_optimized.store import DEFAULT_MODELS_DIR, resolve_model
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.time import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String

__all__ = ['InferenceNode', 'PARAMETERS', 'TIMING_FIELDS', 'load_model', 'main', 'min_frame_size']

WATCHDOG_PERIOD_S = 0.1
#: Seconds between two warnings about the same cause of unusable images.
IMAGE_WARNING_PERIOD_S = 5.0

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        'model_path',
        '',
        'model file or SavedModel folder, or a model name looked up in models_dir; set it at run'
        ' time to swap models (loaded in the background; a bad one is refused and this is set'
        ' back)',
    ),
    ParamSpec(
        'models_dir',
        DEFAULT_MODELS_DIR,
        'folder where model names are looked up (drq -> <dir>/drq.tflite); '
        'a change applies to the next model_path set',
    ),
    ParamSpec(
        'backend',
        'auto',
        'inference runtime; auto picks it from the model file',
        choices=BACKEND_CHOICES,
    ),
    ParamSpec('num_threads', 1, 'CPU threads for one inference', int_range=(1, 64)),
    ParamSpec(
        'image_topic',
        topics.CAMERA,
        'camera topic (sensor_msgs/Image, rgb8 or bgr8)',
        read_only=True,
    ),
    ParamSpec('cmd_topic', topics.COMMAND, 'command topic (geometry_msgs/Twist)', read_only=True),
    ParamSpec(
        'stamped_cmd_topic',
        topics.STAMPED_COMMAND,
        'the same commands as TwistStamped with the answered '
        "image's stamp, for lock-step simulators ('' = off)",
        read_only=True,
    ),
    ParamSpec(
        'input_timeout',
        0.5,
        'seconds without a usable image before the watchdog publishes zero commands',
        float_range=(0.05, 60.0),
    ),
    ParamSpec(
        'stats_period',
        10.0,
        'seconds between timing summaries in the log (0 = none); a change restarts '
        'the summary period',
        float_range=(0.0, 3600.0),
    ),
)
_RELOAD_KEYS = ('model_path', 'backend', 'num_threads')

#: Builds a ready backend from (path, backend name, threads); tests pass their own.
Loader = Callable[[str, str, int], Backend]


def load_model(path: str, backend: str = 'auto', num_threads: int = 1) -> Backend:
    """
    Load a model and run it once on a blank frame.

    So the first camera frame does not pay for the runtime's lazy set-up and a model that loads but
    cannot run (or answers NaN) is refused before it drives.

    :raises PilotnetError: for a missing, corrupt or broken model, or an unknown backend.
    """
    model = load_backend(path, backend, num_threads=num_threads)
    prep = model.preprocessing
    try:
        model.predict(np.zeros((prep.source_height, prep.source_width, 3), np.uint8))
    except Exception:
        model.close()
        raise
    return model


@functools.lru_cache(maxsize=32)
def _min_frame_size(crop_top: int | None, source_height: int, width: int,
                    height: int) -> tuple[int, int]:
    if crop_top is None:
        return width, height
    rows = height
    # resize_frame crops from round(crop_top * rows / source_height): find the fewest rows that
    # leave the model's input height below the crop.
    while rows - int(round(crop_top * rows / source_height)) < height:
        rows += 1
    return width, rows


def min_frame_size(prep: Any) -> tuple[int, int]:
    """
    Return the smallest camera frame (width, height) a model's preprocessing can use.

    The crop (scaled with the frame) must leave at least the model's input rows, and the frame
    must be at least as wide as the input: a smaller frame would be blown up to the input size and
    the model would drive on a blur (an 8x6 frame once drove at 17 m/s).
    """
    return _min_frame_size(prep.crop_top, int(prep.source_height), int(prep.width),
                           int(prep.height))


@dataclass(frozen=True)
class _Request:
    """A model to load: what the parameters asked for."""

    generation: int
    model_path: str
    models_dir: str
    backend: str
    num_threads: int

    def params(self) -> dict[str, Any]:
        return {
            'model_path': self.model_path,
            'backend': self.backend,
            'num_threads': self.num_threads,
        }


class InferenceNode(Node):
    """
    Drives with one model at a time.

    See the module documentation for topics, timing, swaps and safety.

    :param loader: builds backends (default :func:`load_model`); called on a worker thread for
        swaps.
    :param kwargs: passed to :class:`rclpy.node.Node` (``context``, ``parameter_overrides``...).
    :raises PilotnetError: when the initial model cannot be loaded, or a parameter has a bad value.
    """

    def __init__(
        self, node_name: str = topics.INFERENCE_NODE, *, loader: Loader = load_model, **kwargs: Any
    ) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self, PARAMETERS, on_set=self._on_set_parameters)
        self._loader = loader
        self._input_timeout = float(param(self, 'input_timeout'))
        first = _Request(0, str(param(self, 'model_path')), str(param(self, 'models_dir')),
                         str(param(self, 'backend')), int(param(self, 'num_threads')))
        self._backend: Backend = loader(
            str(resolve_model(first.model_path, first.models_dir)),
            first.backend,
            first.num_threads,
        )
        self._active = first
        self._generation = 0
        self._lock = threading.Lock()
        self._loaded: list[tuple[_Request, Backend | None, BaseException | None, float]] = []
        self._reverting = False
        self._pending: _Request | None = None   # the newest model asked for, while it loads
        self._last_image: float | None = None   # time.monotonic() of the newest usable image
        self._last_tick: float | None = None    # time.monotonic() of the last watchdog tick
        self._held_s = 0.0   # time since the newest image that the node itself was held up
        self._warned: dict[str, float] = {}     # image warning cause -> when it was last logged
        self._stale = True
        # (inference_ms, callback_ms)
        self._times: deque[tuple[float, float]] = deque(maxlen=2000)
        self._frames_since_stats = 0

        self._cmd_pub = self.create_publisher(Twist, str(param(self, 'cmd_topic')), qos.COMMAND)
        stamped = str(param(self, 'stamped_cmd_topic')).strip()
        self._stamped_pub = (
            self.create_publisher(TwistStamped, stamped, qos.COMMAND) if stamped else None
        )
        self._timing_pub = self.create_publisher(Float64MultiArray, topics.TIMING, qos.TIMING)
        self._status_pub = self.create_publisher(String, topics.STATUS, qos.STATUS)
        self._image_sub = self.create_subscription(
            Image, str(param(self, 'image_topic')), self._on_image, qos.CAMERA
        )
        # Steady clock: with use_sim_time the ROS clock stops when the simulator does, and so would
        # a watchdog on it.
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._watchdog = self.create_timer(
            WATCHDOG_PERIOD_S, self._on_watchdog, clock=self._steady
        )
        self._stats_timer: Any = None
        self._set_stats_period(float(param(self, 'stats_period')))
        # Worker threads hand loaded models to the executor thread through this, so the swap
        # happens between frames.
        self._loaded_gc = self.create_guard_condition(self._on_model_loaded)
        # A set accepted while a model loads: the parameters go back to the model in use right
        # after (a parameter callback cannot change what it is accepting).
        self._show_active_gc = self.create_guard_condition(self._revert_parameters)

        info = self._backend.describe()
        self.get_logger().info(
            f"driving with {info['path']} ({info['backend']}, {info['precision']}, "
            f"{info['size_mb']:.2f} MB, {info['threads']} thread(s)); camera "
            f'{self._image_sub.topic_name}, commands {self._cmd_pub.topic_name}'
        )
        self._publish_status(
            {'event': 'model_loaded', 'requested': first.model_path, **info, 'load_seconds': None}
        )

    # -- parameters and model swaps ---------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """Return the model driving now."""
        return self._backend

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """
        Apply a parameter change.

        Its choices are checked already, by :func:`~.params.declare_parameters`. Applying it means:
        start loading a new model in the background when one is asked for, restart the stats timer,
        take the new timeout.
        """
        if self._reverting:
            return SetParametersResult(successful=True)
        changes = {p.name: p.value for p in params}
        if 'model_path' in changes and not str(changes['model_path']).strip():
            return SetParametersResult(successful=False, reason='model_path must not be empty')
        if 'input_timeout' in changes:
            self._input_timeout = float(changes['input_timeout'])
        if 'stats_period' in changes:
            self._set_stats_period(float(changes['stats_period']))
        if any(key in changes for key in _RELOAD_KEYS):
            current = {key: param(self, key) for key in (*_RELOAD_KEYS, 'models_dir')}
            if self._pending is not None:   # a change to a model still loading
                current.update(self._pending.params())
            current.update(changes)
            self._generation += 1
            request = _Request(
                self._generation,
                str(current['model_path']),
                str(current['models_dir']),
                str(current['backend']),
                int(current['num_threads']),
            )
            self._pending = request
            self.get_logger().info(
                f'loading {request.model_path} ({request.backend}, {request.num_threads} '
                f'thread(s)) in the background; still driving with {self._active.model_path} '
                '(model_path reads it until the new model drives)'
            )
            self._show_active_gc.trigger()
            threading.Thread(
                target=self._load_worker,
                args=(request,),
                name=f'model-load-{request.generation}',
                daemon=True,
            ).start()
        return SetParametersResult(successful=True)

    def _load_worker(self, request: _Request) -> None:
        """
        Off the executor: resolve, load and warm up.

        Hand the result over through the guard condition.
        """
        start = time.perf_counter()
        model: Backend | None = None
        error: BaseException | None = None
        try:
            path = resolve_model(request.model_path, request.models_dir)
            model = self._loader(str(path), request.backend, request.num_threads)
        except Exception as err:
            # Whatever a runtime raises, the model is refused, not the node
            error = err
        with self._lock:
            self._loaded.append((request, model, error, time.perf_counter() - start))
        try:
            self._loaded_gc.trigger()
        except Exception:
            # The node was destroyed while loading: nothing left to hand over to
            if model is not None:
                model.close()

    def _on_model_loaded(self) -> None:
        """
        On the executor thread.

        Swap in a loaded model, or refuse a failed one and set the parameters back.
        """
        with self._lock:
            results, self._loaded = self._loaded, []
        for request, model, error, seconds in results:
            if request.generation != self._generation:
                # A newer request was made while this one loaded: only the newest one counts.
                if model is not None:
                    model.close()
                continue
            self._pending = None
            if model is not None:
                old, self._backend, self._active = self._backend, model, request
                old.close()
                self._revert_parameters()   # they read the model that drives now
                info = model.describe()
                self.get_logger().info(
                    f"swapped model in {seconds:.2f} s: now driving with {info['path']} "
                    f"({info['backend']}, {info['precision']}, {info['threads']} thread(s))"
                )
                self._publish_status(
                    {
                        'event': 'model_loaded',
                        'requested': request.model_path,
                        **info,
                        'load_seconds': round(seconds, 3),
                    }
                )
            else:
                text = one_line(error)
                self.get_logger().error(
                    f'cannot use model {request.model_path}: {text}; still driving with '
                    f'{self._active.model_path}'
                )
                self._publish_status(
                    {
                        'event': 'model_error',
                        'requested': request.model_path,
                        'error': text,
                        'path': str(self._backend.model_path),
                        'active': self._active.model_path,
                    }
                )
                self._revert_parameters()

    def _revert_parameters(self) -> None:
        self._reverting = True
        try:
            self.set_parameters([Parameter(k, value=v) for k, v in self._active.params().items()])
        finally:
            self._reverting = False

    def _publish_status(self, event: dict[str, Any]) -> None:
        self._status_pub.publish(String(data=json.dumps(event, default=str)))

    # -- frames -----------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        start = time.perf_counter()
        try:
            # A view of the message buffer: preprocessed in place, straight into the model input
            pixels, bgr = image_pixels(msg)
        except ImageError as err:
            # Not a usable image: no command, and the watchdog is not fed, so a wrong camera stops
            # the car.
            self._warn_image(f'ignoring camera image: {err}')
            return
        model = self._backend  # read once: a swap lands between frames, never inside one
        need_w, need_h = min_frame_size(model.preprocessing)
        if pixels.shape[1] < need_w or pixels.shape[0] < need_h:
            # Answered (a lock-step simulator waits for it), with a zero: never driven on.
            self._warn_image(
                f'camera image {pixels.shape[1]}x{pixels.shape[0]} is too small: the model'
                f' preprocessing needs at least {need_w}x{need_h} (crop from row '
                f'{model.preprocessing.crop_top} of {model.preprocessing.source_height}, resize '
                f'to {model.preprocessing.width}x{model.preprocessing.height}): publishing a zero'
                ' command'
            )
            self._publish_command(0.0, 0.0, msg)
            return
        self._last_image = time.monotonic()
        self._held_s = 0.0
        if self._stale:
            self._stale = False
            self.get_logger().info('camera images arriving: driving')
        converted = time.perf_counter()
        try:
            # Backend.predict split into its stages (the one split every benchmark uses): the model
            # call is timed on its own, as Behavior Metrics times it.
            out, preprocess_ms, inference_ms = timed_predict(model, pixels, bgr=bgr)
            v, w = float(out[0]), float(out[1])
        except ModelOutputError as err:
            self.get_logger().error(f'{err}: publishing a zero command', throttle_duration_sec=1.0)
            self._publish_command(0.0, 0.0, msg)
            return
        except ImageError as err:
            # A frame the preprocessing refuses: the camera's fault, not the model's.
            self._warn_image(f'ignoring camera image: {err}: publishing a zero command')
            self._publish_command(0.0, 0.0, msg)
            return
        except Exception as err:
            # A failing model must stop the car, not kill the node
            self.get_logger().error(
                f'inference failed ({type(err).__name__}: {err}): publishing a zero command',
                throttle_duration_sec=1.0,
            )
            self._publish_command(0.0, 0.0, msg)
            return
        self._publish_command(v, w, msg)
        end = time.perf_counter()
        stamp = Time.from_msg(msg.header.stamp, clock_type=self.get_clock().clock_type)
        end_to_end_ms = (self.get_clock().now() - stamp).nanoseconds / 1e6
        callback_ms = (end - start) * 1e3
        # preprocess_ms: Image message to model input, the conversion to RGB included.
        preprocess_ms += (converted - start) * 1e3
        timing = Float64MultiArray(data=[inference_ms, end_to_end_ms, preprocess_ms, callback_ms,
                                         msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9])
        timing.layout.dim = [
            MultiArrayDimension(
                label=','.join(TIMING_FIELDS), size=len(TIMING_FIELDS), stride=len(TIMING_FIELDS)
            )
        ]
        self._timing_pub.publish(timing)
        self._times.append((inference_ms, callback_ms))
        self._frames_since_stats += 1

    def _warn_image(self, text: str) -> None:
        """Log a warning about an unusable image, at most once per cause every few seconds."""
        cause = re.sub(r'\d+', '#', text)   # the same cause with other sizes or counts
        now = time.monotonic()
        if now - self._warned.get(cause, -math.inf) >= IMAGE_WARNING_PERIOD_S:
            self._warned[cause] = now
            self.get_logger().warning(text)

    def _publish_command(self, v: float, w: float, image: Image | None = None) -> None:
        cmd = Twist()
        cmd.linear.x, cmd.angular.z = float(v), float(w)
        self._cmd_pub.publish(cmd)
        if self._stamped_pub is not None and image is not None:
            # Only answers to frames go here: a watchdog zero stamped 'now' could carry the stamp
            # of the frame a frozen lock-step simulator is waiting on, and be taken for its answer.
            self._stamped_pub.publish(TwistStamped(header=image.header, twist=cmd))

    # -- timers -----------------------------------------------------------------------------------
    def _on_watchdog(self) -> None:
        now = time.monotonic()
        if self._last_tick is not None:
            late = now - self._last_tick - WATCHDOG_PERIOD_S
            if late > WATCHDOG_PERIOD_S:
                # The node was held up (a model loading holds the interpreter, a busy machine):
                # images may be waiting to be taken, so that time is not the camera's.
                self._held_s += late
                if late > self._input_timeout:
                    self.get_logger().info(
                        f'the node was held up for {late:.1f} s (a model loading?): images that '
                        'arrived meanwhile are taken before the camera is judged',
                        throttle_duration_sec=5.0,
                    )
        self._last_tick = now
        age = math.inf if self._last_image is None else now - self._last_image - self._held_s
        if age <= self._input_timeout:
            return
        if not self._stale:
            self._stale = True
            self.get_logger().warning(
                f'no camera image for {self._input_timeout:g} s: publishing zero commands'
            )
        self._publish_command(0.0, 0.0)

    def _set_stats_period(self, period: float) -> None:
        """
        (Re)start the stats timer with ``period`` seconds (0: none).

        The count starts again with it, so that the next summary's frames and Hz are those of one
        whole new period.
        """
        if self._stats_timer is not None:
            self.destroy_timer(self._stats_timer)
        self._stats_period = period
        self._frames_since_stats = 0
        self._stats_timer = (
            self.create_timer(period, self._on_stats, clock=self._steady) if period > 0 else None
        )

    def _on_stats(self) -> None:
        n, self._frames_since_stats = self._frames_since_stats, 0
        if n == 0 or not self._times:
            return
        recent = np.array(list(self._times)[-n:])
        inference = percentiles(recent[:, 0], which=(50, 99))
        callback = percentiles(recent[:, 1], which=(50, 99))
        period = self._stats_period
        self.get_logger().info(
            f'{n} frames in {period:g} s ({n / period:.1f} Hz): inference p50 '
            f"{inference['p50_ms']:.2f} ms, p99 {inference['p99_ms']:.2f} ms; image to command "
            f"p50 {callback['p50_ms']:.2f} ms, p99 {callback['p99_ms']:.2f} ms"
        )

    # -- shutdown ---------------------------------------------------------------------------------
    def publish_final_zero(self, timeout_s: float = 1.0) -> None:
        """
        Stop the car: publish a zero command.

        It then waits (at most ``timeout_s``) until subscribers have it.
        """
        self._publish_command(0.0, 0.0)
        self._cmd_pub.wait_for_all_acked(Duration(seconds=timeout_s))
        self.get_logger().info('published a final zero command')

    def destroy_node(self) -> None:
        # Also called by the context's shutdown for a node whose constructor failed before it had a
        # model.
        model = getattr(self, '_backend', None)
        if model is not None:
            model.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """
    Run the inference node: spin until SIGINT/SIGTERM.

    ``ros2 run pilotnet_optimized inference_node --ros-args -p model_path:=...``.

    :returns: 0 after a clean stop, 2 when the node cannot start (one line on stderr says why).
    """
    return spin_node(
        topics.INFERENCE_NODE, InferenceNode, args, on_stop=InferenceNode.publish_final_zero
    )


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
