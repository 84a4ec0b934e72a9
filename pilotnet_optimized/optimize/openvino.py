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
OpenVINO IR files (``.xml`` and its ``.bin``) from a tf_keras model: float32, int8, bf16.

The model goes through its ONNX export (:func:`~pilotnet_optimized.optimize.onnx.to_onnx`, the
graph ONNX Runtime runs) and ``openvino.convert_model``; the IR keeps float32 weights
(``compress_to_fp16=False``: OpenVINO's default halves them). The three methods:

- ``openvino``: that float32 IR;
- ``openvino-int8``: NNCF post-training quantisation of it (``nncf.quantize``, int8 weights and
  activations with FakeQuantize nodes the CPU plugin runs as int8 kernels, activation ranges the
  min and max over the calibration frames), calibrated on the same frames as TFLite's int8
  (``OptimizeContext.representative``: training circuits only, refused for a test circuit);
- ``openvino-bf16``: the float32 IR with ``INFERENCE_PRECISION_HINT`` bf16 recorded in its
  ``runtime_options``, which the OpenVINO backend compiles with; made only where the CPU runs bf16
  natively (AMX: :func:`bf16_unavailable_reason`).

Each writes the preprocessing sidecar beside the ``.xml``; the backend factory loads the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import tempfile
from typing import Any, TYPE_CHECKING

import numpy as np
from pilotnet_optimized.errors import ConversionError, one_line
from pilotnet_optimized.models.preprocess import Preprocessing

if TYPE_CHECKING:  # pragma: no cover
    from pilotnet_optimized.optimize.context import OptimizeContext
    import tf_keras

__all__ = [
    'PRECISION_KEY',
    'bf16_unavailable_reason',
    'to_openvino',
    'quantize_openvino',
    'make_openvino',
]

#: Where in the IR's rt_info the inference precision the backend compiles with is recorded (the
#: key OpenVINO itself reads model-carried compile options from).
PRECISION_KEY = ('runtime_options', 'INFERENCE_PRECISION_HINT')


def bf16_unavailable_reason() -> str | None:
    """
    Return why bf16 is not made here, or ``None`` when the CPU runs it natively.

    OpenVINO's CPU plugin picks bf16 as its default inference precision only on CPUs with AMX
    (Sapphire Rapids and later); with AVX512-BF16 alone (AMD Zen 4, Cooper Lake) it lists the BF16
    capability but keeps float32, since the conversions cost what the arithmetic saves.
    """
    try:
        import openvino as ov
    except ImportError:
        return 'OpenVINO is not installed (pip install -r requirements/core.txt)'
    core = ov.Core()
    try:
        caps = core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')
        default = str(core.get_property('CPU', 'INFERENCE_PRECISION_HINT'))
    except Exception as err:  # no CPU plugin: OpenVINO raises RuntimeError
        return f'OpenVINO has no CPU plugin here ({one_line(err)})'
    if 'BF16' not in caps or 'bf16' not in default.lower():
        return 'CPU has no BF16 (AMX) for OpenVINO: its CPU plugin runs float32 here'
    return None


def to_openvino(
    model: tf_keras.Model,
    out_path: str | Path,
    preprocessing: Preprocessing | None = None,
    calibration: np.ndarray | None = None,
    inference_precision: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """
    Convert ``model`` to an OpenVINO IR ``out_path`` (``.xml``, weights in the ``.bin`` beside).

    :param calibration: preprocessed float32 model input (N x H x W x 3): quantise to int8 with
        NNCF on it; ``None`` keeps float32.
    :param inference_precision: record this ``INFERENCE_PRECISION_HINT`` (``'bf16'``) in the IR.
    :returns: what the manifest records (the source graph, calibration frames).
    :raises ConversionError: when the model does not match the preprocessing, or conversion or
        quantisation fails.
    """
    import openvino as ov

    from pilotnet_optimized.optimize.onnx import to_onnx

    preprocessing = preprocessing or Preprocessing()
    out_path = Path(out_path)
    if out_path.suffix != '.xml':
        raise ConversionError(f'{out_path}: an OpenVINO IR file ends in .xml')
    params: dict[str, Any] = {'source': 'onnx', 'weights': 'float32'}
    with tempfile.TemporaryDirectory(prefix='pilotnet-ov-') as tmp:
        onnx_path = to_onnx(model, Path(tmp) / 'model.onnx', preprocessing=preprocessing)
        try:
            ov_model = ov.convert_model(str(onnx_path))
        except Exception as err:  # OpenVINO raises its own exception types
            raise ConversionError(f'OpenVINO conversion failed: {one_line(err, 500)}') from err
    if calibration is not None:
        ov_model = quantize_openvino(ov_model, calibration, preprocessing)
        params.update(quantization='nncf int8', calibration_frames=len(calibration))
    if inference_precision:
        ov_model.set_rt_info(inference_precision, list(PRECISION_KEY))
        params['inference_precision'] = inference_precision
    _save_atomic(ov_model, out_path)
    preprocessing.save(out_path)
    if log:
        log(f'{out_path}: OpenVINO IR {params}')
    return params


def quantize_openvino(ov_model: Any, calibration: np.ndarray, preprocessing: Preprocessing) -> Any:
    """
    Return ``ov_model`` quantised to int8 by NNCF on ``calibration`` (all of it, one at a time).

    :raises ConversionError: for malformed calibration data or a failing quantisation.
    """
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    from pilotnet_optimized.optimize.tflite import check_representative

    samples = check_representative(calibration, preprocessing, len(calibration))
    dataset = nncf.Dataset(list(samples), lambda sample: sample[None])
    # Activation ranges: the min and max over all calibration frames, as TFLite's converter takes
    # them. NNCF's default averages each frame's min and max, which clips the narrow head's
    # outputs: on the default model 0.053 mean |difference| from Keras, against 0.0029 here.
    advanced = AdvancedQuantizationParameters(
        activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX
    )
    try:
        return nncf.quantize(ov_model, dataset, subset_size=len(samples),
                             advanced_parameters=advanced)
    except Exception as err:  # NNCF raises RuntimeError, ValueError, its own errors
        raise ConversionError(f'NNCF int8 quantisation failed: {one_line(err, 500)}') from err


def _save_atomic(ov_model: Any, out_path: Path) -> None:
    """Write the IR under temporary names, then rename the ``.bin`` and then the ``.xml``."""
    import os

    import openvino as ov

    # OpenVINO reads the weights from the .bin of the .xml's stem: both are renamed together.
    tmp_xml = out_path.with_name(f'.{out_path.stem}.{os.getpid()}.tmp.xml')
    try:
        ov.save_model(ov_model, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_xml.with_suffix('.bin'), out_path.with_suffix('.bin'))
        os.replace(tmp_xml, out_path)
    finally:
        tmp_xml.unlink(missing_ok=True)
        tmp_xml.with_suffix('.bin').unlink(missing_ok=True)


def make_openvino(ctx: OptimizeContext, out: Path, kind: str) -> dict[str, Any]:
    """
    Produce a method's IR: ``kind`` ``'float32'``, ``'int8'`` or ``'bf16'``.

    :raises PilotnetError: for int8 calibration data from a test circuit.
    """
    calibration = None
    if kind == 'int8':
        from pilotnet_optimized.models.data import dataset_circuits
        from pilotnet_optimized.sim.splits import check_not_test
        check_not_test(dataset_circuits(ctx.train_data or []), 'calibration data')
        calibration = ctx.representative()
    return to_openvino(
        ctx.model(),
        out,
        preprocessing=ctx.preprocessing,
        calibration=calibration,
        inference_precision='bf16' if kind == 'bf16' else None,
    )
