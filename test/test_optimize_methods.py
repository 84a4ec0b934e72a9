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
``pilotnet optimize`` end to end on tiny models.

Every method's file, the manifest, and the failure paths.

The models are tiny (33x100 input, a 16-unit dense1; and a 66x200 "teacher" with a 256-unit dense1
for ``slim``) and fine-tuned for one epoch of a few steps, so the agreement bounds below are loose:
they catch broken conversions (uncalibrated QAT ranges, undequantised integer outputs, lost
BatchNormalization statistics), not small accuracy changes, which ``pilotnet evaluate`` measures on
real models.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import subprocess
import sys

import numpy as np
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.models.preprocess import normalise_input, Preprocessing
from pilotnet_optimized.optimize.methods import get_method, METHODS, resolve_methods
import pytest

TINY = Preprocessing(width=100, height=33)
# Fine-tuning settings for the tests: one epoch of a few small batches (distilled from the
# reference, the default, so that the fine-tuned methods stay near it and the bounds below test the
# method).
FAST = {
    'finetune_epochs': 1,
    'max_finetune_frames': 64,
    'batch_size': 16,
    'slim_on_policy_frames': 24,
    'tiny_epochs': 1,
    'tiny_on_policy_frames': 24,
}

# Mean |output - reference output| in normalised [0, 1] units, on held-out frames.
EXACT = 1e-4           # same float32 graph in another format
HALF = 0.02  # float16 or int8 weights with float activations
INTEGER = 0.15         # int8 activations (a 16-unit model has little redundancy to absorb them)
# 80 % of the Dense weights removed; also judged against the pruned float model below
PRUNED = 0.25
TOLERANCE = {
    'keras': EXACT,
    'baseline': EXACT,
    'savedmodel': EXACT,
    'onnx': 1e-3,
    'float16': HALF,
    'dynamic': HALF,
    'int8': INTEGER,
    'int8-fallback': INTEGER,
    'qat': INTEGER,
    'cqat': INTEGER,
    'pruning': PRUNED,
    'pruning-quant': PRUNED,
    'pqat': PRUNED,
    'pcqat': PRUNED,
    'openvino': 1e-3,
    'openvino-int8': INTEGER,
}
TRAINED = ['qat', 'pruning', 'pruning-quant', 'cqat', 'pqat', 'pcqat']


def _calibrate_input_norm(path: Path, data: Path, prep: Preprocessing) -> None:
    """
    Set the input BatchNormalization's moving statistics to the data's.

    One epoch of a few batches leaves them near their initial 0 and 1, so the model would see raw
    0..255 pixels at inference and output nonsense; a real training run converges them. This makes
    the tiny reference behave like a trained model at inference.
    """
    from pilotnet_optimized.models.data import load_datasets
    import tf_keras
    model = tf_keras.models.load_model(path, compile=False)
    x = load_datasets([data], prep, progress=False).images.astype(np.float32)
    layer = model.get_layer('input_norm')
    gamma, beta, _, _ = layer.get_weights()
    layer.set_weights([gamma, beta, x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))])
    model.save(path)


def _train_tiny(
    root: Path, name: str, prep: Preprocessing, head_units: int, learning_rate: float = 1e-3
) -> Path:
    from pilotnet_optimized.models.train import train, TrainConfig
    path = root / f'{name}.keras'
    cfg = TrainConfig(
        epochs=1, head_units=head_units, preprocessing=prep, learning_rate=learning_rate
    )
    train([root / 'train'], path, cfg, verbose=0)
    _calibrate_input_norm(path, root / 'train', prep)
    return path


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.dataset import write_dataset
    root = tmp_path_factory.mktemp('optimize')
    write_dataset(get_circuit('simple'), 64, root / 'train' / 'simple', seed=1, progress=False)
    write_dataset(get_circuit('hairpins'), 24, root / 'val' / 'hairpins', seed=2, progress=False)
    return root


@pytest.fixture(scope='module')
def tiny(data) -> Path:
    return _train_tiny(data, 'tiny', TINY, head_units=16)


@pytest.fixture(scope='module')
def optimized(data, tiny):
    """Every CPU method on the tiny model, in one run."""
    from pilotnet_optimized.optimize.pipeline import optimize_model
    lines: list[str] = []
    out = data / 'out'
    rows = optimize_model(tiny, out, ['all'], train_data=[data / 'train'], val_data=[data / 'val'],
                          progress=lines.append, slim_units=8, **FAST)
    return out, {r['method']: r for r in rows}, lines


@pytest.fixture(scope='module')
def val_input(data) -> np.ndarray:
    from pilotnet_optimized.models.data import load_datasets
    return normalise_input(load_datasets([data / 'val'], TINY, progress=False).images, TINY)


def _predict(path: Path, x: np.ndarray) -> np.ndarray:
    from pilotnet_optimized.backends import load_backend
    with load_backend(path) as backend:
        return backend.predict_normalised(x)


def _tflite_weights(path: Path, shape: tuple[int, ...]) -> list[np.ndarray]:
    """
    Return the constant tensors of ``shape`` in a .tflite file.

    TFLite stores a Dense kernel as units x inputs.
    """
    from pilotnet_optimized.backends.litert import interpreter_class
    interpreter = interpreter_class()[0](model_path=str(path))
    found = []
    for t in interpreter.get_tensor_details():
        if tuple(t['shape']) == shape:
            try:
                found.append(np.array(interpreter.get_tensor(t['index'])))
            except ValueError:  # not a constant buffer
                continue
    return found


# -- the method table -----------------------------------------------------------------------------
def test_method_table_rows_are_complete():
    names = [m.name for m in METHODS]
    assert len(names) == len(set(names))
    for expected in (
        'keras',
        'baseline',
        'dynamic',
        'float16',
        'int8',
        'int8-fallback',
        'qat',
        'pruning',
        'pruning-quant',
        'cqat',
        'pqat',
        'pcqat',
        'savedmodel',
        'onnx',
        'slim',
        'tensorrt',
    ):
        assert expected in names
    for m in METHODS:
        assert callable(m.producer) and m.description and m.precision
        assert m.needs_data in (None, 'calibration', 'fine-tuning')
        assert m.filename.startswith(m.name)
    assert [m.name for m in resolve_methods(['dynamic,baseline', 'dynamic'])] == [
        'baseline',
        'dynamic',
    ]
    assert len(resolve_methods('all')) == len(METHODS)


def test_importing_the_table_does_not_import_tensorflow():
    code = 'import sys, pilotnet_optimized.optimize.methods; print("tensorflow" in sys.modules)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == 'False', out.stderr


def test_unknown_method_names_the_valid_ones():
    with pytest.raises(PilotnetError, match="did you mean 'pruning'.*baseline.*pcqat.*slim"):
        get_method('prunning')
    with pytest.raises(PilotnetError, match='choose from all, keras, baseline'):
        resolve_methods(['baseline', 'gpu-magic'])


def test_methods_needing_data_without_data_is_a_clear_error(tiny, tmp_path):
    from pilotnet_optimized.optimize.pipeline import optimize_model
    with pytest.raises(PilotnetError, match='methods int8, qat need training data.*--data'):
        optimize_model(tiny, tmp_path, ['qat', 'int8', 'baseline'], progress=None)
    assert not (tmp_path / 'baseline.tflite').exists()  # refused before doing anything
    with pytest.raises(PilotnetError, match="unknown optimisation option 'slim_unit'.*slim_units"):
        optimize_model(tiny, tmp_path, ['baseline'], progress=None, slim_unit=8)


# -- every method on the tiny model ---------------------------------------------------------------
def test_every_cpu_method_succeeds_with_one_progress_line_each(optimized):
    _, rows, lines = optimized
    assert [r for r in rows.values() if r['status'] == 'failed'] == []
    # Every method this machine can make (no GPU for TensorRT, no AMX for openvino-bf16: skipped).
    cpu = [m.name for m in METHODS if m.unavailable_reason() is None]
    assert all(rows[name]['status'] == 'ok' for name in cpu)
    assert len(lines) == len(METHODS) + 1  # one per method, then the summary
    for name, line in zip(rows, lines):
        assert line.startswith(name)
    assert lines[-1].startswith(f'{len(cpu)} of {len(METHODS)} methods written')


@pytest.mark.parametrize('name', list(TOLERANCE))
def test_output_loads_and_agrees_with_the_keras_model(optimized, val_input, name):
    out, rows, _ = optimized
    path = out / rows[name]['file']
    assert path.exists()
    reference = _predict(out / 'keras.keras', val_input)
    pred = _predict(path, val_input)
    assert pred.shape == (len(val_input), 2) and np.isfinite(pred).all()
    diff = float(np.abs(pred - reference).mean())
    assert diff < TOLERANCE[name], f'{name}: mean |diff| {diff:.4f} >= {TOLERANCE[name]}'
    assert rows[name]['agreement_mae'] == pytest.approx(diff, abs=1e-3)  # the manifest's own check
    assert np.isfinite(rows[name]['val_mse'])


@pytest.mark.parametrize('name', ['pruning-quant', 'pqat', 'pcqat'])
def test_quantised_pruned_models_agree_with_the_pruned_float_model(optimized, val_input, name):
    out, rows, _ = optimized
    pruned = _predict(out / 'pruning.tflite', val_input)
    diff = float(np.abs(_predict(out / rows[name]['file'], val_input) - pruned).mean())
    assert diff < (HALF if name == 'pruning-quant' else INTEGER), f'{name}: {diff:.4f}'


def test_pruned_model_is_sparse_and_compresses(optimized):
    out, rows, _ = optimized
    params = rows['pruning']['parameters']
    assert params['sparsity']['dense1'] >= 0.75 and params['sparsity']['dense2'] >= 0.75
    # Dense only by default; and the 20-weight output layer is left whole.
    assert params['sparsity']['conv3'] == 0.0 and params['sparsity']['vw'] == 0.0
    kernel, = _tflite_weights(out / 'pruning.tflite', (16, 4160))
    assert kernel.dtype == np.float32 and (kernel == 0).mean() >= 0.75
    size, gz = rows['pruning']['size_bytes'], params['gzip_size_bytes']
    # float32: same size as baseline
    assert size == pytest.approx(rows['baseline']['size_bytes'], rel=0.01)
    # Where the zeros show. Only the Dense kernels are pruned, a third of this tiny model's weights
    # (99 % of PilotNet's, where gzip takes the float32 file to about 0.3 x).
    from pilotnet_optimized.optimize.pruning import gzip_size
    assert gz < 0.8 * gzip_size(out / 'baseline.tflite')
    assert size / rows['pruning-quant']['size_bytes'] > 3.5
    for name in ('pqat', 'pcqat'):
        int8_kernel, = _tflite_weights(out / f'{name}.tflite', (16, 4160))
        assert int8_kernel.dtype == np.int8 and (int8_kernel == 0).mean() >= 0.75, name


def test_clustered_kernels_keep_at_most_16_values(optimized):
    out, rows, _ = optimized
    for name in ('cqat', 'pcqat'):
        unique = rows[name]['parameters']['unique_weights']
        assert 'dense1' in unique and max(unique.values()) <= 16, (name, unique)
        int8_kernel, = _tflite_weights(out / f'{name}.tflite', (16, 4160))
        assert len(np.unique(int8_kernel)) <= 16, name  # the clusters survive quantisation


def test_manifest_lists_every_method(optimized):
    out, rows, _ = optimized
    manifest = json.loads((out / 'manifest.json').read_text())
    assert list(manifest['methods']) == [m.name for m in METHODS]
    for name, entry in manifest['methods'].items():
        assert entry['status'] in ('ok', 'skipped'), name
        for key in ('file', 'precision', 'size_bytes', 'seconds', 'error', 'parameters'):
            assert key in entry
    # no GPU or no TensorRT here: skipped, saying why
    if get_method('tensorrt').unavailable_reason():
        assert manifest['methods']['tensorrt']['status'] == 'skipped'
        assert 'tensorrt' in manifest['methods']['tensorrt']['error']
    assert (
        manifest['settings']['finetune_epochs'] == 1 and manifest['preprocessing']['width'] == 100
    )
    assert (out / 'savedmodel' / 'saved_model.pb').is_file()
    for m in METHODS:
        if rows[m.name]['status'] == 'ok':
            assert (out / (m.filename + '.preprocessing.json')).is_file(), m.name


def test_rerunning_one_method_keeps_the_rest_of_the_table(optimized, tiny, data, tmp_path):
    import shutil

    from pilotnet_optimized.optimize.pipeline import optimize_model
    out, rows, _ = optimized
    copy = tmp_path / 'out'
    shutil.copytree(out, copy)
    optimize_model(tiny, copy, ['float16'], progress=None, **FAST)
    methods = json.loads((copy / 'manifest.json').read_text())['methods']
    ok_before = {name for name, row in rows.items() if row['status'] == 'ok'}
    assert ok_before <= set(methods)
    # A different source model starts a fresh table.
    other = copy / 'other.keras'
    shutil.copy(tiny, other)
    optimize_model(other, copy, ['float16'], progress=None, **FAST)
    assert list(json.loads((copy / 'manifest.json').read_text())['methods']) == ['float16']


# -- beyond the seed: structured pruning ----------------------------------------------------------
def test_slim_is_much_smaller_than_dynamic_range(data):
    from pilotnet_optimized.optimize.pipeline import optimize_model

    # A gentle learning rate: three Adam steps at 1e-3 move a 3.7 M-weight dense1 far from any
    # sensible output.
    teacher = _train_tiny(data, 'teacher', Preprocessing(), head_units=256, learning_rate=1e-4)
    rows = {
        r['method']: r
        for r in optimize_model(
            teacher,
            data / 'slim',
            ['dynamic', 'slim'],
            train_data=[data / 'train'],
            progress=None,
            slim_units=16,
            **FAST,
        )
    }
    assert rows['slim']['status'] == 'ok', rows['slim']['error']
    ratio = rows['dynamic']['size_bytes'] / rows['slim']['size_bytes']
    assert ratio >= 8, f'slim is only {ratio:.1f}x smaller than dynamic range'
    params = rows['slim']['parameters']
    assert params['units'] == 16 and params['of_units'] == 256
    assert params['parameters'] < params['reference_parameters'] / 8
    # The student also drove the training circuit (DAgger rounds) and was fine-tuned on what it
    # saw.
    assert params['on_policy_rounds'] == 2 and params['on_policy_frames'] == 24
    assert params['on_policy_circuits'] == ['simple']
    from pilotnet_optimized.models.data import load_datasets
    x = normalise_input(load_datasets([data / 'val'], Preprocessing(), progress=False).images)
    pred = _predict(data / 'slim' / 'slim.tflite', x)
    # Labels lie in [0, 1]. How close slim comes to its teacher is for real models to show (the
    # 1-epoch teacher here is itself far from its labels, and the distillation targets blend both),
    # so this only checks sense.
    assert np.isfinite(pred).all() and -0.5 < pred.min() and pred.max() < 1.5


def test_narrow_dense_copies_the_kept_units_exactly():
    from pilotnet_optimized.models.pilotnet import build_pilotnet
    from pilotnet_optimized.optimize.structured import narrow_dense, unit_importance
    model = build_pilotnet((33, 100, 3), head_units=12)
    keep = np.argsort(-unit_importance(model, 'l2-out'))[:5]
    narrow = narrow_dense(model, keep)
    assert narrow.get_layer('dense1').units == 5
    kernel = model.get_layer('dense1').get_weights()[0]
    assert np.array_equal(narrow.get_layer('dense1').get_weights()[0], kernel[:, np.sort(keep)])
    assert np.array_equal(narrow.get_layer('dense2').get_weights()[0],
                          model.get_layer('dense2').get_weights()[0][np.sort(keep)])
    # With every unit kept, the narrowed model is the same function.
    x = np.random.default_rng(0).uniform(0, 255, (4, 33, 100, 3)).astype(np.float32)
    same = narrow_dense(model, np.arange(12))
    np.testing.assert_allclose(same(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_distillation_blends_teacher_predictions_and_labels():
    from pilotnet_optimized.optimize.context import distillation_sequence

    class Batches(list):
        epochs_ended = 0

        def on_epoch_end(self) -> None:
            self.epochs_ended += 1

    x = np.zeros((3, 4, 4, 3), np.float32)
    base = Batches([(x, np.zeros((3, 2), np.float32))])
    seq = distillation_sequence(base, lambda batch, training: np.ones((len(batch), 2)), 0.75)
    assert len(seq) == 1
    xb, yb = seq[0]
    assert xb is x and np.allclose(yb, 0.75)
    seq.on_epoch_end()
    assert base.epochs_ended == 1


# -- failures -------------------------------------------------------------------------------------
def test_a_failing_method_does_not_stop_the_others(data, tiny):
    from pilotnet_optimized.optimize.pipeline import optimize_model
    lines: list[str] = []
    out = data / 'broken'
    rows = optimize_model(tiny, out, ['baseline', 'qat', 'dynamic'], train_data=[data / 'missing'],
                          progress=lines.append, **FAST)
    by_name = {r['method']: r for r in rows}
    assert {name: r['status'] for name, r in by_name.items()} == {
        'baseline': 'ok',
        'dynamic': 'ok',
        'qat': 'failed',
    }
    assert 'dataset not found' in by_name['qat']['error']
    assert not (out / 'qat.tflite').exists() and (out / 'dynamic.tflite').exists()
    assert 'FAILED: qat (dataset not found' in lines[-1]
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['methods']['qat']['status'] == 'failed'


def test_run_optimize_json(data, tiny, capsys):
    from pilotnet_optimized.optimize.pipeline import add_arguments, run
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [str(tiny), '--methods', 'baseline', 'float16', '--out', str(data / 'cli'), '--json']
    )
    assert run(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r['method'] for r in rows] == ['baseline', 'float16'] and rows[1]['status'] == 'ok'
    # Comma-separated names read the same as space-separated ones (store.split_names, as every name
    # list).
    args = parser.parse_args(
        [str(tiny), '--methods', 'float16,baseline', '--out', str(data / 'cli'), '--json']
    )
    assert run(args) == 0
    assert [r['method'] for r in json.loads(capsys.readouterr().out)] == ['baseline', 'float16']
    args = parser.parse_args(
        [str(data / 'nothing.keras'), '--methods', 'baseline', '--out', str(data / 'cli')]
    )
    with pytest.raises(PilotnetError, match='model not found'):
        run(args)


def test_on_policy_frames_are_what_the_student_saw_labelled_by_the_expert():
    from pilotnet_optimized.models.on_policy import collect_on_policy
    from pilotnet_optimized.sim import get_circuit
    seen: list[np.ndarray] = []

    def straight_on(small: np.ndarray) -> tuple[float, float]:
        seen.append(small.copy())
        return 12.0, 0.0  # ignores the road: it leaves it at the first bend, and episodes restart

    frames = collect_on_policy(straight_on, [get_circuit('simple')], 120, Preprocessing(), seed=3)
    assert frames.images.shape == (120, 66, 200, 3) and frames.images.dtype == np.uint8
    # the policy drove on exactly these frames
    np.testing.assert_array_equal(np.stack(seen), frames.images)
    v, w = frames.labels.T
    assert ((6.5 <= v) & (v <= 24)).all() and ((-7.1 <= w) & (w <= 7.1)).all()
    # Driving straight on a closed circuit drifts off the centre line: the expert's labels steer
    # back, so they turn far more than the student did (it never turned).
    assert np.abs(w).max() > 0.5
    again = collect_on_policy(straight_on, [get_circuit('simple')], 120, Preprocessing(), seed=3)
    np.testing.assert_array_equal(again.images, frames.images)     # deterministic for a seed


def test_focused_on_policy_episodes_start_a_run_up_before_a_tight_bend():
    from pilotnet_optimized.models.on_policy import (collect_on_policy, FOCUS_RADIUS_M,
                                                     focus_start)
    from pilotnet_optimized.sim import get_circuit
    circuit = get_circuit('gen:3')  # a training circuit; every generated one has a hairpin
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = focus_start(circuit, rng)
        # within the run-up distance ahead of this start, the line bends under the radius
        ahead = (circuit.arc[:len(circuit.curvature)] - s) % circuit.length
        window = (ahead >= 15.0) & (ahead <= 60.0)
        assert np.abs(circuit.curvature[window]).max() > 1.0 / FOCUS_RADIUS_M

    def fast_straight(small: np.ndarray) -> tuple[float, float]:
        return 20.0, 0.0
    focused = collect_on_policy(fast_straight, [circuit], 300, Preprocessing(), seed=1, focus=1.0)
    plain = collect_on_policy(fast_straight, [circuit], 300, Preprocessing(), seed=1)
    # the expert has to brake for the bend in (nearly) every focused episode: slower labels
    assert focused.labels[:, 0].mean() < plain.labels[:, 0].mean()
    with pytest.raises(ValueError, match='focus'):
        collect_on_policy(fast_straight, [circuit], 1, Preprocessing(), focus=1.5)
