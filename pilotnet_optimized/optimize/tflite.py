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
Post-training conversion of a tf_keras model to TFLite, in DeepLearningStudio's five settings.

The seed calibrated its integer models on raw, un-preprocessed images; here the representative data
must be what the model really sees: :func:`~pilotnet_optimized.models.preprocess.preprocess_batch`
output, checked for shape and value range before conversion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
import warnings

import numpy as np
from pilotnet_optimized.errors import ConversionError, one_line
from pilotnet_optimized.models.preprocess import check_model_input, Preprocessing
from pilotnet_optimized.store import write_bytes_atomic

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras

__all__ = ['QUANTIZATIONS', 'NEEDS_REPRESENTATIVE', 'to_tflite', 'check_representative']

#: Quantization modes and what each does (the TFLite converter settings of DeepLearningStudio's
#: table).
QUANTIZATIONS: dict[str, str] = {
    'none': 'float32 baseline',
    'dynamic': 'dynamic range: int8 weights, float activations (Optimize.DEFAULT)',
    'float16': 'float16 weights (Optimize.DEFAULT + supported_types float16)',
    'int8': 'integer only, uint8 input and output (representative data + TFLITE_BUILTINS_INT8)',
    'int8-fallback': (
        'int8 where possible, float input/output and float fallback ops (representative data)'
    ),
}
#: The modes that calibrate activation ranges on representative data.
NEEDS_REPRESENTATIVE = ('int8', 'int8-fallback')

# Value ranges of preprocessed input per normalisation, with slack for rounding: data outside them
# was not preprocessed with the model's settings.
_INPUT_RANGES = {'none': (0.0, 255.0), 'unit': (0.0, 1.0), 'imagenet': (-2.2, 2.7)}


def to_tflite(model: tf_keras.Model, out_path: str | Path, quantization: str = 'none',
              representative: np.ndarray | None = None, num_calibration: int = 200,
              preprocessing: Preprocessing | None = None, log: Callable[[str], None] | None = None,
              bias_correction: bool = True) -> Path:
    """
    Convert ``model`` to a ``.tflite`` file (written atomically) and its preprocessing sidecar.

    :param quantization: one of :data:`QUANTIZATIONS`. ``'int8'`` takes and returns uint8 tensors
        (as the seed's integer-only model); the backends quantise inputs and dequantise outputs
        with each tensor's scale and zero point. uint8 keeps raw 0..255 pixels exact when the input
        scale is 1.
    :param representative: calibration data for the int8 modes: preprocessed float32 model input,
        N x height x width x 3 (not camera frames, not uint8).
    :param num_calibration: use at most this many samples, evenly spaced through
        ``representative``.
    :param preprocessing: the model's preprocessing, written beside the file (default: the
        project's).
    :param log: called with one line per step; nothing is printed otherwise.
    :param bias_correction: for the int8 modes, remove the mean output shift that quantisation
        causes on the calibration samples (:mod:`~pilotnet_optimized.optimize.bias_correction`; the
        seed had none).
    :returns: ``out_path``.
    :raises PilotnetError: (:class:`ConversionError`) for an unknown mode, missing or malformed
        representative data, a model whose input does not match the preprocessing, or a failed
        conversion.
    """
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ConversionError(
            f"unknown quantization '{quantization}': choose one of {', '.join(QUANTIZATIONS)}"
        )
    preprocessing = preprocessing or Preprocessing()
    check_model_input(model, preprocessing)
    samples = None
    if quantization in NEEDS_REPRESENTATIVE:
        if representative is None:
            raise ConversionError(
                f"quantization '{quantization}' needs representative data: preprocessed "
                f"float32 model input N x {'x'.join(map(str, preprocessing.input_shape))}"
            )
        samples = check_representative(representative, preprocessing, num_calibration)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization != 'none':
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == 'float16':
        converter.target_spec.supported_types = [tf.float16]
    if samples is not None:
        converter.representative_dataset = _dataset(samples)
        if log:
            log(f'calibrating on {len(samples)} samples')
    if quantization == 'int8':
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    try:
        with warnings.catch_warnings():
            # TF 2.21 warns about missing input statistics on every calibrated conversion: the
            # representative dataset supplies them, so the warning is noise.
            warnings.filterwarnings(
                'ignore', message='Statistics for quantized inputs', category=UserWarning
            )
            flatbuffer = converter.convert()
    except Exception as err:
        # The MLIR converter raises ConverterError, ValueError, RuntimeError...
        raise ConversionError(
            f"TFLite conversion '{quantization}' failed: {one_line(err, 500)}"
        ) from err
    if samples is not None and bias_correction:
        from pilotnet_optimized.optimize.bias_correction import correct_output_bias
        reference = np.concatenate([model(samples[i:i + 64], training=False).numpy()
                                    for i in range(0, len(samples), 64)])
        flatbuffer, correction = correct_output_bias(flatbuffer, samples, reference, preprocessing)
        if log:
            log(
                'bias correction: mean output shift'
                f' {np.round(correction.shift_before, 5).tolist()} ->'
                f' {np.round(correction.shift_after, 5).tolist()} on {correction.samples}'
                ' calibration samples'
            )
    path = write_bytes_atomic(out_path, flatbuffer)
    preprocessing.save(path)
    if log:
        log(f'{path}: TFLite {quantization}, {len(flatbuffer) / 2 ** 20:.2f} MB')
    return path


def check_representative(
    data: np.ndarray, preprocessing: Preprocessing, limit: int = 200
) -> np.ndarray:
    """
    Validate calibration data and pick at most ``limit`` samples.

    Evenly spaced (so one circuit's corner does not fill the whole calibration set).

    :raises ConversionError: for the wrong dtype, shape or value range, or non-finite values.
    """
    data = np.asarray(data)
    expected = preprocessing.input_shape
    if data.ndim != 4 or data.shape[1:] != expected or len(data) < 1:
        raise ConversionError(
            f'representative data must be preprocessed model input N x '
            f"{'x'.join(map(str, expected))}, got shape {data.shape} (camera frames must go "
            f'through preprocess_batch first)'
        )
    if data.dtype.kind != 'f':
        raise ConversionError(
            f'representative data must be float preprocessed input, got {data.dtype} '
            '(use preprocess_batch, which also applies the normalisation)'
        )
    if not np.isfinite(data).all():
        raise ConversionError('representative data holds NaN or infinite values')
    lo, hi = _INPUT_RANGES[preprocessing.normalisation]
    slack = 0.02 * (hi - lo)
    dmin, dmax = float(data.min()), float(data.max())
    if (
        dmin < lo - slack
        or dmax > hi + slack
        or (preprocessing.normalisation == 'none' and dmax <= 1.0)
    ):
        raise ConversionError(
            f'representative data spans {dmin:.3g}..{dmax:.3g}, not the {lo:g}..{hi:g} of input '
            f"preprocessed with normalisation '{preprocessing.normalisation}': "
            f"was it preprocessed with the model's settings?"
        )
    if limit < 1:
        raise ConversionError('num_calibration must be at least 1')
    if len(data) > limit:
        data = data[np.linspace(0, len(data) - 1, limit).round().astype(int)]
    return np.ascontiguousarray(data, dtype=np.float32)


def _dataset(samples: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    def generate() -> Iterator[list[np.ndarray]]:
        for sample in samples:
            yield [sample[None]]
    return generate
