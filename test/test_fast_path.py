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
The node's fast path: camera buffer -> preprocessing -> the model's own input, no copies between.

It must give the same tensor and the same outputs as the plain path (preprocess a copied RGB frame,
then predict_normalised), bit for bit, for rgb8 and bgr8, padded rows, every normalisation and
every backend; and the heap setting it relies on must apply.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from pilotnet_optimized.backends import load_backend
from pilotnet_optimized.backends.timing import timed_predict
from pilotnet_optimized.bags.images import image_pixels, image_to_rgb
from pilotnet_optimized.errors import ImageError
from pilotnet_optimized.models.preprocess import preprocess, Preprocessing
from pilotnet_optimized.nodes.memory import keep_heap
import pytest
from test_conversions import tiny_model, TinyModel


def _message(rgb: np.ndarray, encoding: str, pad: int = 0) -> SimpleNamespace:
    """Return an Image-like message of ``rgb`` in ``encoding``, ``pad`` bytes after each row."""
    pixels = rgb[:, :, ::-1] if encoding == 'bgr8' else rgb
    h, w = rgb.shape[:2]
    rows = np.zeros((h, w * 3 + pad), np.uint8)
    rows[:, :w * 3] = pixels.reshape(h, w * 3)
    return SimpleNamespace(
        encoding=encoding, height=h, width=w, step=w * 3 + pad, data=rows.reshape(-1)
    )


@pytest.fixture(scope='module')
def frame() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
@pytest.mark.parametrize('pad', [0, 8])
@pytest.mark.parametrize('normalisation', ['none', 'unit', 'imagenet'])
def test_in_place_preprocessing_is_the_same_tensor(frame, encoding, pad, normalisation):
    cfg = Preprocessing(normalisation=normalisation)
    msg = _message(frame, encoding, pad)
    pixels, bgr = image_pixels(msg)
    assert bgr == (encoding == 'bgr8')
    # A view of the message's buffer, not a copy.
    assert np.shares_memory(pixels, msg.data)
    out = np.full((66, 200, 3), np.nan, np.float32)
    result = preprocess(pixels, cfg, out, bgr=bgr)
    assert result is out
    expected = preprocess(image_to_rgb(msg), cfg)
    assert expected.dtype == out.dtype and np.array_equal(out, expected)
    np.testing.assert_array_equal(preprocess(frame, cfg), expected)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return tiny_model(tmp_path_factory)


@pytest.mark.parametrize('kind', ['none', 'dynamic', 'int8', 'onnx', 'keras'])
def test_predict_into_gives_the_plain_outputs_bit_for_bit(tiny, frame, kind):
    with load_backend(tiny.file(kind)) as backend:
        cfg = backend.preprocessing
        plain = backend.predict_normalised(preprocess(frame, cfg)[None])[0]
        msg = _message(frame, 'bgr8', pad=4)
        pixels, bgr = image_pixels(msg)
        for _ in range(3):   # the in-place input is reused frame after frame
            fast = backend.predict_into(lambda x: preprocess(pixels, cfg, x, bgr=bgr))
            np.testing.assert_array_equal(fast, plain)
        out, preprocess_ms, inference_ms = timed_predict(backend, pixels, bgr=bgr)
        assert preprocess_ms > 0 and inference_ms > 0
        assert backend.predict(frame) == tuple(float(v) for v in out)
        # A batch after the single frames, and single frames after a batch, still agree.
        np.testing.assert_array_equal(
            backend.predict_normalised(tiny.batch[:3]), backend.predict_normalised(tiny.batch[:3])
        )
        np.testing.assert_array_equal(
            backend.predict_into(lambda x: preprocess(frame, cfg, x)), plain
        )


def test_a_frame_that_fails_preprocessing_leaves_the_backend_usable(tiny, frame):
    with load_backend(tiny.file('none')) as backend:
        cfg = backend.preprocessing
        with pytest.raises(ImageError):
            backend.predict_into(lambda x: preprocess(frame[:2], cfg, x))
        plain = backend.predict_normalised(preprocess(frame, cfg)[None])[0]
        np.testing.assert_array_equal(
            backend.predict_into(lambda x: preprocess(frame, cfg, x)), plain
        )


def test_keep_heap_applies_and_can_be_turned_off(monkeypatch):
    assert keep_heap() is True   # glibc (every machine this project runs on)
    monkeypatch.setenv('PILOTNET_KEEP_HEAP', '0')
    assert keep_heap() is False


def test_openvino_runs_the_onnx_file_like_onnx_runtime(tiny, frame):
    pytest.importorskip('openvino')
    with load_backend(tiny.file('onnx'), 'onnxruntime') as ort, \
            load_backend(tiny.file('onnx'), 'openvino', num_threads=1) as ov:
        assert ov.describe()['backend'] == 'openvino' and ov.precision == 'float32'
        np.testing.assert_allclose(
            ov.predict_normalised(tiny.batch), ort.predict_normalised(tiny.batch), atol=1e-4
        )
        cfg = ov.preprocessing
        np.testing.assert_array_equal(
            ov.predict_into(lambda x: preprocess(frame, cfg, x)),
            ov.predict_normalised(preprocess(frame, cfg)[None])[0],
        )
