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
``pilotnet bench-latency``.

Its inputs and table without ROS, and one real run of a tiny model through the inference node as a
process (two transports), with a corrupt model beside it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
import subprocess
import sys

from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.nodes import bench_latency as bl
import pytest

ROOT = Path(__file__).resolve().parents[1]


# -- without ROS ----------------------------------------------------------------------------------
def test_help_works_without_importing_rclpy():
    code = ('import sys\nfrom pilotnet_optimized.cli import build_parser\n'
            "argv = ['bench-latency', '--frames', '5']\n"
            "build_parser(argv).parse_args(argv)\nprint('rclpy' in sys.modules)")
    out = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert out.returncode == 0 and out.stdout.strip().endswith('False'), out.stderr
    helped = subprocess.run(
        [sys.executable, '-m', 'pilotnet_optimized', 'bench-latency', '--help'],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert (
        helped.returncode == 0 and '--transports' in helped.stdout and 'example:' in helped.stdout
    )


def test_transports_are_checked_and_normalised():
    assert bl.parse_transports('large_data, DEFAULT,LARGE_DATA') == ['LARGE_DATA', 'DEFAULT']
    assert bl.parse_transports('shm_large') == ['SHM_LARGE']
    with pytest.raises(PilotnetError, match="unknown transport 'UDP'.*SHM_LARGE.*LARGE_DATA"):
        bl.parse_transports('UDP')


def test_default_models_take_one_per_backend(tmp_path):
    for name in (
        'baseline.tflite',
        'dynamic.tflite',
        'qat.tflite',
        'b.onnx',
        'a.onnx',
        'keras.keras',
        'openvino.xml',
    ):
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / 'savedmodel').mkdir()
    (tmp_path / 'savedmodel' / 'saved_model.pb').write_bytes(b'x')
    found = [Path(p).name for p in bl.default_models(tmp_path)]
    assert found == ['baseline.tflite', 'dynamic.tflite', 'openvino.xml', 'a.onnx', 'keras.keras']
    with pytest.raises(PilotnetError, match='no models in'):
        bl.default_models(tmp_path / 'empty')


def test_table_shows_errors_on_their_row():
    ok = bl.LatencyRow(
        'm',
        'LARGE_DATA',
        path='/x/m.tflite',
        backend='litert',
        precision='float32',
        frames=9,
        lost=1,
        raw_p50_ms=1.0,
        raw_p90_ms=1.5,
        raw_p99_ms=2.0,
        node_inference_p50_ms=1.1,
        node_e2e_p50_ms=2.5,
        node_e2e_p90_ms=3.0,
        node_e2e_p99_ms=4.0,
        round_trip_p50_ms=2.7,
        round_trip_p90_ms=3.1,
        round_trip_p99_ms=4.5,
        overhead_ms=1.5,
        target_met=False,
    )
    bad = bl.LatencyRow(
        'bad.tflite', 'DEFAULT', status='failed', error='model not found: bad.tflite'
    )
    table = bl.latency_table({'rows': [ok.__dict__, bad.__dict__]}).splitlines()
    assert len(table) == 4 and table[0].startswith('| model | transport |')
    assert (
        '| m.tflite | LARGE_DATA | litert | float32 | 9 (1 lost) | 1.00 / 1.50 / 2.00 |'
        in table[2]
    )
    assert '| 1.500 | no | - | - | - | ok |' in table[2]
    assert table[3].endswith('| failed: model not found: bad.tflite |')


# -- the real node --------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def models(tiny_driver: dict[str, Path]) -> dict[str, Path]:
    pytest.importorskip('rclpy', reason='rclpy is installed by scripts/setup.sh (ros-pypi extra)')
    return {'tiny': tiny_driver['dynamic'], 'corrupt': tiny_driver['corrupt']}


def _run(capture: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    from pilotnet_optimized.cli import main
    code = main(['bench-latency', '--json', *argv])
    out = capture.readouterr()
    return code, json.loads(out.out), out.err


def test_a_tiny_model_through_the_real_node(models, capfd):
    code, report, err = _run(
        capfd,
        '--models',
        f"{models['tiny']},{models['corrupt']}",
        '--frames',
        '30',
        '--warmup',
        '5',
        '--transports',
        'SHM_LARGE,DEFAULT',
        '--frame-timeout',
        '0.25',
    )
    assert code == 0, err
    assert {
        'machine',
        'command',
        'started',
        'finished',
        'frames',
        'warmup',
        'versions',
        'load_average',
    } <= set(report)
    assert report['frames'] == 30 and report['command'].startswith(
        'pilotnet bench-latency --models '
    )
    rows = {(Path(r['model']).stem, r['transport']): r for r in report['rows']}
    assert set(rows) == {
        ('floor', 'SHM_LARGE'),
        ('floor', 'DEFAULT'),
        ('dynamic', 'SHM_LARGE'),
        ('dynamic', 'DEFAULT'),
        ('corrupt', 'SHM_LARGE'),
        ('corrupt', 'DEFAULT'),
    }
    # The bare transport floor comes first, with the node's camera hop as a ratio to it.
    assert [r['model'] for r in report['rows'][:2]] == ['floor', 'floor']
    floor, node = rows['floor', 'SHM_LARGE'], rows['dynamic', 'SHM_LARGE']
    assert floor['status'] == 'ok' and floor['frames'] >= 25 and floor['raw_p50_ms'] is None
    assert floor['camera_hop_p50_ms'] > 0 and floor['round_trip_p50_ms'] > 0
    assert node['camera_hop_vs_floor'] == pytest.approx(
        node['camera_hop_p50_ms'] / floor['camera_hop_p50_ms'], abs=1e-3
    )
    assert isinstance(node['hop_target_met'], bool)
    # Fast DDS's default transport fragments a camera frame and, best effort, loses most of them
    # (70 to 90 % measured): every frame of a phase lost is an error row that says so.
    default = rows['dynamic', 'DEFAULT']
    assert default['status'] == 'ok' or 'no answer to any of' in default['error'], default
    for transport in ('SHM_LARGE', 'DEFAULT') if default['status'] == 'ok' else ('SHM_LARGE',):
        r = rows['dynamic', transport]
        assert r['status'] == 'ok', r
        assert r['backend'] == 'litert' and r['precision'] == 'dynamic-range int8'
        assert r['frames'] + r['lost'] == 30 and r['frames'] >= (
            25 if transport == 'SHM_LARGE' else 1
        )
        # The node reads its clock just after publishing, so the round trip may come in a hair
        # under (module doc).
        assert r['round_trip_p50_ms'] >= r['node_e2e_p50_ms'] - 0.5
        assert r['node_e2e_p50_ms'] >= r['node_inference_p50_ms'] > 0
        assert r['raw_p50_ms'] > 0 and r['raw_p50_ms'] <= r['raw_p90_ms'] <= r['raw_p99_ms']
        assert r['round_trip_p50_ms'] <= r['round_trip_p90_ms'] <= r['round_trip_p99_ms']
        assert math.isfinite(r['overhead_ms']) and isinstance(r['target_met'], bool)
    for transport in ('SHM_LARGE', 'DEFAULT'):
        r = rows['corrupt', transport]
        assert (
            r['status'] == 'failed' and 'corrupt.tflite' in r['error'] and '\n' not in r['error']
        )
    assert '[bench-latency] dynamic.tflite (SHM_LARGE): ready in' in err
    assert '[bench-latency] transport floor (SHM_LARGE): ready in' in err


def test_floor_ratio_per_transport():
    rows = [
        bl.LatencyRow(bl.FLOOR, 'SHM_LARGE', camera_hop_p50_ms=0.8),
        bl.LatencyRow('a.tflite', 'SHM_LARGE', camera_hop_p50_ms=1.0),
        bl.LatencyRow('a.tflite', 'DEFAULT', camera_hop_p50_ms=3.0),
        bl.LatencyRow('b.tflite', 'SHM_LARGE', camera_hop_p50_ms=2.0),
    ]
    bl.compare_with_floor(rows)
    assert rows[1].camera_hop_vs_floor == 1.25 and rows[1].hop_target_met is True
    assert rows[3].camera_hop_vs_floor == 2.5 and rows[3].hop_target_met is False
    # No floor for that transport: no ratio, rather than one to another transport's floor.
    assert rows[2].camera_hop_vs_floor is None and rows[0].camera_hop_vs_floor is None


def test_no_model_ran_is_a_non_zero_exit(models, capsys):
    code, report, err = _run(
        capsys,
        '--models',
        f"{models['corrupt']},{models['corrupt'].with_name('nope.tflite')}",
        '--frames',
        '5',
        '--warmup',
        '1',
        '--no-floor',
    )
    assert code == 1
    errors = [r['error'] for r in report['rows']]
    assert len(errors) == 2 and 'corrupt.tflite' in errors[0] and 'not found' in errors[1]
