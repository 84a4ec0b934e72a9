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
Runtime backends: one :class:`Backend` per inference runtime.

Picked from the model file or by name.

Importing this package is cheap: each runtime (LiteRT, TensorFlow, ONNX Runtime, OpenVINO,
TensorRT) is imported only when a backend of that kind is built, so the robot side never pays for
TensorFlow unless it runs a Keras model.

>>> backend = load_backend('model.tflite', num_threads=2)      # doctest: +SKIP
>>> v, w = backend.predict(frame_rgb)                           # doctest: +SKIP
"""

from __future__ import annotations

import difflib
from pathlib import Path

from pilotnet_optimized.backends.base import Backend
from pilotnet_optimized.backends.litert import LiteRTBackend
from pilotnet_optimized.backends.onnxruntime_backend import OnnxRuntimeBackend
from pilotnet_optimized.backends.openvino_backend import OpenVINOBackend
from pilotnet_optimized.backends.tensorflow_backend import is_savedmodel, TensorFlowBackend
from pilotnet_optimized.backends.tensorrt_backend import TensorRTBackend
from pilotnet_optimized.errors import ModelError, PilotnetError
from pilotnet_optimized.models.preprocess import Preprocessing

__all__ = [
    'BACKENDS',
    'BACKEND_CHOICES',
    'MODEL_SUFFIXES',
    'Backend',
    'LiteRTBackend',
    'OnnxRuntimeBackend',
    'OpenVINOBackend',
    'TensorFlowBackend',
    'TensorRTBackend',
    'backend_for_path',
    'load_backend',
]

BACKENDS: dict[str, type[Backend]] = {
    cls.name: cls
    for cls in (LiteRTBackend, TensorFlowBackend, OnnxRuntimeBackend, OpenVINOBackend,
                TensorRTBackend)
}
#: What a ``backend`` option or parameter accepts: ``auto`` (from the model file) or a runtime's
#: name.
BACKEND_CHOICES: tuple[str, ...] = ('auto', *BACKENDS)
#: Model file suffixes some backend loads (a SavedModel is a folder with ``saved_model.pb``).
MODEL_SUFFIXES: tuple[str, ...] = tuple(
    s for cls in BACKENDS.values() for s in cls.suffixes if s != '/'
)


def backend_for_path(model_path: str | Path) -> str:
    """
    Return the backend name for a model file.

    It follows the suffix (a SavedModel folder is 'tensorflow').

    :raises ModelError: for a missing path, a suffix no backend loads, or a folder that is not a
        SavedModel.
    """
    path = Path(model_path)
    if not path.exists():
        raise ModelError(f'{path}: model not found')
    if path.is_dir():
        if is_savedmodel(path):
            return TensorFlowBackend.name
        raise ModelError(f'{path}: a folder without saved_model.pb is not a SavedModel')
    suffix = path.suffix.lower()
    for name, cls in BACKENDS.items():
        if suffix in cls.suffixes:
            return name
    raise ModelError(
        f"{path}: unknown model type {suffix!r}: expected one of {', '.join(MODEL_SUFFIXES)} or a "
        'SavedModel folder'
    )


def load_backend(model_path: str | Path, backend: str = 'auto', num_threads: int = 1,
                 preprocessing: Preprocessing | None = None) -> Backend:
    """
    Load a model in the named runtime, or (``'auto'``) the one its file suffix calls for.

    :param backend: ``'auto'`` or one of :data:`BACKENDS` (litert, tensorflow, onnxruntime,
        tensorrt).
    :param num_threads: CPU threads for one inference.
    :param preprocessing: overrides the model's sidecar preprocessing.
    :raises PilotnetError: for an unknown backend name (the message lists the valid ones and the
        nearest).
    :raises BackendUnavailableError: when the runtime cannot run here (e.g. TensorRT without a
        GPU).
    :raises ModelError: for a missing, corrupt or wrongly shaped model.
    """
    key = backend.strip().lower()
    if key == 'auto':
        key = backend_for_path(model_path)
    if key not in BACKENDS:
        near = difflib.get_close_matches(key, BACKEND_CHOICES, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ''
        raise PilotnetError(
            f"unknown backend '{backend}': choose one of {', '.join(BACKEND_CHOICES)}{hint}"
        )
    return BACKENDS[key](model_path, num_threads=num_threads, preprocessing=preprocessing)
