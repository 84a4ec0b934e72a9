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
The ``tiny`` method: a student made by the pipeline from the input model.

Trained for one epoch on 48 frames, so these check what the pipeline makes (file, size, shape,
preprocessing, the on-policy rounds), not how well it drives: ``pilotnet compare`` shows that on
real models (BENCHMARKS.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.models.preprocess import normalise_input, Preprocessing
import pytest


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.dataset import write_dataset
    root = tmp_path_factory.mktemp('tiny')
    write_dataset(get_circuit('simple'), 48, root / 'train' / 'simple', seed=1, progress=False)
    return root


@pytest.fixture(scope='module')
def teacher(data) -> Path:
    """Return an (untrained) NVIDIA PilotNet at the project's 66x200 input, saved as .keras."""
    from pilotnet_optimized.models.pilotnet import build_pilotnet_nvidia
    path = data / 'teacher.keras'
    build_pilotnet_nvidia().save(path)
    Preprocessing().save(path)
    return path


def test_student_halves_the_input_inside_and_is_small():
    from pilotnet_optimized.optimize.tiny import build_tiny
    student = build_tiny((66, 200, 3))
    assert student.input_shape == (None, 66, 200, 3)
    assert student.output_shape == (None, 2)
    assert student.get_layer('half').output_shape == (None, 33, 100, 3)
    assert student.count_params() < 200_000
    # A small input is not halved again, and one too small for the convolutions is refused.
    assert 'half' not in {layer.name for layer in build_tiny((33, 100, 3)).layers}
    with pytest.raises(PilotnetError, match='too small'):
        build_tiny((12, 40, 3))


def test_folding_the_input_norm_keeps_the_function():
    from pilotnet_optimized.optimize.tiny import build_tiny, fold_input_norm
    student = build_tiny((66, 200, 3))
    norm = student.get_layer('input_norm')
    gamma, beta, mean, var = norm.get_weights()
    norm.set_weights([gamma * 1.3, beta + 0.2, mean + 120.0, var * 4000.0])
    folded = fold_input_norm(student)
    assert 'input_norm' not in {layer.name for layer in folded.layers}
    x = np.random.default_rng(0).uniform(0, 255, (4, 66, 200, 3)).astype(np.float32)
    np.testing.assert_allclose(folded(x).numpy(), student(x).numpy(), atol=1e-5)


def test_tiny_is_made_by_the_pipeline(data, teacher):
    from pilotnet_optimized.backends import load_backend
    from pilotnet_optimized.models.data import load_datasets
    from pilotnet_optimized.optimize.pipeline import optimize_model

    rows = {
        r['method']: r
        for r in optimize_model(
            teacher, data / 'out', ['dynamic', 'tiny'], train_data=[data / 'train'],
            progress=None, batch_size=16, tiny_epochs=1, tiny_on_policy_frames=16,
        )
    }
    row = rows['tiny']
    assert row['status'] == 'ok', row['error']
    path = data / 'out' / 'tiny.tflite'
    assert path.is_file() and path.stat().st_size <= 0.5 * 2 ** 20
    assert rows['dynamic']['size_bytes'] / row['size_bytes'] >= 5
    params = row['parameters']
    assert params['parameters'] < params['reference_parameters'] / 8
    assert params['on_policy_rounds'] == 1 and params['on_policy_circuits'] == ['simple']
    assert params['quantization'] == 'dynamic'
    with load_backend(path) as backend:
        # The input model's preprocessing: the same camera frame goes in.
        assert backend.input_shape == (66, 200, 3)
        assert backend.precision == 'dynamic-range int8'
        x = normalise_input(load_datasets([data / 'train'], Preprocessing(),
                                          progress=False).images[:8])
        pred = backend.predict_normalised(x)
    assert pred.shape == (8, 2) and np.isfinite(pred).all()
