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
Runtime backends: every file type each backend claims, agreement across backends.

Integer models' scale and zero point, threads, and one clear error per kind of bad model or image.
"""

from __future__ import annotations

from pathlib import Path
import shutil
import subprocess
import sys

import numpy as np
from pilotnet_optimized.backends import backend_for_path, BACKENDS, load_backend, TensorRTBackend
from pilotnet_optimized.backends.base import dequantise, quantise
from pilotnet_optimized.errors import (BackendUnavailableError, ImageError, ModelError,
                                       ModelOutputError, PilotnetError)
from pilotnet_optimized.models.preprocess import denormalise_labels, Preprocessing
from pilotnet_optimized.sim import V_RANGE, W_RANGE
import pytest
from test_conversions import MODES, tiny_model, TinyModel

KINDS = (*MODES, 'onnx', 'savedmodel', 'keras', 'h5')
EXPECTED = {  # kind -> (backend picked from the file, precision it reports)
    'none': ('litert', 'float32'),
    'dynamic': ('litert', 'dynamic-range int8'),
    'float16': ('litert', 'float16'),
    'int8': ('litert', 'int8 (uint8 I/O)'),
    'int8-fallback': ('litert', 'int8 (float I/O)'),
    'onnx': ('onnxruntime', 'float32'),
    'savedmodel': ('tensorflow', 'float32'),
    'keras': ('tensorflow', 'float32'),
    'h5': ('tensorflow', 'float32'),
}
# Agreement with the Keras model, in normalised [0, 1] units (scaled by each command's range for v
# and w).
TOLERANCE = {'float16': 2e-3, 'dynamic': 0.03, 'int8': 0.03, 'int8-fallback': 0.03}
FLOAT_TOLERANCE = 1e-4
# The integer-only model's MSE against Keras on the batch, normalised units. The seed, which
# skipped scale and zero point, scored 28157; a correct uint8 model is within quantisation noise.
INT8_MSE_BOUND = 1e-3
SPAN = np.array([V_RANGE[1] - V_RANGE[0], W_RANGE[1] - W_RANGE[0]])


@pytest.fixture(scope='module')
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return tiny_model(tmp_path_factory)


@pytest.fixture(scope='module')
def bad_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """
    Models a backend must refuse or catch.

    One taking 64x64x3 input (sidecars removed, so the default 66x200x3 preprocessing applies), and
    one whose output bias is NaN.
    """
    from pilotnet_optimized.models.pilotnet import build_pilotnet
    from pilotnet_optimized.optimize import to_onnx, to_tflite
    folder = tmp_path_factory.mktemp('bad')
    small = build_pilotnet(input_shape=(64, 64, 3), head_units=8)
    square = Preprocessing(width=64, height=64)
    paths = {'shape.tflite': to_tflite(small, folder / 'shape.tflite', preprocessing=square),
             'shape.onnx': to_onnx(small, folder / 'shape.onnx', preprocessing=square)}
    small.save(folder / 'shape.keras')
    paths['shape.keras'] = folder / 'shape.keras'
    for sidecar in folder.glob('*.preprocessing.json'):
        sidecar.unlink()
    nan = build_pilotnet(head_units=8)
    kernel, bias = nan.get_layer('vw').get_weights()
    nan.get_layer('vw').set_weights([kernel, np.full_like(bias, np.nan)])
    paths['nan.tflite'] = to_tflite(nan, folder / 'nan.tflite')
    paths['nan.onnx'] = to_onnx(nan, folder / 'nan.onnx')
    nan.save(folder / 'nan.keras')
    paths['nan.keras'] = folder / 'nan.keras'
    return paths


@pytest.mark.parametrize('kind', KINDS)
def test_each_file_type_loads_and_agrees_with_keras(tiny: TinyModel, kind: str) -> None:
    path = tiny.file(kind)
    name, precision = EXPECTED[kind]
    assert backend_for_path(path) == name
    with load_backend(path, num_threads=2) as backend:
        assert backend.name == name and backend.precision == precision
        assert backend.input_shape == (66, 200, 3)
        v, w = backend.predict(tiny.frames[0])
        out = backend.predict_normalised(tiny.batch)
    assert V_RANGE[0] <= v <= V_RANGE[1] and W_RANGE[0] <= w <= W_RANGE[1]
    tol = TOLERANCE.get(kind, FLOAT_TOLERANCE)
    expected_vw = denormalise_labels(tiny.reference[0])
    assert abs(v - expected_vw[0]) < tol * SPAN[0] and abs(w - expected_vw[1]) < tol * SPAN[1], (
        kind,
        v,
        w,
    )
    assert out.shape == (len(tiny.batch), 2) and out.dtype == np.float32
    assert np.abs(out - tiny.reference).mean() < tol


def test_int8_model_handles_scale_and_zero_point(tiny: TinyModel) -> None:
    from ai_edge_litert.interpreter import Interpreter
    backend = load_backend(tiny.file('int8'))
    mse = float(np.mean((backend.predict_normalised(tiny.batch) - tiny.reference) ** 2))
    assert mse < INT8_MSE_BOUND, f'int8 MSE {mse:.2e}'
    # What Behavior Metrics did: uint8 pixels in, raw uint8 codes read as if they were [0, 1]
    # outputs.
    it = Interpreter(model_path=str(tiny.file('int8')))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]['index'], tiny.batch[:1].astype(np.uint8))
    it.invoke()
    raw = it.get_tensor(it.get_output_details()[0]['index']).astype(np.float32)
    assert np.mean((raw - tiny.reference[:1]) ** 2) > 1000


def test_quantise_and_dequantise() -> None:
    np.testing.assert_array_equal(
        quantise(np.array([-3.0, 0.0, 1.4, 1.6, 300.0]), 1.0, 0, np.uint8), [0, 0, 1, 2, 255]
    )
    np.testing.assert_array_equal(quantise(np.array([0.0, 1.0]), 0.5, -128, np.int8), [-128, -126])
    np.testing.assert_allclose(dequantise(np.array([134, 140], np.uint8), 0.25, 134), [0.0, 1.5])


@pytest.mark.parametrize('kind', ['int8', 'none', 'onnx', 'keras'])
def test_batch_sizes_can_change_between_calls(tiny: TinyModel, kind: str) -> None:
    backend = load_backend(tiny.file(kind))
    for n in (1, 7, 1, len(tiny.batch)):
        out = backend.predict_normalised(tiny.batch[:n])
        np.testing.assert_allclose(out, backend.predict_normalised(tiny.batch)[:n], atol=1e-6)


def test_num_threads_is_honoured(tiny: TinyModel) -> None:
    lite = load_backend(tiny.file('int8'), num_threads=2)
    assert lite.num_threads == 2 and lite.describe()['threads'] == 2
    onnx = load_backend(tiny.file('onnx'), num_threads=2)
    assert onnx.threads == 2  # read back from the ONNX Runtime session
    assert load_backend(tiny.file('onnx'), num_threads=1).threads == 1
    with pytest.raises(PilotnetError, match='num_threads'):
        load_backend(tiny.file('none'), num_threads=0)


def test_describe(tiny: TinyModel) -> None:
    backend = load_backend(tiny.file('savedmodel'))
    info = backend.describe()
    files = [p for p in tiny.file('savedmodel').rglob('*') if p.is_file()]
    assert info['size_bytes'] == sum(p.stat().st_size for p in files) == backend.file_size_bytes
    assert info['size_mb'] == pytest.approx(info['size_bytes'] / 2 ** 20)
    assert info['backend'] == 'tensorflow' and {'precision', 'path', 'threads'} <= info.keys()
    assert (
        load_backend(tiny.file('dynamic')).describe()['size_bytes']
        == tiny.file('dynamic').stat().st_size
    )


def test_sidecar_preprocessing_is_used_unless_overridden(tiny: TinyModel, tmp_path: Path) -> None:
    path = tmp_path / 'whole_frame.tflite'
    shutil.copy(tiny.file('none'), path)
    whole = Preprocessing(crop_top=None)
    whole.save(path)
    assert load_backend(path).preprocessing == whole
    assert load_backend(path, preprocessing=Preprocessing()).preprocessing == Preprocessing()
    # the whole frame, squeezed: a different input, still runs
    v, w = load_backend(path).predict(tiny.frames[0])
    assert np.isfinite([v, w]).all()


@pytest.mark.parametrize(
    'name', ['gone.tflite', 'gone.onnx', 'gone.keras', 'gone.h5', 'gone_savedmodel']
)
def test_missing_model_is_a_model_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(ModelError, match=name):
        load_backend(tmp_path / name)


@pytest.mark.parametrize('backend', ['litert', 'onnxruntime', 'tensorflow'])
def test_missing_model_with_a_named_backend(tmp_path: Path, backend: str) -> None:
    with pytest.raises(ModelError, match='not found'):
        load_backend(tmp_path / 'gone.tflite', backend)


@pytest.mark.parametrize('name', ['x.tflite', 'x.onnx', 'x.keras', 'x.h5'])
def test_random_bytes_are_a_model_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(ModelError, match=name) as info:
        load_backend(path)
    assert '\n' not in str(info.value)


@pytest.mark.parametrize('kind', ['none', 'onnx'])
def test_truncated_model_is_a_model_error(tiny: TinyModel, tmp_path: Path, kind: str) -> None:
    data = tiny.file(kind).read_bytes()
    path = tmp_path / f'cut{tiny.file(kind).suffix}'
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelError, match=path.name):
        load_backend(path)


def test_other_unusable_paths(tiny: TinyModel, tmp_path: Path) -> None:
    (tmp_path / 'empty_dir').mkdir()
    with pytest.raises(ModelError, match='SavedModel'):
        load_backend(tmp_path / 'empty_dir')
    (tmp_path / 'model.pt').write_bytes(b'x')
    with pytest.raises(ModelError, match=r'\.tflite'):
        load_backend(tmp_path / 'model.pt')
    with pytest.raises(ModelError, match='tiny.onnx'):  # an ONNX file in the TFLite runtime
        load_backend(tiny.file('onnx'), 'litert')


@pytest.mark.parametrize('name', ['shape.tflite', 'shape.onnx', 'shape.keras'])
def test_wrong_input_shape_is_a_model_error(bad_models: dict[str, Path], name: str) -> None:
    with pytest.raises(ModelError, match=name) as info:
        load_backend(bad_models[name])
    assert '64x64x3' in str(info.value) and '66x200x3' in str(info.value)


@pytest.mark.parametrize('name', ['nan.tflite', 'nan.onnx', 'nan.keras'])
def test_nan_output_is_a_model_output_error(
    tiny: TinyModel, bad_models: dict[str, Path], name: str
) -> None:
    backend = load_backend(bad_models[name])
    with pytest.raises(ModelOutputError, match=name):
        backend.predict(tiny.frames[0])


def test_wrong_images_are_image_errors(tiny: TinyModel) -> None:
    backend = load_backend(tiny.file('int8'))
    frame = tiny.frames[0]
    for image in (
        frame.astype(np.float32),
        frame[..., 0],
        np.dstack([frame, frame[..., :1]]),
        frame[:1],
    ):
        with pytest.raises(ImageError):
            backend.predict(image)
    for batch in (
        tiny.batch[0],
        np.zeros((1, 64, 64, 3), np.float32),
        np.zeros((0, 66, 200, 3), np.float32),
    ):
        with pytest.raises(ImageError):
            backend.predict_normalised(batch)


def test_tensorrt_says_why_it_cannot_run(tiny: TinyModel, tmp_path: Path) -> None:
    if TensorRTBackend.unavailable_reason() is None:
        pytest.skip('TensorRT and a CUDA GPU are present: nothing unavailable to report')
    engine = tmp_path / 'model.engine'
    engine.write_bytes(b'not an engine')
    for path, backend in ((engine, 'auto'), (engine, 'tensorrt'), (tiny.file('onnx'), 'tensorrt')):
        with pytest.raises(BackendUnavailableError) as info:
            load_backend(path, backend)
        message = str(info.value)
        assert 'tensorrt' in message.lower() and ('not installed' in message or 'GPU' in message)


def test_unknown_backend_lists_the_valid_ones(tiny: TinyModel) -> None:
    with pytest.raises(PilotnetError) as info:
        load_backend(tiny.file('none'), 'litrt')
    message = str(info.value)
    assert (
        all(name in message for name in ('auto', *BACKENDS)) and "did you mean 'litert'" in message
    )


def test_robot_side_stays_free_of_tensorflow(tiny: TinyModel) -> None:
    # A fresh interpreter: this one has TensorFlow loaded already.
    code = (
        'import sys\nfrom pilotnet_optimized.backends import load_backend\nb ='
        f' load_backend({str(tiny.file("int8"))!r}, num_threads=1)\nassert "tensorflow" not in'
        ' sys.modules and "tf_keras" not in sys.modules, "TensorFlow was imported"\nk ='
        f' load_backend({str(tiny.file("keras"))!r}, num_threads=1)\nimport tensorflow as'
        ' tf\nassert k.threads_applied and tf.config.threading.get_intra_op_parallelism_threads()'
        ' == 1\n'
    )
    result = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


# -- timing: the one warm-up / timed loop / percentiles / stage split -----------------------------
def test_timed_predict_is_predict_split_in_stages(tiny: TinyModel) -> None:
    from pilotnet_optimized.backends.timing import timed_predict
    with load_backend(tiny.file('none')) as backend:
        out, preprocess_ms, inference_ms = timed_predict(backend, tiny.frames[0])
        assert (float(out[0]), float(out[1])) == backend.predict(tiny.frames[0])  # bit for bit
        assert preprocess_ms > 0 and inference_ms > 0
        with pytest.raises(ImageError):
            timed_predict(backend, tiny.frames[0][..., 0])


def test_time_calls_warms_up_untimed_then_times_each_call() -> None:
    from pilotnet_optimized.backends.timing import time_calls, time_each
    calls: list[int] = []
    ms = time_calls(lambda: calls.append(1), runs=5, warmup=3)
    assert len(calls) == 8 and ms.shape == (5,) and (ms >= 0).all()
    seen: list[str] = []
    ms = time_each(seen.append, ['a', 'b'], warmup=['w'])
    assert seen == ['w', 'a', 'b'] and ms.shape == (2,)
    assert time_calls(lambda: None, runs=0).shape == (0,)


def test_percentiles_keys_and_empty_input() -> None:
    from pilotnet_optimized.backends.timing import percentiles
    assert percentiles([1.0, 2.0, 3.0, float('nan')]) == {
        'p50_ms': 2.0,
        'p90_ms': pytest.approx(2.8),
        'p99_ms': pytest.approx(2.98),
    }
    stage = percentiles(np.array([1.0, 2.0]), (50, 99), prefix='inference_', mean=True, digits=1)
    assert list(stage) == ['inference_mean_ms', 'inference_p50_ms', 'inference_p99_ms']
    assert stage['inference_mean_ms'] == 1.5 and stage['inference_p99_ms'] == 2.0
    assert percentiles([], mean=True) == {
        'mean_ms': None,
        'p50_ms': None,
        'p90_ms': None,
        'p99_ms': None,
    }
    assert list(percentiles([1.0], (50,), unit='us')) == ['p50_us']
