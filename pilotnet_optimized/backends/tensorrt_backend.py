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
TensorRT backend for serialised engines (``.engine`` / ``.plan``), TensorRT 10 API.

Buffers are cuda-python's.

Only usable where the ``tensorrt`` package, ``cuda-python`` and a CUDA GPU are all present;
elsewhere the constructor raises :class:`~pilotnet_optimized.errors.BackendUnavailableError` saying
which one is missing. An engine is built for one GPU and one TensorRT version
(``trtexec --onnx=model.onnx --saveEngine=model.engine`` on the target machine); its layer
precisions are fixed when it is built.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pilotnet_optimized.backends.base import Backend
from pilotnet_optimized.errors import ModelError, one_line, PilotnetError

__all__ = ['TensorRTBackend']


def _cudart() -> Any:
    # cuda-python >= 12.6 moved the runtime bindings; older releases have them at the top level
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart
    return cudart


def _check(result: tuple) -> Any:
    """
    Return the value of a cuda-python result; raise on an error.

    cuda-python returns (error, value...).
    """
    err, *values = result
    if int(err) != 0:
        raise PilotnetError(f'CUDA call failed: {err}')
    return values[0] if len(values) == 1 else values


class TensorRTBackend(Backend):
    """
    A TensorRT engine with one input and one output.

    Executed with ``execute_async_v3`` on its own stream.
    """

    name: ClassVar[str] = 'tensorrt'
    suffixes: ClassVar[tuple[str, ...]] = ('.engine', '.plan')

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import tensorrt  # noqa: F401
        except ImportError as err:
            return (
                "tensorrt backend unavailable: the 'tensorrt' Python package is not installed"
                f' ({err}); it needs an NVIDIA GPU with CUDA: use litert, onnxruntime or'
                ' tensorflow on this machine'
            )
        try:
            cudart = _cudart()
        except ImportError:
            return (
                "tensorrt backend unavailable: 'cuda-python' is not installed (it moves data to"
                ' the GPU)'
            )
        try:
            count = _check(cudart.cudaGetDeviceCount())
        except PilotnetError as err:
            return f'tensorrt backend unavailable: no usable CUDA GPU ({err})'
        if count < 1:
            return 'tensorrt backend unavailable: no CUDA GPU found'
        return None

    def _load(self) -> None:
        import tensorrt as trt

        self._cudart = _cudart()
        self._logger = trt.Logger(trt.Logger.WARNING)
        try:
            engine = trt.Runtime(self._logger).deserialize_cuda_engine(
                self.model_path.read_bytes()
            )
        except Exception as err:  # the pybind layer raises several kinds
            raise ModelError(
                f'{self.model_path}: not a loadable TensorRT engine ({one_line(err, 300)})'
            ) from err
        # TensorRT logs the reason (often: built for another GPU or TensorRT version)
        if engine is None:
            raise ModelError(
                f'{self.model_path}: not a loadable TensorRT engine (corrupt, or built for another'
                f' GPU or TensorRT version than {trt.__version__})'
            )
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f'{self.model_path}: expected one input and one output, '
                             f'found {len(inputs)} and {len(outputs)}')
        self._engine, self._context = engine, engine.create_execution_context()
        self._in_name, self._out_name = inputs[0], outputs[0]
        self._in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._in_name)))
        self._out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._out_name)))
        self._shape = tuple(engine.get_tensor_shape(self._in_name))[1:]
        self._stream = _check(self._cudart.cudaStreamCreate())
        # batch size -> input, output, host output
        self._buffers: dict[int, tuple[int, int, np.ndarray]] = {}

    @property
    def precision(self) -> str:
        return f'engine ({self._in_dtype.name} I/O)'

    @property
    def input_shape(self) -> tuple[int, int, int]:
        expected = self.preprocessing.input_shape
        if len(self._shape) != len(expected):
            return tuple(self._shape)
        return tuple(int(e if d < 0 else d) for d, e in zip(self._shape, expected))

    def _buffers_for(self, n: int) -> tuple[int, int, np.ndarray]:
        if n not in self._buffers:
            self._context.set_input_shape(self._in_name, (n, *self.input_shape))
            out_shape = tuple(self._context.get_tensor_shape(self._out_name))
            host_out = np.empty(out_shape, self._out_dtype)
            nbytes_in = n * int(np.prod(self.input_shape)) * self._in_dtype.itemsize
            self._buffers[n] = (_check(self._cudart.cudaMalloc(nbytes_in)),
                                _check(self._cudart.cudaMalloc(host_out.nbytes)), host_out)
        return self._buffers[n]

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        cudart, stream = self._cudart, self._stream
        batch = np.ascontiguousarray(batch, dtype=self._in_dtype)
        d_in, d_out, host_out = self._buffers_for(len(batch))
        self._context.set_input_shape(self._in_name, batch.shape)
        self._context.set_tensor_address(self._in_name, int(d_in))
        self._context.set_tensor_address(self._out_name, int(d_out))
        _check(cudart.cudaMemcpyAsync(d_in, batch.ctypes.data, batch.nbytes,
                                      cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))
        if not self._context.execute_async_v3(int(stream)):
            raise PilotnetError(f'{self.model_path}: TensorRT execution failed')
        _check(cudart.cudaMemcpyAsync(host_out.ctypes.data, d_out, host_out.nbytes,
                                      cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))
        _check(cudart.cudaStreamSynchronize(stream))
        return host_out.astype(np.float32)

    def close(self) -> None:
        for d_in, d_out, _ in self._buffers.values():
            self._cudart.cudaFree(d_in)
            self._cudart.cudaFree(d_out)
        self._buffers.clear()
