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

"""PilotNet definitions, the shared preprocessing, dataset loading and a tiny real training run."""

from __future__ import annotations

import json

import numpy as np
from pilotnet_optimized.errors import ImageError, PilotnetError
from pilotnet_optimized.models.data import find_dataset_dirs, load_frames
from pilotnet_optimized.models.preprocess import (denormalise_labels, normalise_input,
                                                  normalise_labels, preprocess, Preprocessing,
                                                  resize_frame)
from pilotnet_optimized.models.train import augment_batch, oversample_indices, train, TrainConfig
from pilotnet_optimized.sim import CameraRenderer, get_circuit
from pilotnet_optimized.sim.dataset import write_dataset
import pytest


@pytest.fixture(scope='module')
def frame():
    c = get_circuit('simple')
    return CameraRenderer(c).render(*c.pose_at(40.0))


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    write_dataset(get_circuit('simple'), 48, root / 'train' / 'simple', seed=1, progress=False)
    write_dataset(get_circuit('hairpins'), 16, root / 'val' / 'hairpins', seed=2, progress=False)
    write_dataset(get_circuit('long_fast'), 8, root / 'test' / 'long_fast', seed=3, progress=False)
    return root


def test_seed_pilotnet_has_the_published_parameter_count():
    from pilotnet_optimized.models.pilotnet import build_model
    model = build_model('pilotnet')
    assert model.count_params() == 17_016_206
    assert model.get_layer('flatten').output.shape[-1] == 14400
    assert model.output.shape[-1] == 2
    nvidia = build_model('pilotnet-nvidia')
    assert 1_500_000 < nvidia.count_params() < 1_700_000


def test_unknown_architecture():
    from pilotnet_optimized.models.pilotnet import build_model
    with pytest.raises(PilotnetError, match='pilotnet-nvidia'):
        build_model('resnet')


def test_preprocess_crops_the_road_and_resizes(frame):
    x = preprocess(frame)
    assert x.shape == (66, 200, 3) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 255.0
    # The crop keeps the road: no sky-blue rows survive.
    sky = frame[:200].reshape(-1, 3).mean(axis=0)
    assert np.abs(x.reshape(-1, 3).mean(axis=0) - sky).sum() > 60
    full = preprocess(frame, Preprocessing(crop_top=None))
    # sky on top without the crop
    assert full[:10].mean(axis=(0, 1))[2] > full[:10].mean(axis=(0, 1))[0] + 30


def test_preprocess_is_resize_then_normalise(frame):
    for norm in ('none', 'unit', 'imagenet'):
        cfg = Preprocessing(normalisation=norm)
        assert np.array_equal(
            preprocess(frame, cfg), normalise_input(resize_frame(frame, cfg), cfg)
        )
    assert preprocess(frame, Preprocessing(normalisation='unit')).max() <= 1.0


@pytest.mark.parametrize('bad, needle', [
    (np.zeros((480, 640), np.uint8), 'H x W x 3'),
    (np.zeros((480, 640, 4), np.uint8), 'H x W x 3'),
    (np.zeros((480, 640, 3), np.float32), 'uint8'),
    ('not an image', 'H x W x 3'),
])
def test_preprocess_rejects_wrong_images(bad, needle):
    with pytest.raises(ImageError, match=needle):
        preprocess(bad)


def test_labels_round_trip_and_ranges():
    vw = np.array([[6.5, -7.1], [24.0, 7.1], [15.25, 0.0]])
    n = normalise_labels(vw)
    assert np.allclose(n, [[0, 0], [1, 1], [0.5, 0.5]])
    assert np.allclose(denormalise_labels(n), vw, atol=1e-5)


def test_flip_negates_w_and_mirrors_the_image(frame):
    small = resize_frame(frame)[None].repeat(64, axis=0)
    labels = np.tile([[10.0, 1.5]], (64, 1))
    images, out = augment_batch(
        small, labels, np.random.default_rng(0), flip=True, photometric=False
    )
    flipped = out[:, 1] < 0
    assert 10 < flipped.sum() < 54
    assert np.array_equal(images[flipped][0], small[0][:, ::-1])
    assert np.array_equal(images[~flipped][0], small[0])
    assert np.all(out[:, 0] == 10.0)


def test_photometric_changes_pixels_not_labels(frame):
    small = resize_frame(frame)[None].repeat(16, axis=0)
    labels = np.tile([[10.0, 1.5]], (16, 1))
    images, out = augment_batch(
        small, labels, np.random.default_rng(1), flip=False, photometric=True
    )
    assert np.array_equal(out, labels)
    assert sum(not np.array_equal(a, small[0]) for a in images) >= 8


def test_sharp_turns_are_oversampled():
    labels = np.array([[10, 0.0], [10, 0.5], [10, -1.5], [10, 2.5]])
    idx = oversample_indices(labels, (0.3, 1.0, 2.0))
    assert np.bincount(idx).tolist() == [1, 2, 3, 4]


def test_find_and_load_dataset_with_cache(tiny_data):
    dirs = find_dataset_dirs([tiny_data / 'train'])
    assert [d.name for d in dirs] == ['simple']
    a = load_frames(dirs[0], progress=False)
    assert a.images.shape == (48, 66, 200, 3) and a.labels.shape == (48, 2)
    assert any((dirs[0] / '.pilotnet_cache').glob('*.npz'))
    b = load_frames(dirs[0], progress=False)
    assert np.array_equal(a.images, b.images)
    with pytest.raises(PilotnetError, match='no dataset'):
        find_dataset_dirs([tiny_data / 'train' / 'simple' / '.pilotnet_cache'])


def test_missing_frame_is_a_clear_error(tiny_data, tmp_path):
    import shutil
    copy = tmp_path / 'copy'
    shutil.copytree(
        tiny_data / 'train' / 'simple', copy, ignore=shutil.ignore_patterns('.pilotnet_cache')
    )
    (copy / '7.png').unlink()
    with pytest.raises(PilotnetError, match='7.png'):
        load_frames(copy, progress=False)


def test_tiny_training_run_saves_a_model_that_loads(tiny_data, tmp_path):
    out = tmp_path / 'tiny.keras'
    cfg = TrainConfig(epochs=2, batch_size=16, head_units=8, patience=1)
    result = train([tiny_data / 'train'], out, cfg, val=[tiny_data / 'val'], verbose=0)
    assert out.is_file() and result.epochs_run >= 1
    # the per-epoch checkpoint is folded into OUT
    assert not (tmp_path / 'tiny.best.keras').exists()
    assert result.train_frames == 48 and result.val_frames == 16
    assert np.isfinite(result.best_val_loss)
    report = json.loads((tmp_path / 'tiny.keras.train.json').read_text())
    assert report['config']['head_units'] == 8 and report['val_data']
    assert Preprocessing.for_model(out) == cfg.preprocessing
    import tf_keras
    model = tf_keras.models.load_model(out, compile=False)
    assert model.get_layer('dense1').units == 8


def test_training_refuses_test_split(tiny_data, tmp_path):
    with pytest.raises(PilotnetError, match='test-split'):
        train([tiny_data], tmp_path / 'm.keras', TrainConfig(epochs=1), verbose=0)


def test_training_wants_a_keras_file(tiny_data, tmp_path):
    with pytest.raises(PilotnetError, match='.keras'):
        train([tiny_data / 'train'], tmp_path / 'm.h5', TrainConfig(epochs=1), verbose=0)
