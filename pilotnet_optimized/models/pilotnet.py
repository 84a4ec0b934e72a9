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
PilotNet architectures, built with tf_keras (Keras 2) so that tfmot can prune.

Cluster and quantise them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotnet_optimized.errors import PilotnetError

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras

__all__ = ['ARCHITECTURES', 'build_model', 'build_pilotnet', 'build_pilotnet_nvidia']


def _keras():
    # tfmot only works on tf_keras models; importing it here keeps TensorFlow out of ROS-free code
    # that does not build models.
    import tf_keras
    return tf_keras


def build_pilotnet(input_shape: tuple[int, int, int] = (66, 200, 3), head_units: int = 1164,
                   name: str = 'pilotnet') -> tf_keras.Model:
    """
    Build DeepLearningStudio's PilotNet (the seed's model): 17,016,206 parameters at 66x200x3.

    BatchNormalization on the raw 0..255 input; Conv2D 24, 36, 48 (5x5, stride 2, same) and 64, 64
    (3x3, stride 1, same), all ReLU; Flatten (14400); Dense 1164, 100, 50, 10 (ReLU); Dense 2
    (linear).

    :param head_units: width of the first dense layer; 1164 is the seed's. That layer holds 98.5 %
        of the weights, so a narrower head is the main lever for a much smaller model.
    """
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name='image')
    x = layers.BatchNormalization(name='input_norm')(inputs)
    for i, (filters, kernel, stride) in enumerate(
        [(24, 5, 2), (36, 5, 2), (48, 5, 2), (64, 3, 1), (64, 3, 1)]
    ):
        x = layers.Conv2D(
            filters, kernel, strides=stride, padding='same', activation='relu', name=f'conv{i + 1}'
        )(x)
    x = layers.Flatten(name='flatten')(x)
    for i, units in enumerate([head_units, 100, 50, 10]):
        x = layers.Dense(units, activation='relu', name=f'dense{i + 1}')(x)
    outputs = layers.Dense(2, name='vw')(x)
    return keras.Model(inputs, outputs, name=name)


def build_pilotnet_nvidia(input_shape: tuple[int, int, int] = (66, 200, 3),
                          name: str = 'pilotnet_nvidia') -> tf_keras.Model:
    """
    Build NVIDIA's original PilotNet (Bojarski et al., 2016): valid padding, about 1.6M parameters.

    A normalisation layer (here BatchNormalization, which tfmot quantises without special
    handling); Conv2D 24, 36, 48 (5x5, stride 2, valid) and 64, 64 (3x3, valid); Flatten (1152);
    Dense 1164, 100, 50, 10; with two outputs (v, w) instead of the paper's one steering output.
    """
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name='image')
    x = layers.BatchNormalization(name='input_norm')(inputs)
    for i, (filters, kernel, stride) in enumerate(
        [(24, 5, 2), (36, 5, 2), (48, 5, 2), (64, 3, 1), (64, 3, 1)]
    ):
        x = layers.Conv2D(filters, kernel, strides=stride, padding='valid', activation='relu',
                          name=f'conv{i + 1}')(x)
    x = layers.Flatten(name='flatten')(x)
    for i, units in enumerate([1164, 100, 50, 10]):
        x = layers.Dense(units, activation='relu', name=f'dense{i + 1}')(x)
    outputs = layers.Dense(2, name='vw')(x)
    return keras.Model(inputs, outputs, name=name)


ARCHITECTURES = {
    'pilotnet': build_pilotnet,
    'pilotnet-nvidia': build_pilotnet_nvidia,
}


def build_model(arch: str, input_shape: tuple[int, int, int] = (66, 200, 3)) -> tf_keras.Model:
    """Return a fresh model of architecture ``arch`` (one of :data:`ARCHITECTURES`)."""
    try:
        builder = ARCHITECTURES[arch]
    except KeyError:
        raise PilotnetError(
            f"unknown architecture '{arch}': choose one of {', '.join(ARCHITECTURES)}"
        ) from None
    return builder(input_shape)
