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
Collaborative optimisation (tfmot's CQAT, PQAT and PCQAT).

Quantisation-aware training that keeps what an earlier step made, so the int8 model is still
clustered and/or sparse.

- CQAT: cluster, strip, then QAT with ``Default8BitClusterPreserveQuantizeScheme``.
- PQAT: the run's pruned model, then QAT with ``Default8BitPrunePreserveQuantizeScheme``.
- PCQAT: the pruned model, sparsity-preserving clustering, then
  ``Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)``.

Each is converted with ``Optimize.DEFAULT``. In the cluster-preserving schemes the kernels are
rebuilt from trained centroids, so Keras warns that the kernel variables get no gradients: that is
expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TYPE_CHECKING

from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.optimize.clustering import (cluster, clustered_layer_names,
                                                    unique_weight_counts)
from pilotnet_optimized.optimize.pruning import layer_sparsity, pruned_model
from pilotnet_optimized.optimize.qat import QUANTISED_LAYERS, quantize_aware

if TYPE_CHECKING:  # pragma: no cover
    from pilotnet_optimized.optimize.context import OptimizeContext
    import tf_keras

__all__ = ['KINDS', 'collaborative_model', 'make_collaborative']

KINDS = ('cqat', 'pqat', 'pcqat')


def _schemes() -> Any:
    import tensorflow_model_optimization as tfmot
    return tfmot.experimental.combine


def collaborative_model(ctx: OptimizeContext, kind: str) -> tuple[tf_keras.Model, dict]:
    """
    Build the QAT model of ``kind`` (one of :data:`KINDS`).

    Return it with what to record about its float predecessor.
    """
    if kind not in KINDS:
        raise PilotnetError(
            f"unknown collaborative optimisation '{kind}': choose one of {', '.join(KINDS)}"
        )
    combine = _schemes()
    s = ctx.settings
    info: dict[str, Any] = ctx.finetune_parameters()
    plain: list[str] = []
    if kind == 'pqat':
        base = pruned_model(ctx)
        scheme = combine.Default8BitPrunePreserveQuantizeScheme()
    else:
        sparse = kind == 'pcqat'
        source = pruned_model(ctx) if sparse else ctx.model()
        clustered = clustered_layer_names(source, s.clusters, preserve_sparsity=sparse)
        base = cluster(source, ctx.fit, s.clusters, preserve_sparsity=sparse)
        scheme = combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=sparse)
        counts = unique_weight_counts(base)
        info['clusters'] = s.clusters
        info['unique_weights'] = {name: counts[name] for name in clustered}
        # Unclustered layers get the plain QAT config: see quantize_aware for what tfmot does
        # otherwise.
        plain = [layer.name for layer in base.layers
                 if type(layer).__name__ in QUANTISED_LAYERS and layer.name not in clustered]
    if kind in ('pqat', 'pcqat'):
        info['sparsity'] = layer_sparsity(base)
    qat = quantize_aware(base, ctx.fit, ctx.representative(), scheme, plain_layers=plain)
    return qat, info


def make_collaborative(ctx: OptimizeContext, out: Path, kind: str) -> dict:
    """
    Write the ``cqat``, ``pqat`` or ``pcqat`` method's file (``kind``) at ``out``.

    Return what to record about it.
    """
    from pilotnet_optimized.optimize.tflite import to_tflite

    qat, info = collaborative_model(ctx, kind)
    to_tflite(qat, out, 'dynamic', preprocessing=ctx.preprocessing)
    return info
