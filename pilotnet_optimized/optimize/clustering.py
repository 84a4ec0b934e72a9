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
Weight clustering (the first half of CQAT and PCQAT).

Every (large enough) Dense kernel shares at most ``clusters`` values, fine-tuned with tfmot's
``cluster_weights`` and stripped with ``strip_clustering``.

A clustered float model is as large as the baseline; clustering pays when the file is compressed,
or when the clusters survive quantisation (the cluster-preserving QAT in
:mod:`~pilotnet_optimized.optimize.collaborative`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TYPE_CHECKING

import numpy as np
from pilotnet_optimized.optimize.context import fresh_copy

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras

__all__ = [
    'cluster',
    'clustered_layer_names',
    'unique_weight_counts',
    'CLUSTERED_LAYERS',
    'MIN_WEIGHTS_PER_CLUSTER',
]

#: Layer types whose kernels are clustered. Dense only: the Dense kernels hold 99 % of PilotNet's
#: weights, so clustering the convolutions would save nothing in size, cost accuracy where the
#: features are made, and make tfmot's cluster-preserving QAT trace a sub-graph per convolution
#: channel (about 20 s per run).
CLUSTERED_LAYERS = ('Dense',)
#: Kernels with fewer weights than this per cluster are left unclustered.
MIN_WEIGHTS_PER_CLUSTER = 16


def cluster(model: tf_keras.Model, fit: Callable[[tf_keras.Model], Any], clusters: int = 16,
            preserve_sparsity: bool = False) -> tf_keras.Model:
    """
    Cluster every large enough Dense kernel of (a copy of) ``model`` into ``clusters`` values.

    Fine-tune with ``fit``, and return the stripped float model.

    :param preserve_sparsity: keep pruned zeros at zero (PCQAT's sparsity-preserving clustering).
    """
    import tensorflow_model_optimization as tfmot

    ckeras = tfmot.clustering.keras
    # k-means++ places centroids where the weights are dense (near zero for these kernels), which
    # keeps more precision than evenly spaced (LINEAR) centroids for the same count.
    params: dict[str, Any] = {
        'number_of_clusters': int(clusters),
        'cluster_centroids_init': ckeras.CentroidInitialization.KMEANS_PLUS_PLUS,
    }
    if preserve_sparsity:
        params['preserve_sparsity'] = True

    def wrap(layer: Any) -> Any:
        if type(layer).__name__ in CLUSTERED_LAYERS and _worth_clustering(
            layer, clusters, preserve_sparsity
        ):
            return ckeras.cluster_weights(layer, **params)
        return layer
    wrapped = fresh_copy(model, wrap)
    fit(wrapped)
    # The stripped model reuses the wrappers' inner layers, which also belong to the wrapped graph:
    # their ``.output`` is ambiguous ("Graph disconnected" when probed). A config round trip makes
    # a clean model.
    return fresh_copy(ckeras.strip_clustering(wrapped))


def _worth_clustering(layer: Any, clusters: int, preserve_sparsity: bool) -> bool:
    """
    Check whether ``layer``'s kernel is worth clustering.

    Cluster only kernels with at least :data:`MIN_WEIGHTS_PER_CLUSTER` (non-zero) weights per
    cluster, and with ``preserve_sparsity`` only sparse ones.

    Tiny kernels (the 10 x 2 output layer) gain nothing, and with ``preserve_sparsity`` tfmot's
    k-means++ initialisation fails outright ("Expected num_to_sample <= points.rows()") when a
    pruned kernel has fewer positive or negative weights than half the clusters. A kernel without
    zeros (not pruned) would make tfmot's PCQAT stop preserving sparsity in every layer (see
    :func:`~pilotnet_optimized.optimize.qat.quantize_aware`).
    """
    kernel = np.asarray(layer.get_weights()[0])
    if preserve_sparsity:
        return (
            bool((kernel == 0).any())
            and min(int((kernel > 0).sum()), int((kernel < 0).sum()))
            >= MIN_WEIGHTS_PER_CLUSTER * clusters // 2
        )
    return kernel.size >= MIN_WEIGHTS_PER_CLUSTER * clusters


def clustered_layer_names(
    model: tf_keras.Model, clusters: int = 16, preserve_sparsity: bool = False
) -> list[str]:
    """Return the layers :func:`cluster` clusters in ``model``."""
    return [layer.name for layer in model.layers if type(layer).__name__ in CLUSTERED_LAYERS
            and _worth_clustering(layer, clusters, preserve_sparsity)]


def unique_weight_counts(model: tf_keras.Model) -> dict[str, int]:
    """
    Return the number of distinct values in each Conv2D/Dense kernel.

    In clustered kernels it is at most the cluster count.
    """
    return {layer.name: int(len(np.unique(layer.get_weights()[0]))) for layer in model.layers
            if type(layer).__name__ in ('Conv2D', 'Dense')}
