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
TensorFlow backend: tf_keras ``.keras`` / ``.h5`` files and SavedModel folders.

(Named ``tensorflow_backend`` so that ``import tensorflow`` inside the package still finds
TensorFlow.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pilotnet_optimized.backends.base import Backend
from pilotnet_optimized.errors import ModelError, one_line

__all__ = ['TensorFlowBackend', 'is_savedmodel']

SAVEDMODEL_FILES = ('saved_model.pb', 'saved_model.pbtxt')


def is_savedmodel(path: str | Path) -> bool:
    """Check whether ``path`` is a SavedModel folder."""
    p = Path(path)
    return p.is_dir() and any((p / name).is_file() for name in SAVEDMODEL_FILES)


class TensorFlowBackend(Backend):
    """
    A Keras model (called through a ``tf.function``) or a SavedModel's serving signature.

    ``model.predict`` is avoided on purpose: it builds a dataset pipeline per call and is ten times
    slower than a traced function at batch 1.
    """

    name: ClassVar[str] = 'tensorflow'
    suffixes: ClassVar[tuple[str, ...]] = ('.keras', '.h5', '/')

    def _load(self) -> None:
        import tensorflow as tf
        self._set_threads(tf)
        try:
            if self.model_path.is_dir():
                self._load_savedmodel(tf)
            else:
                self._load_keras(tf)
        except ModelError:
            raise
        # TF raises anything from OSError and zipfile errors to its own kinds
        except Exception as err:
            kind = 'SavedModel' if self.model_path.is_dir() else 'Keras model'
            raise ModelError(
                f'{self.model_path}: not a loadable {kind} ({one_line(err, 300)})'
            ) from err

    def _set_threads(self, tf: Any) -> None:
        # TF fixes its thread pools when it first runs an op; after that the setters raise
        # RuntimeError and the process keeps the pools it has (recorded in threads_applied rather
        # than failing the load).
        try:
            tf.config.threading.set_intra_op_parallelism_threads(self.num_threads)
            tf.config.threading.set_inter_op_parallelism_threads(self.num_threads)
        except RuntimeError:
            pass
        self.threads_applied = (
            tf.config.threading.get_intra_op_parallelism_threads() == self.num_threads
        )

    def _load_keras(self, tf: Any) -> None:
        import tf_keras
        if self.model_path.suffix.lower() not in ('.keras', '.h5'):
            raise ModelError(
                f'{self.model_path}: the tensorflow backend loads .keras, .h5 or a SavedModel'
                ' folder'
            )
        try:
            model = tf_keras.models.load_model(self.model_path, compile=False)
        except ValueError as err:
            if 'Unknown' not in str(err):
                raise
            model = _load_with_tfmot(self.model_path)
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ModelError(f'{self.model_path}: expected one input and one output, '
                             f'found {len(model.inputs)} and {len(model.outputs)}')
        self._shape = tuple(model.inputs[0].shape[1:])
        self._dtypes = {
            w.dtype.name if hasattr(w.dtype, 'name') else str(w.dtype) for w in model.weights
        }
        self._model = model
        spec = tf.TensorSpec([None, *self._shape], tf.float32)
        self._fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        self._output_key = None

    def _load_savedmodel(self, tf: Any) -> None:
        if not is_savedmodel(self.model_path):
            raise ModelError(
                f'{self.model_path}: a folder without saved_model.pb is not a SavedModel'
            )
        loaded = tf.saved_model.load(str(self.model_path))
        signatures = dict(loaded.signatures)
        if not signatures:
            raise ModelError(f'{self.model_path}: the SavedModel has no serving signature')
        fn = signatures.get('serving_default') or next(iter(signatures.values()))
        _, kwargs = fn.structured_input_signature
        outputs = fn.structured_outputs
        if len(kwargs) != 1 or not isinstance(outputs, dict) or len(outputs) != 1:
            raise ModelError(
                f'{self.model_path}: expected a signature with one input and one output'
            )
        self._input_key, spec = next(iter(kwargs.items()))
        self._output_key = next(iter(outputs))
        self._shape = tuple(spec.shape[1:])
        self._dtypes = {v.dtype.name for v in fn.variables}
        self._loaded = loaded  # the signature only holds weak references to the variables it reads
        self._fn = lambda x: fn(**{self._input_key: x})

    @property
    def precision(self) -> str:
        floats = {d for d in self._dtypes if d.startswith(('float', 'bfloat'))}
        if len(floats) > 1:
            return 'mixed'
        return floats.pop() if floats else 'float32'

    @property
    def input_shape(self) -> tuple[int, int, int]:
        # A dynamic dimension (None) takes whatever the preprocessing makes.
        expected = self.preprocessing.input_shape
        if len(self._shape) != len(expected):
            return tuple(self._shape)
        return tuple(int(e if d is None else d) for d, e in zip(self._shape, expected))

    def describe(self) -> dict:
        return {**super().describe(), 'threads_applied': self.threads_applied}

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        out = self._fn(batch)
        if self._output_key is not None:
            out = out[self._output_key]
        return out.numpy()


def _load_with_tfmot(path: Path) -> Any:
    """
    Load a quantisation-aware or pruning-wrapped model, whose wrapper layers only tfmot knows.

    Tried only after a plain load failed: importing tfmot is slow and switches TF to legacy Keras.
    """
    import tensorflow_model_optimization as tfmot
    import tf_keras
    with tfmot.quantization.keras.quantize_scope(), tfmot.sparsity.keras.prune_scope():
        return tf_keras.models.load_model(path, compile=False)
