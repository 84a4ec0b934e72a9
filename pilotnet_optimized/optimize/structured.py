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
Structured pruning of dense1 (``slim``), beyond the seed.

A much smaller dense model, not a sparse one.

dense1 (14400 x 1164) holds 98.5 % of PilotNet's weights, and unstructured pruning leaves its shape
(and the file size) unchanged. Here whole units are removed: the ``k`` most important units of
dense1 are kept, their kernel columns and bias copied, the matching rows of dense2's kernel copied,
every other layer copied as is. The narrow model is then fine-tuned to reproduce the original's
predictions on the same augmented training frames (knowledge distillation; ``slim_teacher_weight``
blends in the labels), and quantised.

Measured on the project's trained model (held-out hairpins circuit, 4 epochs on 3000 training
frames): k = 96 (the default) with dynamic range is 1.47 MB, 11 x smaller than the full model's
16.3 MB dynamic-range file, at 1.01 x the TFLite baseline's MSE; k = 64 is 1.03 MB at 1.02 x (1.06
x with only 2000 frames). Blending labels in at 0.5 gave 1.09 x: the labels pull the student
towards the training circuits the early-stopped original had stopped short of overfitting.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pilotnet_optimized.errors import PilotnetError

if TYPE_CHECKING:  # pragma: no cover
    from pilotnet_optimized.optimize.context import OptimizeContext
    import tf_keras

__all__ = ['CRITERIA', 'unit_importance', 'narrow_dense', 'make_slim', 'training_circuits']

CRITERIA = ('activation', 'l2', 'l2-out')


def unit_importance(
    model: tf_keras.Model,
    criterion: str = 'activation',
    data: np.ndarray | None = None,
    layer: str = 'dense1',
    next_layer: str = 'dense2',
) -> np.ndarray:
    """
    Return a score per unit of ``layer``; higher is more important.

    - ``'l2'``: L2 norm of the unit's incoming weights.
    - ``'l2-out'``: that times the L2 norm of its outgoing weights (into ``next_layer``).
    - ``'activation'``: the unit's mean (post-ReLU) activation on ``data`` times its outgoing L2
      norm: how much it feeds forward on real frames. A unit that never fires scores 0 whatever its
      weights.
    """
    import tf_keras

    if criterion not in CRITERIA:
        raise PilotnetError(
            f"unknown importance criterion '{criterion}': choose one of {', '.join(CRITERIA)}"
        )
    kernel = model.get_layer(layer).get_weights()[0]
    out_norm = np.linalg.norm(model.get_layer(next_layer).get_weights()[0], axis=1)
    if criterion == 'l2':
        return np.linalg.norm(kernel, axis=0)
    if criterion == 'l2-out':
        return np.linalg.norm(kernel, axis=0) * out_norm
    if data is None or len(data) == 0:
        raise PilotnetError("the 'activation' criterion needs data (preprocessed frames)")
    probe = tf_keras.Model(model.inputs, model.get_layer(layer).output)
    mean = np.zeros(kernel.shape[1], np.float64)
    for start in range(0, len(data), 32):
        mean += np.asarray(probe(data[start:start + 32], training=False), np.float64).sum(axis=0)
    return mean / len(data) * out_norm


def narrow_dense(model: tf_keras.Model, keep: np.ndarray, layer: str = 'dense1',
                 next_layer: str = 'dense2') -> tf_keras.Model:
    """
    Return a copy of ``model`` whose ``layer`` has only the units ``keep`` (indices).

    With every weight copied: ``layer``'s kernel columns and bias entries, ``next_layer``'s kernel
    rows, all other layers unchanged.

    Built from the model's own config, so any architecture with these two Dense layers works.
    """
    import tf_keras

    keep = np.sort(np.asarray(keep, dtype=int))
    config = model.get_config()
    found = False
    for spec in config['layers']:
        if spec['config'].get('name') == layer:
            spec['config']['units'] = int(len(keep))
            found = True
    if not found or type(model.get_layer(next_layer)).__name__ != 'Dense':
        raise PilotnetError(
            f'model {model.name!r} has no Dense layers {layer!r} -> {next_layer!r} to narrow'
        )
    narrow = tf_keras.Model.from_config(config)
    for src in model.layers:
        weights = src.get_weights()
        if src.name == layer:
            weights = [weights[0][:, keep], weights[1][keep]]
        elif src.name == next_layer:
            weights = [weights[0][keep, :], weights[1]]
        narrow.get_layer(src.name).set_weights(weights)
    return narrow


def make_slim(ctx: OptimizeContext, out: Path) -> dict:
    """
    Write the ``slim`` method's file at ``out`` and return what to record about it.

    Keep the ``slim_units`` most important dense1 units, fine-tune with distillation, convert with
    ``slim_quantization``.
    """
    from pilotnet_optimized.optimize.tflite import NEEDS_REPRESENTATIVE, QUANTIZATIONS, to_tflite

    s = ctx.settings
    if s.slim_quantization not in QUANTIZATIONS:
        raise PilotnetError(f"unknown slim quantization '{s.slim_quantization}': choose one of "
                            f"{', '.join(QUANTIZATIONS)}")
    teacher = ctx.model()
    units = (
        teacher.get_layer('dense1').units if 'dense1' in {x.name for x in teacher.layers} else None
    )
    if units is None:
        raise PilotnetError(f'model {teacher.name!r} has no dense1 layer to prune')
    if s.slim_units >= units:
        raise PilotnetError(f"slim_units ({s.slim_units}) must be below dense1's {units} units")
    calibration = ctx.representative()
    scores = unit_importance(teacher, s.slim_criterion, calibration)
    keep = np.argsort(-scores, kind='stable')[:s.slim_units]
    student = narrow_dense(teacher, keep)
    history = ctx.fit(student, epochs=s.slim_finetune_epochs, learning_rate=s.slim_learning_rate,
                      teacher_weight=s.slim_teacher_weight)
    on_policy = _on_policy_rounds(ctx, student) if s.slim_on_policy_rounds else {}
    if on_policy:
        history = on_policy.pop('history')
    representative = calibration if s.slim_quantization in NEEDS_REPRESENTATIVE else None
    to_tflite(student, out, s.slim_quantization, representative=representative,
              num_calibration=s.calibration_frames, preprocessing=ctx.preprocessing)
    return {
        'units': int(s.slim_units),
        'of_units': int(units),
        'criterion': s.slim_criterion,
        'quantization': s.slim_quantization,
        'finetune_epochs': s.slim_finetune_epochs,
        'finetune_frames': len(ctx.finetune_frames()),
        'learning_rate': s.slim_learning_rate,
        'teacher_weight': s.slim_teacher_weight,
        'parameters': int(student.count_params()),
        'reference_parameters': int(teacher.count_params()),
        'final_loss': round(history['loss'][-1], 6) if history.get('loss') else None,
        **on_policy,
    }


def _on_policy_rounds(ctx: OptimizeContext, student: tf_keras.Model) -> dict:
    """
    Run the DAgger rounds on ``student``.

    In each round the student drives the training circuits, and is fine-tuned on the frames it saw
    (with the distillation targets, like the rest) together with the original fine-tuning frames.
    """
    from pilotnet_optimized.models.data import Frames
    from pilotnet_optimized.models.on_policy import collect_on_policy, keras_policy

    s = ctx.settings
    circuits = training_circuits(ctx)
    base = ctx.finetune_frames()
    images, labels = [base.images], [base.labels]
    history: dict = {}
    for round_ in range(s.slim_on_policy_rounds):
        seen = collect_on_policy(
            keras_policy(student, ctx.preprocessing),
            circuits,
            s.slim_on_policy_frames,
            ctx.preprocessing,
            seed=s.seed + round_,
        )
        images.append(seen.images)
        labels.append(seen.labels)
        frames = Frames(
            np.concatenate(images), np.concatenate(labels), base.sources + seen.sources
        )
        history = ctx.fit(
            student,
            epochs=max(1, s.slim_finetune_epochs // 2),
            learning_rate=s.slim_learning_rate,
            teacher_weight=s.slim_teacher_weight,
            frames=frames,
        )
    return {
        'on_policy_rounds': s.slim_on_policy_rounds,
        'on_policy_frames': s.slim_on_policy_frames,
        'on_policy_circuits': [c.name for c in circuits],
        'history': history,
    }


def training_circuits(ctx: OptimizeContext) -> list:
    """Return the circuits the training datasets were recorded on (their meta.json)."""
    from pilotnet_optimized.models.data import dataset_circuits
    from pilotnet_optimized.sim import get_circuit

    names = dataset_circuits(list(ctx.train_data or []))
    if not names:
        raise PilotnetError(
            'on-policy rounds need the circuits of the training data (meta.json of each dataset '
            'folder): pass slim_on_policy_rounds=0 for data without them'
        )
    return [get_circuit(n) for n in names]
