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
Magnitude pruning (the seed's settings).

``prune_low_magnitude`` with a polynomial schedule 50 % -> 80 % over the fine-tuning steps,
``UpdatePruningStep``, ``strip_pruning``; of the Dense kernels but the two tiny last ones by
default (:data:`PRUNED_LAYERS`), of every Conv2D and Dense kernel with ``prune_conv``.

The stripped model is an ordinary float model whose zeros are stored like any other value: as
TFLite float32 it is exactly as large as the baseline (as in the seed's table), and the gain only
shows once the file is compressed (:func:`gzip_size`) or quantised (``pruning-quant``).
"""

from __future__ import annotations

from collections.abc import Callable
import gzip
from pathlib import Path
from typing import Any, TYPE_CHECKING

import numpy as np
from pilotnet_optimized.optimize.context import fresh_copy

if TYPE_CHECKING:  # pragma: no cover
    from pilotnet_optimized.optimize.context import OptimizeContext
    import tf_keras

__all__ = [
    'prune',
    'pruning_schedule',
    'prunable_layer_names',
    'layer_sparsity',
    'gzip_size',
    'pruned_model',
    'make_pruned',
    'PRUNED_LAYERS',
    'MIN_PRUNED_WEIGHTS',
]

#: Layer types pruned by default. The seed pruned the whole model; the convolutions hold 0.8 % of
#: PilotNet's weights, so pruning them saves nothing worth having and costs accuracy where the
#: features are made. Measured on the trained model (2 epochs, 3000 frames, distilled): pruning
#: every layer 80 % gave 1.45 x the baseline's held-out MSE, pruning the Dense layers only 1.01 x,
#: for the same file and gzip sizes.
PRUNED_LAYERS = ('Dense',)
#: Kernels smaller than this are not pruned: PilotNet's dense4 (50 x 10) and output layer
#: (10 x 2), 0.003 % of the weights, where 80 % sparsity only costs accuracy (the output layer
#: would keep 4 weights).
MIN_PRUNED_WEIGHTS = 1000


def pruning_schedule(
    total_steps: int, initial_sparsity: float = 0.5, final_sparsity: float = 0.8
) -> Any:
    """
    Return a ``PolynomialDecay`` from ``initial_sparsity`` to ``final_sparsity``.

    The schedule really ends at the final value. tfmot prunes only on steps
    ``begin + k * frequency`` up to ``end_step`` (frequency 100 by default), so a short run with
    the default would stop at the initial sparsity. The frequency is a tenth of the run (at least
    1) and ``end_step`` a multiple of it, leaving the last steps to recover with the final mask.
    """
    import tensorflow_model_optimization as tfmot

    total_steps = max(1, int(total_steps))
    frequency = max(1, min(100, total_steps // 10))
    end_step = (
        max(frequency, ((total_steps - 1) // frequency) * frequency) if total_steps > 1 else 1
    )
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=initial_sparsity,
        final_sparsity=final_sparsity,
        begin_step=0,
        end_step=end_step,
        frequency=frequency,
    )


def prune(
    model: tf_keras.Model,
    fit: Callable[..., Any],
    total_steps: int,
    initial_sparsity: float = 0.5,
    final_sparsity: float = 0.8,
    layer_types: tuple[str, ...] = PRUNED_LAYERS,
    min_weights: int = MIN_PRUNED_WEIGHTS,
) -> tf_keras.Model:
    """
    Prune the kernels of (a copy of) ``model`` while fine-tuning.

    Return the stripped float model.

    :param fit: ``fit(model, callbacks=[...])`` compiles and trains in place.
    :param total_steps: training steps ``fit`` will run (the schedule spans them).
    :param layer_types: which layer types to prune: :data:`PRUNED_LAYERS` (Dense) by default, or
        ``('Conv2D', 'Dense')`` as the seed (whole model).
    :param min_weights: leave kernels with fewer weights unpruned (see :data:`MIN_PRUNED_WEIGHTS`).
    """
    import tensorflow_model_optimization as tfmot

    sparsity = tfmot.sparsity.keras
    schedule = pruning_schedule(total_steps, initial_sparsity, final_sparsity)
    names = set(prunable_layer_names(model, layer_types, min_weights))

    def wrap(layer: Any) -> Any:
        if layer.name in names:
            return sparsity.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer
    wrapped = fresh_copy(model, wrap)
    fit(wrapped, callbacks=[sparsity.UpdatePruningStep()])
    # A config round trip: the stripped model shares layers with the wrapped graph (see
    # clustering.cluster).
    return fresh_copy(sparsity.strip_pruning(wrapped))


def prunable_layer_names(model: tf_keras.Model, layer_types: tuple[str, ...] = PRUNED_LAYERS,
                         min_weights: int = MIN_PRUNED_WEIGHTS) -> list[str]:
    """
    Return the layers :func:`prune` prunes.

    Of ``layer_types``, with at least ``min_weights`` kernel weights.
    """
    return [layer.name for layer in model.layers if type(layer).__name__ in layer_types
            and int(np.prod(layer.get_weights()[0].shape)) >= min_weights]


def layer_sparsity(model: tf_keras.Model) -> dict[str, float]:
    """Return the fraction of exact zeros in each Conv2D/Dense kernel."""
    out = {}
    for layer in model.layers:
        if type(layer).__name__ in ('Conv2D', 'Dense'):
            kernel = np.asarray(layer.get_weights()[0])
            out[layer.name] = round(float((kernel == 0).mean()), 4)
    return out


def gzip_size(path: str | Path, level: int = 6) -> int:
    """
    Return the size in bytes of ``path`` once gzip-compressed.

    This is where unstructured sparsity shows in a dense file format.
    """
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=level))


def pruned_model(ctx: OptimizeContext) -> tf_keras.Model:
    """
    Return the run's pruned (and stripped) model, made once and shared by ``pruning``.

    ``pruning-quant``, ``pqat`` and ``pcqat``.
    """
    def make() -> tf_keras.Model:
        s = ctx.settings
        steps = ctx.steps_per_epoch() * s.finetune_epochs
        types = ('Conv2D', 'Dense') if s.prune_conv else PRUNED_LAYERS
        return prune(ctx.model(), ctx.fit, steps, s.initial_sparsity, s.final_sparsity, types)
    return ctx.cached('pruned model', make)


def make_pruned(ctx: OptimizeContext, out: Path, quantization: str = 'none') -> dict:
    """
    Write the ``pruning`` (float32) or ``pruning-quant`` (dynamic range) method's file at ``out``.

    Return what to record about it.
    """
    from pilotnet_optimized.optimize.tflite import to_tflite

    model = pruned_model(ctx)
    to_tflite(model, out, quantization, preprocessing=ctx.preprocessing)
    sparsity = layer_sparsity(model)
    return {**ctx.finetune_parameters(), 'initial_sparsity': ctx.settings.initial_sparsity,
            'final_sparsity': ctx.settings.final_sparsity, 'prune_conv': ctx.settings.prune_conv,
            'quantization': quantization, 'sparsity': sparsity,
            'gzip_size_bytes': gzip_size(out)}
