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
The OpenVINO methods of ``pilotnet optimize``: float32, NNCF int8, bf16 where the CPU has AMX.

Each writes an IR the backend factory loads and that predicts what the Keras model does; int8
calibrates on training circuits only; bf16 is skipped, saying why, on a CPU without AMX.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pilotnet_optimized.errors import PilotnetError
import pytest
from test_conversions import tiny_model, TinyModel

pytest.importorskip('openvino')
pytest.importorskip('nncf')

METHODS = ['openvino', 'openvino-int8', 'openvino-bf16']
# Mean |output - Keras output| in normalised [0, 1] units (TFLite's int8 bound in test_backends).
FLOAT = 1e-4
INT8 = 0.03
BF16 = 0.02


@pytest.fixture(scope='module')
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return tiny_model(tmp_path_factory)


@pytest.fixture(scope='module')
def built(tiny: TinyModel, tmp_path_factory: pytest.TempPathFactory):
    """Run the three methods on the tiny model at once, calibrated on a training circuit."""
    from pilotnet_optimized.optimize.pipeline import optimize_model
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.dataset import write_dataset
    root = tmp_path_factory.mktemp('openvino')
    write_dataset(get_circuit('simple'), 32, root / 'train' / 'simple', seed=3, progress=False)
    lines: list[str] = []
    rows = optimize_model(tiny.file('keras'), root / 'out', METHODS, train_data=[root / 'train'],
                          progress=lines.append, calibration_frames=32)
    return root, {r['method']: r for r in rows}, lines


def _predict(path: Path, batch: np.ndarray) -> tuple[np.ndarray, str, str]:
    from pilotnet_optimized.backends import load_backend
    with load_backend(path) as backend:
        return backend.predict_normalised(batch), backend.name, backend.precision


@pytest.mark.parametrize('name,precision,bound', [
    ('openvino', 'float32', FLOAT),
    ('openvino-int8', 'int8', INT8),
])
def test_ir_loads_in_the_openvino_backend_and_agrees_with_keras(
    built, tiny, name, precision, bound
):
    root, rows, _ = built
    row = rows[name]
    assert row['status'] == 'ok', row
    xml = root / 'out' / row['file']
    assert xml.suffix == '.xml' and xml.with_suffix('.bin').is_file()
    assert (root / 'out' / f'{xml.name}.preprocessing.json').is_file()
    # The size counts the weights: the .bin beside the .xml.
    assert row['size_bytes'] == xml.stat().st_size + xml.with_suffix('.bin').stat().st_size
    pred, backend, got = _predict(xml, tiny.batch)
    assert backend == 'openvino' and got == precision
    diff = float(np.abs(pred - tiny.reference).mean())
    assert diff < bound, f'{name}: mean |diff| {diff:.2e}'
    for k in range(2):  # still following the image, not sitting at the mean
        assert np.corrcoef(pred[:, k], tiny.reference[:, k])[0, 1] > 0.9
    if name == 'openvino-int8':  # the pipeline's own check, on the calibration frames
        assert row['agreement_mae'] < bound


def test_int8_records_its_calibration_and_float32_keeps_float32_weights(built):
    root, rows, _ = built
    assert rows['openvino-int8']['parameters']['calibration_frames'] == 32
    assert rows['openvino']['parameters']['weights'] == 'float32'
    # int8 weights: under half the float32 IR's weights.
    assert rows['openvino-int8']['size_bytes'] < 0.5 * rows['openvino']['size_bytes']
    manifest = json.loads((root / 'out' / 'manifest.json').read_text())
    assert list(manifest['methods']) == METHODS


def test_bf16_is_made_only_where_the_cpu_has_amx(built, tiny):
    from pilotnet_optimized.optimize.openvino import bf16_unavailable_reason
    root, rows, lines = built
    row = rows['openvino-bf16']
    reason = bf16_unavailable_reason()
    if reason is not None:
        assert row['status'] == 'skipped' and row['error'] == reason
        assert 'CPU has no BF16' in reason
        assert not (root / 'out' / row['file']).exists()
        line = next(x for x in lines if x.startswith('openvino-bf16'))
        assert 'skipped' in line and 'CPU has no BF16' in line
        assert 'FAILED' not in lines[-1] and 'skipped: openvino-bf16' in lines[-1]
    else:
        assert row['status'] == 'ok'
        pred, _, precision = _predict(root / 'out' / row['file'], tiny.batch)
        assert precision == 'bf16' and float(np.abs(pred - tiny.reference).mean()) < BF16


def test_a_bf16_ir_is_compiled_in_bf16(tiny, tmp_path):
    # The precision the IR records is the one the backend compiles with (this CPU may still do
    # bf16 without AMX, through AVX512-BF16 or emulation: the method is skipped for speed).
    import openvino as ov

    from pilotnet_optimized.optimize.openvino import to_openvino
    path = tmp_path / 'bf16.xml'
    to_openvino(tiny.model, path, inference_precision='bf16')
    caps = ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES')
    pred, _, precision = _predict(path, tiny.batch)
    assert precision == ('bf16' if 'BF16' in caps else 'float32')
    assert float(np.abs(pred - tiny.reference).mean()) < BF16


def test_int8_refuses_calibration_frames_of_a_test_circuit(tiny, tmp_path):
    from pilotnet_optimized.optimize.context import OptimizeContext
    from pilotnet_optimized.optimize.openvino import make_openvino
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.dataset import write_dataset
    test_data = tmp_path / 'long_fast'
    write_dataset(get_circuit('long_fast'), 4, test_data, seed=1, progress=False)
    ctx = OptimizeContext(keras_path=tiny.file('keras'), out_dir=tmp_path,
                          train_data=[test_data])
    with pytest.raises(PilotnetError, match='long_fast is a test circuit'):
        make_openvino(ctx, tmp_path / 'openvino-int8.xml', 'int8')
    assert not (tmp_path / 'openvino-int8.xml').exists()


def test_rerunning_a_method_replaces_both_files(built, tiny):
    from pilotnet_optimized.optimize.pipeline import optimize_model
    root, rows, _ = built
    out = root / 'out'
    xml = out / rows['openvino']['file']
    stale = xml.with_suffix('.bin')
    before = stale.stat().st_mtime_ns
    again, = optimize_model(tiny.file('keras'), out, ['openvino'], progress=None)
    assert again['status'] == 'ok' and stale.stat().st_mtime_ns != before
    assert not list(out.glob('.*tmp*'))  # no temporary IR left behind
