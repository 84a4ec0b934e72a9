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
ONNX Runtime backend for ``.onnx`` files.

Runs on CPU, or CUDA where onnxruntime-gpu and a GPU are present.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from pilotnet_optimized.backends.base import Backend
from pilotnet_optimized.errors import ModelError, one_line

__all__ = ['OnnxRuntimeBackend']

_FLOAT_TYPES = {
    'tensor(float)': np.float32,
    'tensor(float16)': np.float16,
    'tensor(double)': np.float64,
}


class OnnxRuntimeBackend(Backend):
    """An ONNX model in an ``onnxruntime.InferenceSession`` with ``intra_op_num_threads`` set."""

    name: ClassVar[str] = 'onnxruntime'
    suffixes: ClassVar[tuple[str, ...]] = ('.onnx',)

    def _load(self) -> None:
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.num_threads
        # One inference is a chain of ops: a second pool of threads between ops would only compete
        # for cores.
        options.inter_op_num_threads = 1
        # errors only: the session's warnings would go to stderr on every load
        options.log_severity_level = 3
        providers = ['CPUExecutionProvider']
        if 'CUDAExecutionProvider' in ort.get_available_providers():
            providers.insert(0, 'CUDAExecutionProvider')
        try:
            self._session = ort.InferenceSession(
                str(self.model_path), options, providers=providers
            )
        # ORT raises its own pybind error types (InvalidProtobuf, Fail, ...)
        except Exception as err:
            raise ModelError(
                f'{self.model_path}: not a loadable ONNX model ({one_line(err, 300)})'
            ) from err
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f'{self.model_path}: expected one input and one output, '
                             f'found {len(inputs)} and {len(outputs)}')
        if inputs[0].type not in _FLOAT_TYPES:
            raise ModelError(
                f'{self.model_path}: input type {inputs[0].type} is not supported (float inputs'
                ' only)'
            )
        self._input_name, self._output_name = inputs[0].name, outputs[0].name
        self._input_dtype = np.dtype(_FLOAT_TYPES[inputs[0].type])
        self._shape = tuple(inputs[0].shape[1:])
        self.providers = self._session.get_providers()
        # read from the graph on first use: it needs the onnx package
        self._precision: str | None = None

    @property
    def threads(self) -> int:
        """
        Return the intra-op thread count the session really runs with.

        It is read back from the session.
        """
        return int(self._session.get_session_options().intra_op_num_threads)

    @property
    def precision(self) -> str:
        if self._precision is None:
            fp16_io = self._input_dtype == np.float16
            self._precision = (
                'float16' if fp16_io else _weight_precision(self.model_path) or 'float32'
            )
        return self._precision

    @property
    def input_shape(self) -> tuple[int, int, int]:
        # Symbolic dimensions (strings such as 'unk__32') take whatever the preprocessing makes.
        expected = self.preprocessing.input_shape
        if len(self._shape) != len(expected):
            return tuple(self._shape)
        return tuple(d if isinstance(d, int) else e for d, e in zip(self._shape, expected))

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        if batch.dtype != self._input_dtype:
            batch = batch.astype(self._input_dtype)
        return self._session.run([self._output_name], {self._input_name: batch})[0]

    def _infer_into(self, fill: Callable[[np.ndarray], object]) -> np.ndarray:
        if self._input_dtype != np.float32 or self.providers[0] != 'CPUExecutionProvider':
            return super()._infer_into(fill)
        if getattr(self, '_binding', None) is None:
            # The input bound once to a buffer of ours: the session reads it where it lies, so
            # fill() writes the model's input in place.
            self._bound = np.zeros((1, *self.input_shape), np.float32)
            self._binding = self._session.io_binding()
            self._binding.bind_cpu_input(self._input_name, self._bound)
            self._binding.bind_output(self._output_name)
        fill(self._bound[0])
        self._session.run_with_iobinding(self._binding)
        return self._binding.copy_outputs_to_cpu()[0]

    def describe(self) -> dict:
        return {**super().describe(), 'providers': self.providers}


def _weight_precision(path: object) -> str | None:
    """
    Return 'int8' / 'float16' / 'mixed' from the initialisers' types.

    Or None when onnx is missing or all are float32.

    ONNX Runtime does not expose the weights, so read the graph (without external data) with the
    onnx package.
    """
    try:
        import onnx
        graph = onnx.load(str(path), load_external_data=False).graph
    # onnx missing or the file unreadable: precision is a label, not worth failing over
    except Exception:
        return None
    names = {onnx.TensorProto.DataType.Name(t.data_type).lower() for t in graph.initializer}
    names &= {'float', 'float16', 'int8', 'uint8'}
    if names <= {'float'}:
        return None
    if names & {'int8', 'uint8'}:
        return 'int8' if 'float' not in names else 'mixed (int8 weights)'
    return 'float16' if names == {'float16'} else 'mixed'
