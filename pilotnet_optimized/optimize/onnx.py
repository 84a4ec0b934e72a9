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
Conversion of a tf_keras model to ONNX with tf2onnx.

For ONNX Runtime (and TensorRT's ONNX parser).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pilotnet_optimized.errors import ConversionError, one_line
from pilotnet_optimized.models.preprocess import check_model_input, Preprocessing
from pilotnet_optimized.store import write_bytes_atomic

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras

__all__ = ['to_onnx', 'INPUT_NAME']

INPUT_NAME = 'image'


def to_onnx(
    model: tf_keras.Model,
    out_path: str | Path,
    preprocessing: Preprocessing | None = None,
    opset: int = 17,
    log: Callable[[str], None] | None = None,
) -> Path:
    """
    Convert ``model`` to an ``.onnx`` file (written atomically) and its preprocessing sidecar.

    The graph takes ``image`` (N x height x width x 3 float32, NHWC as the Keras model: tf2onnx
    inserts the transposes) and returns the model's N x 2 normalised outputs. The batch dimension
    stays dynamic.

    :param opset: ONNX opset (17 runs on ONNX Runtime >= 1.11 and TensorRT 8.6 and later).
    :returns: ``out_path``.
    :raises ConversionError: when the model's input does not match the preprocessing or conversion
        fails.
    """
    import tensorflow as tf
    import tf2onnx

    preprocessing = preprocessing or Preprocessing()
    check_model_input(model, preprocessing)
    spec = (tf.TensorSpec([None, *preprocessing.input_shape], tf.float32, name=INPUT_NAME),)
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    except Exception as err:  # tf2onnx raises whatever its graph rewriters hit
        raise ConversionError(f'ONNX conversion failed: {one_line(err, 500)}') from err
    data = proto.SerializeToString()
    path = write_bytes_atomic(out_path, data)
    preprocessing.save(path)
    if log:
        log(f'{path}: ONNX opset {opset}, {len(data) / 2 ** 20:.2f} MB')
    return path
