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
Post-training conversions of a tiny PilotNet trained on simulator frames.

The conversions are TFLite in five modes, SavedModel and ONNX. The tiny model and its converted
files are built once per session by :func:`tiny_model` and shared with ``test_backends.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import warnings

import numpy as np
from pilotnet_optimized.errors import ConversionError, PilotnetError
from pilotnet_optimized.models.preprocess import (normalise_labels, preprocess, preprocess_batch,
                                                  Preprocessing)
from pilotnet_optimized.sim import CameraRenderer, get_circuit
import pytest

FRAMES = 48
HEAD_UNITS = 64  # enough dense weights (~0.9 M of ~1 M) for the size ratios to mean something
MODES = ('none', 'dynamic', 'float16', 'int8', 'int8-fallback')

# Agreement with the Keras model in normalised [0, 1] space, on the training frames. The tiny
# model's outputs spread with a standard deviation of 0.05 to 0.09, so the quantised bounds are
# well below that spread.
MAX_ABS = {'none': 1e-4, 'float16': 2e-3}
MEAN_ABS = {'dynamic': 0.015, 'int8': 0.015, 'int8-fallback': 0.015}


@dataclass
class TinyModel:
    """
    A small trained PilotNet, the frames it saw, its Keras outputs.

    Its converted files are made lazily.
    """

    model: object
    frames: list[np.ndarray]
    batch: np.ndarray
    reference: np.ndarray
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)

    def file(self, kind: str) -> Path:
        """
        Return the model converted to ``kind``, made once.

        ``kind`` is a TFLite mode, 'onnx', 'savedmodel', 'keras' or 'h5'.
        """
        if kind not in self.files:
            from pilotnet_optimized.optimize import to_onnx, to_savedmodel, to_tflite
            if kind in MODES:
                path = to_tflite(
                    self.model,
                    self.folder / f'tiny-{kind}.tflite',
                    kind,
                    representative=self.batch,
                )
            elif kind == 'onnx':
                path = to_onnx(self.model, self.folder / 'tiny.onnx')
            elif kind == 'savedmodel':
                path = to_savedmodel(self.model, self.folder / 'tiny_savedmodel')
            else:
                path = self.folder / f'tiny.{kind}'
                # tf_keras calls .h5 legacy; loading it is still supported
                with warnings.catch_warnings():
                    warnings.simplefilter('ignore', UserWarning)
                    self.model.save(path)
            self.files[kind] = path
        return self.files[kind]


_SESSION: dict[str, TinyModel] = {}


def render_frames(n: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """
    ``n`` camera frames of the simple circuit from random off-centre poses.

    With normalised labels from a recovery rule (steer back towards the centre, slower when off it)
    so the outputs depend on the image.
    """
    circuit = get_circuit('simple')
    renderer = CameraRenderer(circuit)
    rng = np.random.default_rng(seed)
    frames, labels = [], []
    for _ in range(n):
        lateral, yaw = rng.uniform(-2.5, 2.5), rng.uniform(-0.25, 0.25)
        x, y, heading = circuit.pose_at(rng.uniform(0, circuit.length), lateral)
        frames.append(renderer.render(x, y, heading + yaw))
        labels.append(
            (20.0 - 3.0 * abs(lateral), float(np.clip(-1.5 * lateral - 8.0 * yaw, -7.0, 7.0)))
        )
    return frames, normalise_labels(np.array(labels))


def train_tiny(batch: np.ndarray, labels: np.ndarray, head_units: int = HEAD_UNITS):
    """Return a PilotNet with a narrow head, trained for a dozen steps."""
    from pilotnet_optimized.models.pilotnet import build_pilotnet
    import tf_keras
    tf_keras.utils.set_random_seed(0)
    model = build_pilotnet(input_shape=batch.shape[1:], head_units=head_units)
    # A dozen steps barely move the input BatchNormalization's moving statistics (momentum 0.99)
    # from 0 and 1, so inference would see raw 0..255 pixels: start them at the data's statistics
    # instead.
    norm = model.get_layer('input_norm')
    gamma, beta, _, _ = norm.get_weights()
    norm.set_weights([gamma, beta, batch.mean(axis=(0, 1, 2)), batch.var(axis=(0, 1, 2))])
    model.compile(tf_keras.optimizers.Adam(1e-3), 'mse')
    model.fit(batch, labels, epochs=4, batch_size=16, verbose=0)
    return model


def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """Return the session's tiny model (built on first use)."""
    if 'tiny' not in _SESSION:
        frames, labels = render_frames(FRAMES)
        batch = preprocess_batch(frames)
        model = train_tiny(batch, labels)
        reference = model(batch, training=False).numpy()
        _SESSION['tiny'] = TinyModel(
            model, frames, batch, reference, tmp_path_factory.mktemp('tiny')
        )
    return _SESSION['tiny']


@pytest.fixture(scope='module')
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return tiny_model(tmp_path_factory)


def _outputs(path: Path, batch: np.ndarray) -> np.ndarray:
    from pilotnet_optimized.backends import load_backend
    with load_backend(path) as backend:
        return backend.predict_normalised(batch)


def test_tiny_model_outputs_are_non_trivial(tiny: TinyModel) -> None:
    # Inside [0, 1] (so physical commands are in range) and varying with the image (so agreement
    # means something).
    assert 0.0 < tiny.reference.min() and tiny.reference.max() < 1.0
    assert tiny.reference.std(axis=0).min() > 0.01


@pytest.mark.parametrize('mode', MODES)
def test_tflite_mode_agrees_with_keras(tiny: TinyModel, mode: str) -> None:
    err = np.abs(_outputs(tiny.file(mode), tiny.batch) - tiny.reference)
    if mode in MAX_ABS:
        assert err.max() < MAX_ABS[mode], f'{mode}: max abs error {err.max():.2e}'
    else:
        assert err.mean() < MEAN_ABS[mode], f'{mode}: mean abs error {err.mean():.2e}'
        # A quantised model must still follow the image, not sit at the mean.
        for k in range(2):
            corr = np.corrcoef(_outputs(tiny.file(mode), tiny.batch)[:, k], tiny.reference[:, k])[
                0, 1
            ]
            assert corr > 0.98, f'{mode}: output {k} correlation {corr:.3f}'


@pytest.mark.parametrize('mode', ['int8', 'int8-fallback'])
def test_bias_correction_removes_the_mean_output_shift(
    tiny: TinyModel, tmp_path: Path, mode: str
) -> None:
    # Integer rounding shifts the mean output; the correction folds that shift (measured on the
    # calibration frames) into the last layer's int32 bias. Checked through the backend on the same
    # frames, against a conversion without it (seen: a shift of 6e-3 in v without, 2.5e-4 with),
    # and the file must not grow.
    from pilotnet_optimized.optimize import to_tflite
    lines: list[str] = []
    plain = to_tflite(
        tiny.model,
        tmp_path / 'plain.tflite',
        mode,
        representative=tiny.batch,
        bias_correction=False,
    )
    fixed = to_tflite(
        tiny.model, tmp_path / 'fixed.tflite', mode, representative=tiny.batch, log=lines.append
    )
    shift_plain = (_outputs(plain, tiny.batch) - tiny.reference).mean(axis=0)
    shift_fixed = (_outputs(fixed, tiny.batch) - tiny.reference).mean(axis=0)
    assert np.abs(shift_plain).max() > 2e-3, f'no shift to correct: {shift_plain}'
    assert np.abs(shift_fixed).max() < 6e-4, (shift_plain, shift_fixed)
    assert fixed.stat().st_size == plain.stat().st_size
    assert any(line.startswith('bias correction: mean output shift') for line in lines), lines


def test_int8_has_uint8_io_and_int8_fallback_has_float_io(tiny: TinyModel) -> None:
    from ai_edge_litert.interpreter import Interpreter
    for mode, dtype in (('int8', np.uint8), ('int8-fallback', np.float32)):
        it = Interpreter(model_path=str(tiny.file(mode)))
        assert it.get_input_details()[0]['dtype'] == dtype
        assert it.get_output_details()[0]['dtype'] == dtype
    scale, _ = Interpreter(model_path=str(tiny.file('int8'))).get_input_details()[0][
        'quantization'
    ]
    # Calibrated on preprocessed 0..255 input: one input step is one pixel level (the seed's bug
    # gave garbage).
    assert scale == pytest.approx(1.0, rel=0.1)


def test_file_sizes_shrink_as_expected(tiny: TinyModel) -> None:
    size = {mode: tiny.file(mode).stat().st_size for mode in MODES}
    assert 3.5 < size['none'] / size['dynamic'] < 4.5
    assert 1.8 < size['none'] / size['float16'] < 2.2
    assert 3.5 < size['none'] / size['int8'] < 4.5


def test_sidecar_is_written_beside_every_output(tiny: TinyModel) -> None:
    for kind in (*MODES, 'onnx', 'savedmodel'):
        assert Preprocessing.for_model(tiny.file(kind)) == Preprocessing()
        assert Path(str(tiny.file(kind)) + '.preprocessing.json').is_file()
    assert not list(tiny.folder.glob('.*')), 'temporary files left behind'


def test_savedmodel_serves_a_named_signature(tiny: TinyModel) -> None:
    import tensorflow as tf
    loaded = tf.saved_model.load(str(tiny.file('savedmodel')))
    out = loaded.signatures['serving_default'](image=tf.constant(tiny.batch[:4]))
    np.testing.assert_allclose(out['vw'].numpy(), tiny.reference[:4], atol=1e-5)


def test_onnx_agrees_and_keeps_a_dynamic_batch(tiny: TinyModel) -> None:
    import onnxruntime as ort
    session = ort.InferenceSession(str(tiny.file('onnx')), providers=['CPUExecutionProvider'])
    (inp,) = session.get_inputs()
    assert (
        inp.name == 'image' and inp.shape[1:] == [66, 200, 3] and not isinstance(inp.shape[0], int)
    )
    for n in (1, 5):
        out = session.run(None, {'image': tiny.batch[:n]})[0]
        np.testing.assert_allclose(out, tiny.reference[:n], atol=1e-4)


def test_unknown_mode_names_the_valid_ones(tiny: TinyModel, tmp_path: Path) -> None:
    from pilotnet_optimized.optimize import to_tflite
    with pytest.raises(PilotnetError) as info:
        to_tflite(tiny.model, tmp_path / 'x.tflite', 'int4')
    assert all(mode in str(info.value) for mode in MODES)
    assert not (tmp_path / 'x.tflite').exists()


@pytest.mark.parametrize('mode', ['int8', 'int8-fallback'])
def test_int8_without_representative_data_is_refused(
    tiny: TinyModel, tmp_path: Path, mode: str
) -> None:
    from pilotnet_optimized.optimize import to_tflite
    with pytest.raises(ConversionError, match='representative'):
        to_tflite(tiny.model, tmp_path / 'x.tflite', mode)


def test_representative_data_must_be_preprocessed(tiny: TinyModel, tmp_path: Path) -> None:
    from pilotnet_optimized.optimize import to_tflite
    raw = np.stack(tiny.frames[:4])  # the seed's bug: camera frames straight into calibration
    with pytest.raises(ConversionError, match='preprocess'):
        to_tflite(tiny.model, tmp_path / 'x.tflite', 'int8', representative=raw)
    with pytest.raises(ConversionError, match='float'):
        to_tflite(
            tiny.model, tmp_path / 'x.tflite', 'int8', representative=tiny.batch.astype(np.uint8)
        )
    unit = Preprocessing(normalisation='unit')  # 0..255 data for a model that expects 0..1
    with pytest.raises(ConversionError, match='spans'):
        to_tflite(
            tiny.model,
            tmp_path / 'x.tflite',
            'int8',
            representative=tiny.batch,
            preprocessing=unit,
        )
    assert not list(tmp_path.iterdir())


def test_model_input_must_match_preprocessing(tiny: TinyModel, tmp_path: Path) -> None:
    from pilotnet_optimized.optimize import to_onnx, to_savedmodel, to_tflite
    other = Preprocessing(width=64, height=64)
    for convert, name in ((to_tflite, 'x.tflite'), (to_onnx, 'x.onnx'), (to_savedmodel, 'x_sm')):
        with pytest.raises(ConversionError, match='64x64x3'):
            convert(tiny.model, tmp_path / name, preprocessing=other)


def test_converters_print_nothing_and_report_through_the_callback(
        tiny: TinyModel, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from pilotnet_optimized.optimize import to_onnx, to_savedmodel, to_tflite
    lines: list[str] = []
    custom = Preprocessing(crop_top=200)
    to_tflite(tiny.model, tmp_path / 'a.tflite', preprocessing=custom, log=lines.append)
    to_onnx(tiny.model, tmp_path / 'a.onnx', preprocessing=custom, log=lines.append)
    to_savedmodel(tiny.model, tmp_path / 'a_sm', preprocessing=custom, log=lines.append)
    assert capfd.readouterr().out == ''
    assert len(lines) == 3 and all('MB' in line for line in lines)
    assert Preprocessing.for_model(tmp_path / 'a.onnx') == custom


def test_outputs_are_replaced_atomically(tiny: TinyModel, tmp_path: Path) -> None:
    from pilotnet_optimized.optimize import to_savedmodel, to_tflite
    target = tmp_path / 'm.tflite'
    target.write_bytes(b'old')
    to_tflite(tiny.model, target)
    assert target.stat().st_size > 1000
    folder = tmp_path / 'm_sm'
    to_savedmodel(tiny.model, folder)
    to_savedmodel(tiny.model, folder)  # a second export replaces the first
    assert (folder / 'saved_model.pb').is_file()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith('.')]
    assert not leftovers


def test_one_frame_runs_through_the_converted_model(tiny: TinyModel) -> None:
    # The frame goes through THE preprocessing function, as every backend does.
    x = preprocess(tiny.frames[0])[None]
    np.testing.assert_allclose(_outputs(tiny.file('none'), x), tiny.reference[:1], atol=1e-4)
