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

"""`pilotnet compare`: several models in the loop on one circuit, the seed's simulation table."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
from pilotnet_optimized.backends import load_backend
from pilotnet_optimized.cli import main
from pilotnet_optimized.errors import PilotnetError, UnknownCircuitError
from pilotnet_optimized.evaluate.closed_loop import (compare_models, exit_code, markdown_table,
                                                     write_reports)
from pilotnet_optimized.sim import get_circuit
from pilotnet_optimized.sim.episodes import drive_pilot
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def models(tiny_driver: dict[str, Path]) -> dict[str, Path]:
    """
    Return a tiny trained model as float32 and dynamic-range TFLite.

    It leaves the road within seconds.
    """
    return {'float': tiny_driver['float'], 'dynamic': tiny_driver['dynamic']}


@pytest.fixture(scope='module')
def comparison(models):
    lines: list[str] = []
    result = compare_models(
        [str(models['float']), 'dynamic'],
        'simple',
        models_dir=models['float'].parent,
        progress=lines.append,
    )
    return result, lines


def test_rows_are_what_drive_pilot_gives(models, comparison):
    result, lines = comparison
    rows = {r.name: r for r in result.rows}
    assert list(rows) == ['float', 'dynamic']
    circuit = get_circuit('simple')
    for name, row in rows.items():
        # Lock-step: the same model on the same circuit drives the same run, frame for frame.
        with load_backend(models[name]) as backend:
            run = drive_pilot(circuit, backend)
        m = run.result.metrics
        assert row.status == 'ok' and row.error is None
        assert row.frames == len(run.inference_ms) > 0
        assert row.percentage_completed == m.percentage_completed
        assert row.end_reason == str(run.result.end_reason) != 'laps_done'
        assert row.sim_seconds == run.result.sim_seconds
        assert row.average_speed == m.average_speed
        assert row.deviation_mean_m == m.position_deviation_mean_m
        np.testing.assert_array_equal(result.trajectories[name], run.result.trajectory.xy)
        assert row.completed is False and row.lap_seconds is None
        assert row.precision == backend.precision and row.backend == 'litert'
        assert row.size_mb == pytest.approx(models[name].stat().st_size / 2 ** 20)
        # Timing: the model call is part of the brain's step, which is part of the loop.
        assert 0 < row.inference_p50_ms <= row.inference_p99_ms
        assert 0 < row.inference_mean_ms < row.brain_mean_ms
        assert row.brain_hz == pytest.approx(1e3 / row.brain_mean_ms)
        assert 0 < row.loop_hz < row.brain_hz
        assert row.real_time_factor == pytest.approx(0.05 * row.loop_hz)
    assert rows['float'].size_ratio_vs_first == pytest.approx(1.0)
    assert rows['float'].speedup_vs_first == pytest.approx(1.0)
    assert rows['dynamic'].size_ratio_vs_first > 2
    assert result.header['reference'] == 'float'
    # One line as each model starts and one as it ends.
    assert len(lines) == 4 and 'driving simple' in lines[0] and '%' in lines[1]


def test_reports_are_written(comparison, tmp_path):
    result, _ = comparison
    paths = write_reports(result, tmp_path / 'out')
    assert set(paths) == {'md', 'json', 'png'} and all(
        p.parent == tmp_path / 'out' for p in paths.values()
    )
    report = json.loads(paths['json'].read_text())
    assert (
        report['benchmark'] == 'compare' and report['circuit'] == 'simple' and report['laps'] == 1
    )
    for key in ('timing', 'machine', 'mode', 'reference', 'rows'):
        assert key in report
    for key in (
        'name',
        'status',
        'end_reason',
        'sim_seconds',
        'lap_seconds',
        'average_speed',
        'percentage_completed',
        'deviation_mean_m',
        'deviation_max_m',
        'inference_mean_ms',
        'inference_p99_ms',
        'brain_hz',
        'loop_hz',
        'real_time_factor',
        'size_ratio_vs_first',
    ):
        assert key in report['rows'][0], key
    md = paths['md'].read_text()
    assert '| float |' in md and '| dynamic |' in md and 'brain Hz' in md and 'lock-step' in md
    assert markdown_table(report).count('\n') == 3  # header, rule, one row per model
    png = paths['png'].read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 20_000
    assert exit_code(report) == 3  # ran, but did not complete the lap


def test_a_missing_model_is_an_error_row_and_the_others_run(models, tmp_path):
    result = compare_models(
        ['nope', str(models['dynamic'])],
        'simple',
        models_dir=models['float'].parent,
        timeout_s=3,
        progress=None,
    )
    missing, ok = result.rows
    assert (
        missing.status == 'failed'
        and "'nope' not found" in missing.error
        and '\n' not in missing.error
    )
    assert ok.status == 'ok' and ok.frames > 0 and ok.sim_seconds <= 3.0 + 1e-9
    # The first model that ran is the reference for the ratios.
    assert result.header['reference'] == 'dynamic' and ok.speedup_vs_first == pytest.approx(1.0)
    paths = write_reports(result, tmp_path)
    assert 'failed: model' in paths['md'].read_text()
    assert exit_code(result.to_dict()) == 3


def test_exit_codes():
    def report(*rows):
        return {'rows': [{'status': s, 'completed': c} for s, c in rows]}
    assert exit_code(report(('ok', True), ('ok', True))) == 0
    assert exit_code(report(('ok', True), ('ok', False))) == 3
    assert exit_code(report(('ok', True), ('failed', False))) == 3
    assert exit_code(report(('failed', False))) == 1


def test_unknown_circuit_fails_before_any_model_loads(capsys):
    with pytest.raises(UnknownCircuitError, match='did you mean'):
        compare_models(['does-not-exist'], 'simpel', progress=None)
    assert main(['compare', '--models', 'x', '--circuit', 'simpel']) == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and err.startswith('pilotnet compare: error: unknown circuit')
    with pytest.raises(PilotnetError, match="unknown backend 'tflite'"):
        compare_models(['x'], 'simple', backend='tflite', progress=None)


def test_no_model_could_run_is_exit_1(tmp_path, capsys):
    out = tmp_path / 'out'
    assert (
        main(
            [
                'compare',
                '--models',
                'a,b',
                '--models-dir',
                str(tmp_path),
                '--out',
                str(out),
                '--json',
            ]
        )
        == 1
    )
    report = json.loads(capsys.readouterr().out)
    assert [r['status'] for r in report['rows']] == ['failed', 'failed']
    assert (out / 'compare.json').is_file()


def test_cli(models, tmp_path):
    out = tmp_path / 'cli'
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'pilotnet_optimized',
            'compare',
            '--models',
            f"{models['dynamic']},missing",
            '--models-dir',
            str(models['dynamic'].parent),
            '--timeout',
            '2',
            '--out',
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    assert (
        '| dynamic |' in proc.stdout and '| missing |' in proc.stdout and 'wrote ' in proc.stdout
    )
    assert '[compare 1/2] dynamic' in proc.stdout and '[compare 2/2] missing' in proc.stdout
    assert {p.name for p in out.iterdir()} == {'compare.md', 'compare.json', 'compare.png'}
