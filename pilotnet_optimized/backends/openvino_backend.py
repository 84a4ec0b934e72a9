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
OpenVINO backend: OpenVINO IR files (``.xml``, ``.bin``), or ONNX files with ``backend: openvino``.

Runs on the CPU plugin with ``INFERENCE_NUM_THREADS`` set, one stream and the latency hint (one
frame at a time, as the car drives). ``openvino`` is imported only when such a backend is built.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from pilotnet_optimized.backends.base import Backend
from pilotnet_optimized.errors import ModelError, one_line

__all__ = ['OpenVINOBackend']


class OpenVINOBackend(Backend):
    """A model compiled by OpenVINO for the CPU (float32, or int8 from NNCF)."""

    name: ClassVar[str] = 'openvino'
    suffixes: ClassVar[tuple[str, ...]] = ('.xml',)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import openvino  # noqa: F401
        except ImportError:
            return 'OpenVINO is not installed (pip install -r requirements/core.txt)'
        return None

    def _load(self) -> None:
        import openvino as ov
        core = ov.Core()
        try:
            model = core.read_model(str(self.model_path))
            # The CPU plugin runs float32 models in bf16 on CPUs with AMX unless told otherwise:
            # float32 means float32 here, unless the IR asks for another precision
            # (``pilotnet optimize --methods openvino-bf16`` records bf16).
            key = ['runtime_options', 'INFERENCE_PRECISION_HINT']
            hint = model.get_rt_info(key).astype(str) if model.has_rt_info(key) else 'f32'
            self._compiled = core.compile_model(model, 'CPU', {
                'INFERENCE_NUM_THREADS': self.num_threads,
                'NUM_STREAMS': 1,
                'PERFORMANCE_HINT': 'LATENCY',
                'INFERENCE_PRECISION_HINT': hint,
            })
        # OpenVINO raises RuntimeError and its own exception types for unreadable files
        except Exception as err:
            raise ModelError(
                f'{self.model_path}: not a model OpenVINO can load ({one_line(err, 300)})'
            ) from err
        inputs, outputs = self._compiled.inputs, self._compiled.outputs
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f'{self.model_path}: expected one input and one output, '
                             f'found {len(inputs)} and {len(outputs)}')
        self._output = outputs[0]
        self._shape: tuple[Any, ...] = tuple(
            d.get_length() if d.is_static else None for d in inputs[0].get_partial_shape()
        )[1:]
        types = {op.get_type_name() for op in model.get_ops()}
        ran = str(self._compiled.get_property('INFERENCE_PRECISION_HINT')).lower()  # bfloat16
        self._precision = ('int8' if 'FakeQuantize' in types
                           else 'bf16' if 'bf' in ran else 'float32')
        self._request = self._compiled.create_infer_request()

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def input_shape(self) -> tuple[int, int, int]:
        # Dynamic dimensions take whatever the preprocessing makes.
        expected = self.preprocessing.input_shape
        if len(self._shape) != len(expected):
            return tuple(self._shape)
        return tuple(d if d is not None else e for d, e in zip(self._shape, expected))

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        result = self._request.infer({0: batch}, share_inputs=True)  # no copy of the input
        return np.array(result[self._output])

    def describe(self) -> dict:
        import openvino as ov
        return {**super().describe(), 'runtime': f'openvino {ov.__version__}'}
