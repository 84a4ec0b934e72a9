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

"""The closed-loop steering gain: folded exactly, chosen by its rule, on validation circuits."""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import subprocess
import sys

from helpers import assert_one_line_error
import numpy as np
from pilotnet_optimized.demo import DEFAULT_FOLDER, DEFAULT_RECIPE, DemoRecipe, TRAINING_FILE
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.models.preprocess import denormalise_labels
from pilotnet_optimized.models.steering import (apply_steering_gain, calibrate_steering_gain,
                                                choose_gain, fold_steering_gain, GainRun)
from pilotnet_optimized.sim.car import W_RANGE
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(gain: float, circuit: str, done: bool) -> GainRun:
    return GainRun(gain, circuit, 'laps_done' if done else 'off_track', 100.0 if done else 50.0,
                   0.3)


def test_the_smallest_gain_of_those_that_complete_most_laps():
    runs = [_run(1.0, 'a', True), _run(1.0, 'b', False),
            _run(1.2, 'a', True), _run(1.2, 'b', True),
            _run(1.1, 'a', True), _run(1.1, 'b', True),
            _run(1.3, 'a', False), _run(1.3, 'b', True)]
    assert choose_gain(runs) == 1.1
    assert choose_gain([_run(1.2, 'a', False), _run(1.0, 'a', False)]) == 1.0
    with pytest.raises(PilotnetError):
        choose_gain([])


def test_folding_scales_the_angular_command_and_keeps_the_speed(tiny_driver, tmp_path):
    import tf_keras
    source = tiny_driver['float'].parent / 'tiny.keras'
    model = tf_keras.models.load_model(source, compile=False)
    x = np.random.default_rng(0).uniform(0, 255, (4, *model.input_shape[1:])).astype(np.float32)
    before = denormalise_labels(model.predict(x, verbose=0))
    # In memory, and through the file (the sidecar stays beside it).
    copy = tmp_path / 'tiny.keras'
    shutil.copy(source, copy)
    shutil.copy(source.with_name('tiny.keras.preprocessing.json'),
                tmp_path / 'tiny.keras.preprocessing.json')
    apply_steering_gain(copy, 1.25)
    fold_steering_gain(model, 1.25, W_RANGE)
    for folded in (model, tf_keras.models.load_model(copy, compile=False)):
        after = denormalise_labels(folded.predict(x, verbose=0))
        np.testing.assert_allclose(after[:, 0], before[:, 0], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(after[:, 1], 1.25 * before[:, 1], rtol=1e-4, atol=1e-4)
    with pytest.raises(PilotnetError, match='positive'):
        fold_steering_gain(model, 0.0, W_RANGE)
    with pytest.raises(PilotnetError, match="no 'vw'"):
        fold_steering_gain(tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))]),
                           1.1, W_RANGE)


def test_calibration_drives_each_gain_on_validation_circuits_only(tiny_driver):
    keras_path = tiny_driver['float'].parent / 'tiny.keras'
    lines: list[str] = []
    cal = calibrate_steering_gain(keras_path, ['hairpins'], (1.0, 2.0), progress=lines.append)
    assert [(r.gain, r.circuit) for r in cal.runs] == [(1.0, 'hairpins'), (2.0, 'hairpins')]
    assert cal.gain == choose_gain(cal.runs) and len(lines) == 2
    # the tiny model leaves the road: a run ends with a reason and a share of the lap
    assert all(r.end_reason and 0.0 <= r.completed_pct <= 101.0 for r in cal.runs)
    summary = cal.to_dict()['summary']
    assert [row['gain'] for row in summary] == [1.0, 2.0]
    assert all(row['circuits'] == 1 for row in summary)
    with pytest.raises(PilotnetError, match='test circuit'):
        calibrate_steering_gain(keras_path, ['hairpins', 'long_fast'], (1.0,))
    with pytest.raises(PilotnetError, match='positive'):
        calibrate_steering_gain(keras_path, ['hairpins'], (0.0,))


def test_a_recipe_without_steering_gains_matches_models_trained_before_them():
    plain = DemoRecipe()
    assert 'steering_gains' not in plain.training_dict()
    steered = DemoRecipe(steering_gains=(1.0, 1.1), steering_circuits=('gen:10000',))
    assert steered.training_dict()['steering_gains'] == [1.0, 1.1]


def test_the_shipped_model_records_its_steering_calibration():
    record = json.loads((ROOT / DEFAULT_FOLDER / TRAINING_FILE).read_text())
    assert record['training'] == DEFAULT_RECIPE.training_dict()
    if DEFAULT_RECIPE.steering_gains:
        steering = record['steering']
        assert steering['gain'] in DEFAULT_RECIPE.steering_gains
        assert steering['circuits'] == list(DEFAULT_RECIPE.steering_circuits)
        assert steering['gain'] == choose_gain([GainRun(**r) for r in steering['runs']])


def _steer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'pilotnet_optimized', 'steer', *args],
                          capture_output=True, text=True, timeout=300)


def test_the_steer_command_refuses_what_it_cannot_do(tiny_driver, tmp_path):
    keras_path = str(tiny_driver['float'].parent / 'tiny.keras')
    proc = _steer(str(tiny_driver['dynamic']), '--apply', '--circuits', 'hairpins')
    assert proc.returncode == 2
    assert_one_line_error(proc, '.keras')
    proc = _steer(keras_path, '--circuits', 'hairpins,long_fast')
    assert proc.returncode == 2
    assert_one_line_error(proc, 'long_fast is a test circuit')
    proc = _steer(keras_path, '--gains', '1,0')
    assert proc.returncode == 2 and 'above 0' in proc.stderr
    # A table and the gain chosen, the model file untouched without --apply.
    before = (tiny_driver['float'].parent / 'tiny.keras').read_bytes()
    proc = _steer(keras_path, '--circuits', 'hairpins', '--gains', '1,1.5', '--json')
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out['gain'] in (1.0, 1.5) and out['applied'] is False and len(out['runs']) == 2
    assert (tiny_driver['float'].parent / 'tiny.keras').read_bytes() == before
