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
The ``tensorrt`` and ``tensorrt-fp16`` methods.

A TensorRT engine built from the model's ONNX export.

An engine runs only on the GPU model and TensorRT version that built it, so these methods are made
only where both are present
(:meth:`~pilotnet_optimized.optimize.methods.Method.unavailable_reason`). TensorRT is imported only
when an engine is built.
"""

from __future__ import annotations

from pathlib import Path
import tempfile
from typing import TYPE_CHECKING

from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.store import write_bytes_atomic

if TYPE_CHECKING:  # pragma: no cover
    from pilotnet_optimized.optimize.context import OptimizeContext

__all__ = ['build_tensorrt_engine']


def build_tensorrt_engine(
    ctx: OptimizeContext, out: Path, fp16: bool = False, max_batch: int = 64
) -> dict:
    """
    Build a TensorRT engine from the model's ONNX export and write it to ``out``.

    The export is this run's ``onnx.onnx`` when present. The engine is for this GPU and TensorRT
    version only, with a dynamic batch of 1..``max_batch``.
    """
    from pilotnet_optimized.optimize.onnx import INPUT_NAME, to_onnx
    import tensorrt as trt

    onnx_path = ctx.out_dir / 'onnx.onnx'
    with tempfile.TemporaryDirectory() as tmp:
        if not onnx_path.is_file():
            onnx_path = to_onnx(
                ctx.model(), Path(tmp) / 'model.onnx', preprocessing=ctx.preprocessing
            )
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise PilotnetError(f'TensorRT could not parse {onnx_path.name}: {errors}')
        config = builder.create_builder_config()
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        shape = ctx.preprocessing.input_shape
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, (1, *shape), (1, *shape), (max_batch, *shape))
        config.add_optimization_profile(profile)
        engine = builder.build_serialized_network(network, config)
        if engine is None:
            raise PilotnetError('TensorRT could not build an engine (see its log above)')
        write_bytes_atomic(out, bytes(engine))
    ctx.preprocessing.save(out)
    return {'fp16': fp16, 'max_batch': max_batch, 'tensorrt': trt.__version__}
