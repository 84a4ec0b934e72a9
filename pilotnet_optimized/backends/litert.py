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
LiteRT (TFLite) backend for ``.tflite`` files.

Float32, float16, dynamic range and integer models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from pilotnet_optimized.backends.base import Backend, dequantise, quantise
from pilotnet_optimized.errors import ModelError, one_line

__all__ = ['LiteRTBackend', 'interpreter_class']


def interpreter_class() -> tuple[type, str]:
    """
    Return the TFLite interpreter to use and where it came from.

    LiteRT first (the maintained runtime), then the old ``tflite_runtime`` wheel, and TensorFlow's
    deprecated ``tf.lite`` only as a last resort: importing TensorFlow costs seconds and hundreds
    of MB on a robot.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, 'ai-edge-litert'
    except ImportError:
        pass
    try:
        # tflite-runtime 2.14 is built for numpy 1: under numpy 2 it fails to import, so fall
        # through.
        from tflite_runtime.interpreter import Interpreter
        return Interpreter, 'tflite-runtime'
    except (ImportError, AttributeError):
        pass
    import tensorflow as tf
    return tf.lite.Interpreter, 'tensorflow'


class LiteRTBackend(Backend):
    """
    A ``.tflite`` model in LiteRT's interpreter (XNNPACK on CPU).

    Integer models are fed and read through their tensors' scale and zero point, so callers always
    see floats. Not thread-safe: use one backend per thread.
    """

    name: ClassVar[str] = 'litert'
    suffixes: ClassVar[tuple[str, ...]] = ('.tflite',)

    def _load(self) -> None:
        interpreter, self.runtime = interpreter_class()
        try:
            self._it = interpreter(model_path=str(self.model_path), num_threads=self.num_threads)
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ModelError(
                f'{self.model_path}: not a loadable TFLite model ({one_line(err, 300)})'
            ) from err
        inputs, outputs = self._it.get_input_details(), self._it.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f'{self.model_path}: expected one input and one output tensor, '
                             f'found {len(inputs)} and {len(outputs)}')
        # Cached once: get_*_details() builds dicts on every call, too slow for the per-frame path.
        self._in: dict[str, Any] = inputs[0]
        self._out: dict[str, Any] = outputs[0]
        self._in_index, self._out_index = self._in['index'], self._out['index']
        self._in_dtype, self._out_dtype = np.dtype(self._in['dtype']), np.dtype(self._out['dtype'])
        self._in_q = self._in['quantization'] if self._in_dtype.kind in 'iu' else None
        self._out_q = self._out['quantization'] if self._out_dtype.kind in 'iu' else None
        for label, q in (('input', self._in_q), ('output', self._out_q)):
            if q is not None and not q[0] > 0:
                raise ModelError(
                    f'{self.model_path}: integer {label} tensor without a quantisation scale'
                )
        self._batch = int(self._in['shape'][0])
        self._precision = self._find_precision()

    def _find_precision(self) -> str:
        if self._in_q is not None:
            return f'int8 ({self._in_dtype.name} I/O)'
        tensors = self._it.get_tensor_details()
        dtypes = {np.dtype(t['dtype']) for t in tensors}
        if np.dtype(np.float16) in dtypes:
            return 'float16'
        if np.dtype(np.int8) in dtypes:
            # Dynamic-range models keep every activation in float and store only weights as int8;
            # integer models with float I/O (post-training or QAT, which may leave the first layers
            # in float) also have int8 activations: tensors whose leading dimension is the batch,
            # which no weight has.
            shape = list(self._in['shape'])
            if any(np.dtype(t['dtype']) == np.int8 and list(t['shape']) == shape for t in tensors):
                return 'int8 (float I/O)'
            if any(
                np.dtype(t['dtype']) == np.int8
                and len(t['shape']) >= 2
                and t['shape'][0] == shape[0]
                for t in tensors
            ):
                return 'int8 activations (float I/O, some layers float)'
            return 'dynamic-range int8'
        return 'float32'

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self._in['shape'][1:])

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != self._batch:
            # Reallocate only when the batch size changes; the batch-1 driving loop never gets
            # here.
            self._it.resize_tensor_input(self._in_index, [len(batch), *self.input_shape])
            self._it.allocate_tensors()
            self._batch = len(batch)
        if self._in_q is not None:
            batch = quantise(batch, self._in_q[0], self._in_q[1], self._in_dtype)
        elif self._in_dtype != batch.dtype:
            batch = batch.astype(self._in_dtype)
        self._it.set_tensor(self._in_index, batch)
        self._it.invoke()
        out = self._it.get_tensor(self._out_index)
        if self._out_q is not None:
            return dequantise(out, self._out_q[0], self._out_q[1])
        return out

    def _infer_into(self, fill: Callable[[np.ndarray], object]) -> np.ndarray:
        if self._in_q is not None or self._in_dtype != np.float32:
            # Integer or float16 input: the float frame is quantised or cast on the way in.
            return super()._infer_into(fill)
        if self._batch != 1:
            self._it.resize_tensor_input(self._in_index, [1, *self.input_shape])
            self._it.allocate_tensors()
            self._batch = 1
        # tensor() is a view of the interpreter's own input buffer; the view must be gone before
        # invoke() (the interpreter refuses to run while Python holds one).
        fill(self._it.tensor(self._in_index)()[0])
        self._it.invoke()
        out = self._it.get_tensor(self._out_index)
        if self._out_q is not None:
            return dequantise(out, self._out_q[0], self._out_q[1])
        return out

    def describe(self) -> dict:
        return {**super().describe(), 'runtime': self.runtime}
