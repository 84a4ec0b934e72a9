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
A Behavior Metrics brain that drives with any model this project makes.

Behavior Metrics' pilot builds ``Brain(sensors, actuators, model=..., handler=..., config=...)``
(``model``: ``Parameters.Model`` of its YAML; ``config``: the other ``Parameters``) and calls
:meth:`Brain.execute` once per ``PilotTimeCycle`` (50 ms). Each call takes the camera image
(``sensors.get_camera('camera_0').getImage().data``, RGB), runs it through the project's one
preprocessing and a backend (:func:`pilotnet_optimized.backends.load_backend`: LiteRT, TensorFlow,
ONNX Runtime, TensorRT, from the file) and sends ``motors.sendV(v)``, ``motors.sendW(w)``. Its
metrics read ``inference_times`` (seconds, the model call only), ``gpu_inference``,
``first_image`` and ``suddenness_distance``. ROS-free: Behavior Metrics passes everything in.

A frame the preprocessing cannot take (before the first image Behavior Metrics' camera holds a
3x3 placeholder) or a failing model: zero command, one line (throttled).
"""

from __future__ import annotations

from pathlib import Path
import sys
import time
from typing import Any

import numpy as np
from pilotnet_optimized.backends import load_backend
from pilotnet_optimized.errors import ModelError, PilotnetError
from pilotnet_optimized.models.preprocess import denormalise_labels, preprocess
from pilotnet_optimized.store import DEFAULT_MODELS_DIR, resolve_model

__all__ = ['Brain', 'resolve_brain_model']

#: Where Behavior Metrics keeps models, relative to its ``behavior_metrics`` folder.
BM_MODEL_DIRS = ('models', 'models/gazebo/tf_models', 'models/gazebo')
WARN_EVERY_S = 5.0


def resolve_brain_model(model: str | None, bm_root: Path | None = None) -> Path:
    """
    Return the model file ``Parameters.Model`` names.

    As it is (absolute, or relative to the current folder), then under Behavior Metrics' model
    folders (``bm_root``/models, models/gazebo/tf_models), then as a model name of this project
    (``models/optimized``).

    :raises ModelError: when none exists.
    """
    if not model:
        raise ModelError('Parameters.Model is empty: name the model file to drive with')
    candidates = [Path(model).expanduser()]
    if bm_root is not None:
        candidates += [bm_root / d / model for d in BM_MODEL_DIRS]
    for path in candidates:
        if path.exists():
            return path
    try:
        return resolve_model(model, DEFAULT_MODELS_DIR)
    except PilotnetError:
        raise ModelError(f"model {model!r} not found (tried {', '.join(map(str, candidates))} and "
                         f'{DEFAULT_MODELS_DIR})') from None


class Brain:
    """
    The brain Behavior Metrics' pilot loads; see the module documentation.

    ``config`` keys of ours (all optional): ``Backend`` (auto), ``NumThreads`` (1), ``GPU``
    (reported as ``gpu_inference``; TensorRT models always are).
    """

    def __init__(self, sensors: Any, actuators: Any, model: str | None = None,
                 handler: Any = None, config: dict[str, Any] | None = None,
                 bm_root: Path | None = None) -> None:
        self.config = dict(config or {})
        self.camera = sensors.get_camera('camera_0')
        self.motors = actuators.get_motor('motors_0')
        self.handler = handler
        self.model_path = resolve_brain_model(model, bm_root)
        self.backend = load_backend(self.model_path,
                                    backend=str(self.config.get('Backend', 'auto')),
                                    num_threads=int(self.config.get('NumThreads', 1)))
        self.gpu_inference = bool(self.config.get('GPU', False)) or self.backend.name == 'tensorrt'
        self.inference_times: list[float] = []
        self.suddenness_distance: list[float] = []
        self.first_image: np.ndarray | None = None
        self.cont = 0
        self._previous: np.ndarray | None = None
        self._warned = 0.0

    def _say(self, text: str) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY_S:
            self._warned = now
            print(f'pilotnet_optimized brain: {text}', file=sys.stderr, flush=True)

    def _stop(self) -> None:
        self.motors.sendV(0.0)
        self.motors.sendW(0.0)

    def execute(self) -> None:
        """Run one cycle: camera image in, command out."""
        image = self.camera.getImage().data
        try:
            x = preprocess(np.ascontiguousarray(image, dtype=np.uint8), self.backend.preprocessing)
        except PilotnetError as err:
            self._say(f'no usable camera image yet ({err}): zero command')
            self._stop()
            return
        self.cont += 1
        if self.first_image is None:
            self.first_image = image
        try:
            start = time.perf_counter()
            out = self.backend.predict_normalised(x[None])[0]
            self.inference_times.append(time.perf_counter() - start)
        except PilotnetError as err:
            self._say(f'{err}: zero command')
            self._stop()
            return
        if self._previous is not None:
            self.suddenness_distance.append(float(np.linalg.norm(out - self._previous)))
        self._previous = out
        v, w = denormalise_labels(out)
        self.motors.sendV(float(v))
        self.motors.sendW(float(w))
        if self.handler is not None and hasattr(self.handler, 'update_frame'):
            self.handler.update_frame('frame_0', image)
