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
A student ten times faster than dynamic range (``tiny``), distilled from the input model.

The input model's preprocessing is kept (same sidecar, same 66x200 input tensor): the student
halves the resolution itself with a 2x2 average pool, then three narrow valid convolutions
(16, 24, 32 channels) and a dense head of 48 and 16 units, about 0.14 M parameters and 2 M
multiply-adds (the NVIDIA PilotNet: 1.6 M and 27 M). It is trained from scratch on every
training frame to reproduce the input model's predictions on the same augmented batches
(``tiny_teacher_weight`` is the settings' ``teacher_weight``), then on-policy (DAgger) rounds on
the training circuits of the data, as ``slim`` does, and stored with int8 weights (dynamic range:
full-integer models pay a quantise op at the float input that costs more than the model here).

Measured on the shipped default model (BENCHMARKS.md): 0.14 MB, 0.040 ms p50 at batch 1 on one
thread (dynamic range 0.234 ms in the same run), and it completes the test circuits the teacher
completes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pilotnet_optimized.errors import PilotnetError

if TYPE_CHECKING:  # pragma: no cover
    from pilotnet_optimized.optimize.context import OptimizeContext
    import tf_keras

__all__ = ['CONVS', 'HEAD', 'MIN_ROWS', 'build_tiny', 'fold_input_norm', 'make_tiny']

#: (filters, kernel, stride) of the student's valid convolutions, after the 2x2 pool.
CONVS = ((16, 5, 2), (24, 5, 2), (32, 3, 1))
#: Units of its dense head before the two outputs.
HEAD = (48, 16)
#: The student halves an input of at least twice this many rows (66x200 -> 33x100); a smaller
#: input goes to the convolutions as it is.
MIN_ROWS = 33


def build_tiny(input_shape: tuple[int, int, int] = (66, 200, 3), name: str = 'pilotnet_tiny',
               input_norm: bool = True) -> tf_keras.Model:
    """
    Return the untrained student for ``input_shape`` (the input model's).

    :param input_norm: begin with the BatchNormalization of the raw pixels (training); without it,
        the graph :func:`fold_input_norm` fills.
    :raises PilotnetError: for an input too small for its convolutions.
    """
    import tf_keras

    pool = 2 if input_shape[0] >= 2 * MIN_ROWS else 1
    h, w = input_shape[0] // pool, input_shape[1] // pool
    for _, kernel, stride in CONVS:
        h, w = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    if h < 1 or w < 1:
        raise PilotnetError(f'input {input_shape} is too small for the tiny student')
    layers = tf_keras.layers
    inputs = tf_keras.Input(shape=input_shape, name='image')
    x = layers.BatchNormalization(name='input_norm')(inputs) if input_norm else inputs
    if pool > 1:
        x = layers.AveragePooling2D(pool, name='half')(x)
    for i, (filters, kernel, stride) in enumerate(CONVS):
        x = layers.Conv2D(filters, kernel, strides=stride, padding='valid', activation='relu',
                          name=f'conv{i + 1}')(x)
    x = layers.Flatten(name='flatten')(x)
    for i, units in enumerate(HEAD):
        x = layers.Dense(units, activation='relu', name=f'dense{i + 1}')(x)
    outputs = layers.Dense(2, name='vw')(x)
    return tf_keras.Model(inputs, outputs, name=name)


def _set_input_norm(student: tf_keras.Model, frames: np.ndarray) -> None:
    """Set the student's input normalisation to the training frames' per-channel statistics."""
    sample = np.asarray(frames[:: max(1, len(frames) // 500)], np.float64)
    mean = sample.mean(axis=(0, 1, 2))
    var = sample.var(axis=(0, 1, 2))
    layer = student.get_layer('input_norm')
    gamma, beta, _, _ = layer.get_weights()
    layer.set_weights([np.ones_like(gamma), np.zeros_like(beta), mean.astype(np.float32),
                       var.astype(np.float32)])


def fold_input_norm(student: tf_keras.Model) -> tf_keras.Model:
    """
    Return ``student`` without its input BatchNormalization, folded into conv1: the same function.

    The normalisation is a per-channel ``a * x + b``; the average pool is linear and conv1 has no
    padding, so ``conv1(pool(a * x + b)) = conv1'(pool(x))`` with the kernel scaled by ``a`` per
    input channel and ``b`` added through it into the bias. The converter does not fold it (a
    trained normalisation is no identity), and at 66x200 its multiply and add cost the student as
    much as its convolutions.
    """
    norm = student.get_layer('input_norm')
    gamma, beta, mean, var = norm.get_weights()
    a = gamma / np.sqrt(var + norm.epsilon)
    b = beta - a * mean
    folded = build_tiny(tuple(student.input_shape[1:]), student.name, input_norm=False)
    for layer in folded.layers:
        if not layer.weights:
            continue
        weights = student.get_layer(layer.name).get_weights()
        if layer.name == 'conv1':
            kernel, bias = weights
            weights = [kernel * a[None, None, :, None],
                       bias + np.einsum('hwio,i->o', kernel, b)]
        layer.set_weights(weights)
    return folded


def make_tiny(ctx: OptimizeContext, out: Path) -> dict:
    """
    Write the ``tiny`` method's file at ``out`` and return what to record about it.

    Distil the student from the input model on every training frame, run the on-policy rounds,
    convert with dynamic-range quantisation.
    """
    from pilotnet_optimized.models.data import Frames
    from pilotnet_optimized.models.on_policy import collect_on_policy, keras_policy
    from pilotnet_optimized.optimize.structured import training_circuits
    from pilotnet_optimized.optimize.tflite import to_tflite

    s = ctx.settings
    if s.tiny_epochs < 1 or s.tiny_on_policy_rounds < 0 or s.tiny_on_policy_frames < 1:
        raise PilotnetError('tiny_epochs and tiny_on_policy_frames must be at least 1, '
                            'tiny_on_policy_rounds at least 0')
    teacher = ctx.model()
    student = build_tiny(ctx.preprocessing.input_shape)
    base = ctx.train_frames()
    _set_input_norm(student, base.images)
    history = ctx.fit(student, epochs=s.tiny_epochs, learning_rate=s.tiny_learning_rate,
                      frames=base)
    circuits = training_circuits(ctx) if s.tiny_on_policy_rounds else []
    images, labels = [base.images], [base.labels]
    sources = tuple(base.sources)
    for round_ in range(s.tiny_on_policy_rounds):
        seen = collect_on_policy(keras_policy(student, ctx.preprocessing), circuits,
                                 s.tiny_on_policy_frames, ctx.preprocessing,
                                 seed=s.seed + 100 + round_)
        images.append(seen.images)
        labels.append(seen.labels)
        sources += tuple(seen.sources)
        history = ctx.fit(student, epochs=max(1, s.tiny_epochs // 2),
                          learning_rate=s.tiny_learning_rate / 3,
                          frames=Frames(np.concatenate(images), np.concatenate(labels), sources))
    to_tflite(fold_input_norm(student), out, 'dynamic', preprocessing=ctx.preprocessing)
    return {
        'convs': [list(c) for c in CONVS],
        'head': list(HEAD),
        'quantization': 'dynamic',
        'epochs': s.tiny_epochs,
        'train_frames': len(base),
        'learning_rate': s.tiny_learning_rate,
        'teacher_weight': s.teacher_weight,
        'on_policy_rounds': s.tiny_on_policy_rounds,
        'on_policy_frames': s.tiny_on_policy_frames,
        'on_policy_circuits': [c.name for c in circuits],
        'parameters': int(student.count_params()),
        'reference_parameters': int(teacher.count_params()),
        'final_loss': round(history['loss'][-1], 6) if history.get('loss') else None,
    }
