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
Quantisation-aware training (the seed's QAT).

Annotate Conv2D and Dense, calibrate, fine-tune, convert.

Two tfmot traps are handled here:

- The BatchNormalization input layer stays unannotated (tfmot's default scheme has no standalone
  BatchNormalization config). Converted with ``Optimize.DEFAULT``, the file then runs the
  normalisation and conv1 in float32 (conv1's input carries no fake-quant range), quantises conv1's
  output, runs conv2 to the output layer in int8 with int8 activations, and dequantises the two
  outputs: float in, float out.
- Fake-quant activation ranges start at -6..6 and follow a moving average with decay 0.999, so a
  short fine-tuning run converts with ranges near those initial values.
  :func:`calibrate_activation_ranges` sets them from the float model's real activations before
  fine-tuning, so training starts (and a short run ends) with ranges that fit the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TYPE_CHECKING

import numpy as np
from pilotnet_optimized.optimize.context import fresh_copy

if TYPE_CHECKING:  # pragma: no cover
    from pilotnet_optimized.optimize.context import OptimizeContext
    import tf_keras

__all__ = ['annotate_for_qat', 'quantize_aware', 'calibrate_activation_ranges', 'make_qat',
           'QUANTISED_LAYERS']

#: Layer types that get weights and post-activation fake quantisation (the seed's choice).
QUANTISED_LAYERS = ('Conv2D', 'Dense')


def _tfmot() -> Any:
    # Importing tfmot sets TF_USE_LEGACY_KERAS=1: only ever import it where tf_keras models are
    # handled.
    import tensorflow_model_optimization as tfmot
    return tfmot


def annotate_for_qat(model: tf_keras.Model, plain_layers: Iterable[str] = ()) -> tf_keras.Model:
    """
    Return a copy of ``model`` with every Conv2D and Dense layer annotated for QAT.

    Each of those layers is wrapped in ``quantize_annotate_layer``.

    :param plain_layers: names of layers annotated with tfmot's default 8-bit config, so that the
        scheme given to ``quantize_apply`` does not handle them (see :func:`quantize_aware`).
    """
    tfmot = _tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import \
        default_8bit_quantize_registry

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    plain = set(plain_layers)

    def wrap(layer: Any) -> Any:
        if type(layer).__name__ in QUANTISED_LAYERS:
            config = registry.get_quantize_config(layer) if layer.name in plain else None
            return tfmot.quantization.keras.quantize_annotate_layer(layer, config)
        return layer
    return fresh_copy(model, wrap)


def quantize_aware(
    model: tf_keras.Model,
    fit: Callable[[tf_keras.Model], Any],
    calibration: np.ndarray,
    scheme: Any = None,
    plain_layers: Iterable[str] = (),
) -> tf_keras.Model:
    """
    Return the QAT model of ``model``.

    Annotate, ``quantize_apply`` (with ``scheme``, e.g. tfmot's cluster- or prune-preserving
    schemes), calibrate the activation ranges on ``calibration``, then ``fit`` it.

    :param fit: compiles and trains the model in place (the pipeline's fine-tuning).
    :param calibration: preprocessed model input for the range calibration.
    :param plain_layers: names of layers quantised with the default 8-bit config instead of
        ``scheme``'s. Give the unclustered layers with the cluster-preserving scheme, which
        otherwise (tfmot 0.8.1)

        - treats an unclustered kernel as clustered with every distinct value a centroid, per
          channel for Conv2D, building a sub-graph per channel: 236 channels in PilotNet, about
          20 s of graph tracing;
        - with ``preserve_sparsity``, turns sparsity preservation off for *every* Dense layer as
          soon as one of them has no zeros: all Dense layers share one weight quantizer object, and
          its flag is reset with the warning "Input layer does not contain zero weights, so apply
          CQAT instead".
    """
    tfmot = _tfmot()
    qkeras = tfmot.quantization.keras
    annotated = annotate_for_qat(model, plain_layers)
    with qkeras.quantize_scope():
        qat = (
            qkeras.quantize_apply(annotated, scheme)
            if scheme is not None
            else qkeras.quantize_apply(annotated)
        )
    calibrate_activation_ranges(qat, model, calibration)
    fit(qat)
    return qat


def calibrate_activation_ranges(
    qat_model: tf_keras.Model, float_model: tf_keras.Model, data: np.ndarray, batch_size: int = 32
) -> dict[str, tuple[float, float]]:
    """
    Set every wrapper's post-activation range from ``float_model``'s outputs on ``data``.

    Each range is what ``float_model``'s same layer produces on ``data``. The range of each batch
    is taken (as tfmot's moving average does) and the ranges averaged over batches, widened to
    include 0 (TFLite needs 0 representable).

    :returns: layer name -> (min, max) as set.
    """
    import tf_keras

    targets: dict[str, tuple[Any, Any]] = {}
    for layer in qat_model.layers:
        inner = getattr(layer, 'layer', None)
        if inner is None:
            continue
        lo = [w for w in layer.weights if w.name.split('/')[-1].startswith('post_activation_min')]
        hi = [w for w in layer.weights if w.name.split('/')[-1].startswith('post_activation_max')]
        if lo and hi and inner.name in {x.name for x in float_model.layers}:
            targets[inner.name] = (lo[0], hi[0])
    if not targets:
        return {}
    names = list(targets)
    probe = tf_keras.Model(float_model.inputs, [float_model.get_layer(n).output for n in names])
    mins: dict[str, list[float]] = {n: [] for n in names}
    maxs: dict[str, list[float]] = {n: [] for n in names}
    for start in range(0, len(data), batch_size):
        outs = probe(data[start:start + batch_size], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for name, out in zip(names, outs):
            out = np.asarray(out)
            mins[name].append(min(0.0, float(out.min())))
            maxs[name].append(max(0.0, float(out.max())))
    ranges = {}
    for name, (lo_var, hi_var) in targets.items():
        lo, hi = float(np.mean(mins[name])), float(np.mean(maxs[name]))
        if hi - lo < 1e-6:  # a dead layer: keep a tiny non-empty range
            hi = lo + 1e-3
        lo_var.assign(np.full(lo_var.shape, lo, np.float32))
        hi_var.assign(np.full(hi_var.shape, hi, np.float32))
        ranges[name] = (lo, hi)
    return ranges


def make_qat(ctx: OptimizeContext, out: Path) -> dict:
    """
    Write the ``qat`` method's file at ``out`` and return what to record about it.

    QAT of the reference model, converted with ``Optimize.DEFAULT``.
    """
    from pilotnet_optimized.optimize.tflite import to_tflite

    history: dict = {}

    def fit(model: tf_keras.Model) -> None:
        history.update(ctx.fit(model))
    qat = quantize_aware(ctx.model(), fit, ctx.representative())
    to_tflite(qat, out, 'dynamic', preprocessing=ctx.preprocessing)
    return {
        **ctx.finetune_parameters(),
        'final_loss': _last(history.get('loss')),
        'annotated': list(QUANTISED_LAYERS),
    }


def _last(values: list[float] | None) -> float | None:
    return round(values[-1], 6) if values else None
