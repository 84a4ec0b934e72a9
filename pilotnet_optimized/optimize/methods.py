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
The one table of optimisation methods.

One row per method drives ``pilotnet optimize`` and evaluation.

Each :class:`Method` names the file it writes (``<name><suffix>`` in the output folder), the
precision it stores, whether it needs data (``'calibration'`` for the integer post-training modes,
``'fine-tuning'`` for the tfmot methods and ``slim``) or a GPU, and the producer that makes it.
Adding a method is one row here plus its producer.

The settings and the run's shared state (reference model, data, fine-tuning) are in
:mod:`~pilotnet_optimized.optimize.context`, which the per-method modules import; the table imports
those modules only inside its producers, so none of them imports the table back. Importing it is
cheap: producers import TensorFlow, tfmot and the converters only when they run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
import difflib
from pathlib import Path
import shutil

from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.optimize.context import CALIBRATION, FINE_TUNING, OptimizeContext
from pilotnet_optimized.store import split_names

__all__ = [
    'Method',
    'METHODS',
    'REFERENCE',
    'BASELINE',
    'method_names',
    'get_method',
    'resolve_methods',
]

#: A producer writes the method's file at ``out`` and returns what it wants recorded (parameters,
#: figures).
Producer = Callable[[OptimizeContext, Path], dict]


@dataclass(frozen=True)
class Method:
    """
    One row of the table.

    :param name: method name, also the output file's stem.
    :param suffix: output file suffix; ``''`` for a folder (SavedModel).
    :param precision: what the file stores, as a label for tables.
    :param needs_data: ``None``, ``'calibration'`` or ``'fine-tuning'``.
    :param needs_gpu: only made where a GPU and its toolkit exist (otherwise skipped with a
        reason).
    :param producer: the function that writes the file.
    :param description: one line for tables and ``--help``.
    :param requires: returns why this machine cannot make the method (``None``: it can), for
        methods that need more than a GPU (bf16 kernels).
    """

    name: str
    suffix: str
    precision: str
    needs_data: str | None
    needs_gpu: bool
    producer: Producer = field(repr=False, compare=False)
    description: str = ''
    requires: Callable[[], str | None] | None = field(default=None, repr=False, compare=False)

    @property
    def filename(self) -> str:
        return self.name + self.suffix

    def unavailable_reason(self) -> str | None:
        """Return why the method cannot run on this machine, or ``None``."""
        if self.requires is not None:
            reason = self.requires()
            if reason is not None:
                return reason
        if not self.needs_gpu:
            return None
        from pilotnet_optimized.backends.tensorrt_backend import TensorRTBackend
        return TensorRTBackend.unavailable_reason()


# -- producers: thin, lazily importing the modules that do the work -------------------------------
def _copy_keras(ctx: OptimizeContext, out: Path) -> dict:
    ctx.model()  # fail here, not in evaluation, if the file is not a loadable model
    if ctx.keras_path.resolve() != out.resolve():
        shutil.copy2(ctx.keras_path, out)
    ctx.preprocessing.save(out)
    return {'source': str(ctx.keras_path)}


def _ptq(quantization: str) -> Producer:
    def produce(ctx: OptimizeContext, out: Path) -> dict:
        from pilotnet_optimized.optimize.tflite import NEEDS_REPRESENTATIVE, to_tflite
        params: dict = {'quantization': quantization}
        representative = None
        if quantization in NEEDS_REPRESENTATIVE:
            representative = ctx.representative()
            params['calibration_frames'] = len(representative)
            params['bias_correction'] = True
        to_tflite(ctx.model(), out, quantization, representative=representative,
                  num_calibration=ctx.settings.calibration_frames, preprocessing=ctx.preprocessing)
        return params
    return produce


def _qat(ctx: OptimizeContext, out: Path) -> dict:
    from pilotnet_optimized.optimize.qat import make_qat
    return make_qat(ctx, out)


def _pruning(quantization: str) -> Producer:
    def produce(ctx: OptimizeContext, out: Path) -> dict:
        from pilotnet_optimized.optimize.pruning import make_pruned
        return make_pruned(ctx, out, quantization)
    return produce


def _collaborative(kind: str) -> Producer:
    def produce(ctx: OptimizeContext, out: Path) -> dict:
        from pilotnet_optimized.optimize.collaborative import make_collaborative
        return make_collaborative(ctx, out, kind)
    return produce


def _savedmodel(ctx: OptimizeContext, out: Path) -> dict:
    from pilotnet_optimized.optimize.savedmodel import to_savedmodel
    to_savedmodel(ctx.model(), out, preprocessing=ctx.preprocessing)
    return {}


def _onnx(ctx: OptimizeContext, out: Path) -> dict:
    from pilotnet_optimized.optimize.onnx import to_onnx
    to_onnx(ctx.model(), out, preprocessing=ctx.preprocessing)
    return {}


def _slim(ctx: OptimizeContext, out: Path) -> dict:
    from pilotnet_optimized.optimize.structured import make_slim
    return make_slim(ctx, out)


def _tiny(ctx: OptimizeContext, out: Path) -> dict:
    from pilotnet_optimized.optimize.tiny import make_tiny
    return make_tiny(ctx, out)


def _openvino(kind: str) -> Producer:
    def produce(ctx: OptimizeContext, out: Path) -> dict:
        from pilotnet_optimized.optimize.openvino import make_openvino
        return make_openvino(ctx, out, kind)
    return produce


def _no_openvino_bf16() -> str | None:
    from pilotnet_optimized.optimize.openvino import bf16_unavailable_reason
    return bf16_unavailable_reason()


def _tensorrt(fp16: bool) -> Producer:
    def produce(ctx: OptimizeContext, out: Path) -> dict:
        from pilotnet_optimized.optimize.tensorrt import build_tensorrt_engine
        return build_tensorrt_engine(ctx, out, fp16)
    return produce


#: The row that copies the input model: the reference every other method is measured against.
REFERENCE = 'keras'
#: The row that converts the input model without optimising it: the baseline of size and speed
#: ratios.
BASELINE = 'baseline'

_FT = FINE_TUNING
METHODS: tuple[Method, ...] = (
    Method(
        REFERENCE, '.keras', 'float32', None, False, _copy_keras, 'the input model, the reference'
    ),
    Method(
        BASELINE,
        '.tflite',
        'float32',
        None,
        False,
        _ptq('none'),
        'TFLite float32, no optimisation',
    ),
    Method(
        'dynamic',
        '.tflite',
        'dynamic-range int8',
        None,
        False,
        _ptq('dynamic'),
        'int8 weights, float activations (Optimize.DEFAULT)',
    ),
    Method('float16', '.tflite', 'float16', None, False, _ptq('float16'), 'float16 weights'),
    Method(
        'int8',
        '.tflite',
        'int8 (uint8 I/O)',
        CALIBRATION,
        False,
        _ptq('int8'),
        'integer only, uint8 input and output, calibrated on preprocessed frames',
    ),
    Method(
        'int8-fallback',
        '.tflite',
        'int8 (float I/O)',
        CALIBRATION,
        False,
        _ptq('int8-fallback'),
        'int8 where possible with float fallback, calibrated on preprocessed frames',
    ),
    Method(
        'qat',
        '.tflite',
        'int8 (QAT)',
        _FT,
        False,
        _qat,
        'quantisation-aware training of Conv2D/Dense, activation ranges calibrated before'
        ' fine-tuning',
    ),
    Method(
        'pruning',
        '.tflite',
        'float32 (80 % sparse)',
        _FT,
        False,
        _pruning('none'),
        'magnitude pruning 50 % -> 80 % while fine-tuning; float32, so only gzip shows the gain',
    ),
    Method(
        'pruning-quant',
        '.tflite',
        'dynamic-range int8 (80 % sparse)',
        _FT,
        False,
        _pruning('dynamic'),
        'the pruned model with dynamic-range quantisation',
    ),
    Method(
        'cqat',
        '.tflite',
        'int8 (16 clusters, QAT)',
        _FT,
        False,
        _collaborative('cqat'),
        'weight clustering, then cluster-preserving quantisation-aware training',
    ),
    Method(
        'pqat',
        '.tflite',
        'int8 (80 % sparse, QAT)',
        _FT,
        False,
        _collaborative('pqat'),
        'the pruned model, then sparsity-preserving quantisation-aware training',
    ),
    Method(
        'pcqat',
        '.tflite',
        'int8 (sparse, clustered, QAT)',
        _FT,
        False,
        _collaborative('pcqat'),
        'pruning, sparsity-preserving clustering, then sparsity- and cluster-preserving QAT',
    ),
    Method(
        'savedmodel',
        '',
        'float32',
        None,
        False,
        _savedmodel,
        'SavedModel folder (TF Serving, TF-TRT)',
    ),
    Method('onnx', '.onnx', 'float32', None, False, _onnx, 'ONNX (ONNX Runtime, TensorRT parser)'),
    Method(
        'slim',
        '.tflite',
        'dynamic-range int8, dense1 pruned to k units',
        _FT,
        False,
        _slim,
        'structured pruning of dense1 to the k most important units, distilled fine-tuning,'
        ' quantised',
    ),
    Method(
        'tiny',
        '.tflite',
        'dynamic-range int8, 0.14 M-parameter student',
        _FT,
        False,
        _tiny,
        'a 2 M multiply-add student (half resolution inside, three narrow convolutions) distilled'
        ' from the input model, on-policy rounds, int8 weights',
    ),
    Method(
        'openvino',
        '.xml',
        'float32',
        None,
        False,
        _openvino('float32'),
        'OpenVINO IR (.xml + .bin) from the ONNX file, float32 weights, run float32',
    ),
    Method(
        'openvino-int8',
        '.xml',
        'int8 (NNCF)',
        CALIBRATION,
        False,
        _openvino('int8'),
        'NNCF post-training int8 of the OpenVINO IR, calibrated as int8 (training circuits)',
    ),
    Method(
        'openvino-bf16',
        '.xml',
        'bf16 (OpenVINO)',
        None,
        False,
        _openvino('bf16'),
        'the float32 IR run with bf16 kernels: only on CPUs with AMX',
        requires=_no_openvino_bf16,
    ),
    Method(
        'tensorrt',
        '.engine',
        'TensorRT fp32',
        None,
        True,
        _tensorrt(False),
        'TensorRT engine built from the ONNX file (this GPU and TensorRT version only)',
    ),
    Method(
        'tensorrt-fp16',
        '.engine',
        'TensorRT fp16',
        None,
        True,
        _tensorrt(True),
        'TensorRT engine with fp16 kernels allowed',
    ),
)
_BY_NAME = {m.name: m for m in METHODS}


def method_names() -> list[str]:
    """Return every method name, in table order."""
    return [m.name for m in METHODS]


def get_method(name: str) -> Method:
    """
    Return the row called ``name``.

    :raises PilotnetError: for an unknown name; the message lists the valid names and the nearest
        one.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        near = difflib.get_close_matches(name, list(_BY_NAME) + ['all'], n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ''
        raise PilotnetError(
            f"unknown method '{name}'{hint}: choose from all, {', '.join(_BY_NAME)}"
        ) from None


def resolve_methods(names: Iterable[str] | str) -> list[Method]:
    """
    Return the method rows for ``names``, in table order, without duplicates.

    ``'all'`` is every row; names are given comma- or space-separated, as
    :func:`~pilotnet_optimized.store.split_names` reads them.
    """
    wanted: set[str] = set()
    for name in split_names(names):
        if name == 'all':
            wanted.update(_BY_NAME)
        else:
            wanted.add(get_method(name).name)
    if not wanted:
        raise PilotnetError(f"no methods given: choose from all, {', '.join(_BY_NAME)}")
    return [m for m in METHODS if m.name in wanted]
