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

"""`pilotnet evaluate`: the seed's table over a folder of real converted models."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys

import numpy as np
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.evaluate import offline
from pilotnet_optimized.evaluate.offline import evaluate_folder, markdown_table, write_reports
from pilotnet_optimized.evaluate.report import (Column, format_cell, machine_description,
                                                text_table, versions, write_csv,
                                                write_report_files)
from pilotnet_optimized.models.train import train, TrainConfig
from pilotnet_optimized.sim import get_circuit
from pilotnet_optimized.sim.dataset import write_dataset
from pilotnet_optimized.store import find_models
import pytest


@pytest.fixture(scope='module')
def model_folder(tmp_path_factory):
    from pilotnet_optimized.models.data import load_datasets
    from pilotnet_optimized.models.preprocess import normalise_input
    from pilotnet_optimized.optimize.tflite import to_tflite
    import tf_keras
    root = tmp_path_factory.mktemp('eval')
    write_dataset(get_circuit('simple'), 40, root / 'train', seed=1, progress=False)
    write_dataset(get_circuit('long_fast'), 24, root / 'test', seed=2, progress=False)
    keras_path = root / 'models' / 'keras.keras'
    train(
        [root / 'train'], keras_path, TrainConfig(epochs=1, batch_size=8, head_units=32), verbose=0
    )
    model = tf_keras.models.load_model(keras_path, compile=False)
    rep = normalise_input(load_datasets([root / 'train'], progress=False).images)
    to_tflite(model, root / 'models' / 'baseline.tflite')
    to_tflite(model, root / 'models' / 'dynamic.tflite', 'dynamic')
    to_tflite(model, root / 'models' / 'int8.tflite', 'int8', representative=rep)
    return root


def test_find_models_without_manifest(model_folder):
    names = [m for m, _ in find_models(model_folder / 'models')]
    assert names == ['baseline', 'dynamic', 'int8', 'keras']


def test_find_models_follows_the_manifest(model_folder, tmp_path):
    folder = tmp_path / 'm'
    shutil.copytree(model_folder / 'models', folder)
    # The layout `pilotnet optimize` writes: run settings beside a table of methods, in the order
    # they ran.
    (folder / 'manifest.json').write_text(
        json.dumps(
            {
                'model': 'x.keras',
                'settings': {'seed': 1},
                'methods': {
                    'keras': {'file': 'keras.keras', 'status': 'ok'},
                    'int8': {'file': 'int8.tflite', 'status': 'ok'},
                    'qat': {'file': 'qat.tflite', 'status': 'error', 'error': 'boom'},
                },
            }
        )
    )
    assert [m for m, _ in find_models(folder)] == ['keras', 'int8']


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(PilotnetError, match='not found'):
        find_models(tmp_path / 'nope')
    with pytest.raises(PilotnetError, match='no models'):
        find_models(tmp_path)


def test_evaluate_table_and_reports(model_folder, tmp_path):
    report = evaluate_folder(
        model_folder / 'models', [model_folder / 'test'], runs=20, warmup=5, progress=None
    )
    rows = {r['method']: r for r in report['rows']}
    assert set(rows) == {'keras', 'baseline', 'dynamic', 'int8'}
    assert all(r['status'] == 'ok' for r in rows.values())
    assert report['frames'] == 24
    # The float32 TFLite model computes what Keras computes.
    assert rows['baseline']['mse'] == pytest.approx(rows['keras']['mse'], rel=1e-3, abs=1e-6)
    # Integer-only with proper (de)quantisation stays near the float model (the seed's was 28157).
    assert rows['int8']['mse'] < 2 * rows['baseline']['mse'] + 0.01
    assert rows['dynamic']['size_mb'] < rows['baseline']['size_mb'] / 3
    assert rows['baseline']['size_ratio_vs_baseline'] == pytest.approx(1.0)
    assert rows['dynamic']['size_ratio_vs_baseline'] > 3
    for r in rows.values():
        assert r['p50_ms'] <= r['p90_ms'] <= r['p99_ms']
        assert np.isfinite(r['mae_v']) and np.isfinite(r['mae_w'])
    paths = write_reports(report, tmp_path)
    with open(paths['csv'], newline='') as f:
        assert len(list(csv.DictReader(f))) == 4
    assert json.loads(paths['json'].read_text())['rows'][0]['method']
    md = paths['md'].read_text()
    assert '| int8 |' in md and 'p50 ms' in md
    assert paths['png'].stat().st_size > 10_000
    assert markdown_table(report).count('\n') == 5


def test_a_corrupt_model_is_a_row_with_its_error(model_folder, tmp_path):
    folder = tmp_path / 'm'
    shutil.copytree(model_folder / 'models', folder)
    (folder / 'broken.tflite').write_bytes(b'not a flatbuffer' * 100)
    report = evaluate_folder(folder, [model_folder / 'test'], runs=5, warmup=1, progress=None)
    broken = next(r for r in report['rows'] if r['method'] == 'broken')
    assert broken['status'] == 'failed' and 'broken.tflite' in broken['error']
    assert sum(r['status'] == 'ok' for r in report['rows']) == 4


def test_evaluate_command_takes_comma_and_space_separated_methods(model_folder, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    offline.add_arguments(parser)
    args = parser.parse_args(
        [
            str(model_folder / 'models'),
            '--data',
            str(model_folder / 'test'),
            '--runs',
            '3',
            '--methods',
            'baseline,dynamic',
            'int8',
            '--out',
            str(tmp_path),
            '--json',
        ]
    )
    assert offline.run(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r['method'] for r in report['rows']] == ['baseline', 'dynamic', 'int8']
    assert {p.name for p in tmp_path.iterdir()} == {
        f'evaluation.{k}' for k in ('json', 'csv', 'md', 'png')
    }


# -- report: the one table writer -----------------------------------------------------------------
def test_cells_and_plain_tables():
    assert [format_cell(v) for v in (None, 1.5, 123456.0, 3, 'x')] == [
        '-',
        '1.500',
        '1.235e+05',
        '3',
        'x',
    ]
    assert format_cell(2.0, '{:.1f}x') == '2.0x' and format_cell(None, '{:.1f}x') == '-'
    # As cli's tables were: header, dashes, aligned columns; sequence rows by position, mapping
    # rows by key.
    assert text_table([('a', 1.0), ('bbb', None)], ('name', 'v')).splitlines() == [
        'name  v', '----  -----', 'a     1.000', 'bbb   -']
    cols = [Column('model', 'm'), Column('MB', 'mb', '{:.2f}')]
    assert text_table([{'m': 'x', 'mb': 1.0}], cols).splitlines()[2] == 'x      1.00'


def test_markdown_csv_json_files(tmp_path):
    cols = [Column('model', 'm', '{}'), Column('status', 'status', '{}')]
    rows = [{'m': 'a', 'status': 'ok'}, {'m': 'b|c', 'status': 'failed', 'error': 'x'}]
    paths = write_report_files({'rows': rows}, tmp_path / 'out', 'r', cols, 'Header.')
    assert list(paths) == ['json', 'csv', 'md'] and paths['md'].name == 'r.md'
    md = paths['md'].read_text().splitlines()
    assert (
        md[:4] == ['Header.', '', '| model | status |', '|---|---|']
        and md[5] == '| b\\|c | failed |'
    )
    assert json.loads(paths['json'].read_text()) == {'rows': rows}
    with open(paths['csv'], newline='') as f:
        # every key of every row is a column
        assert [r['error'] for r in csv.DictReader(f)] == ['', 'x']
    write_csv([], tmp_path / 'empty.csv')
    with pytest.raises(ValueError, match='unknown report format'):
        write_report_files({'rows': rows}, tmp_path, 'r', cols, 'h', formats=('xml',))


def test_versions_and_machine_need_no_tensorflow_or_ros():
    assert 'cores' in machine_description()
    found = versions()
    assert 'numpy' in found and all(isinstance(v, str) for v in found.values())
    code = ('import sys; from pilotnet_optimized.evaluate import report; report.versions(); '
            'from pilotnet_optimized.backends import timing; '
            "print([m for m in ('tensorflow', 'tf_keras', 'rclpy') if m in sys.modules])")
    out = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == '[]'
