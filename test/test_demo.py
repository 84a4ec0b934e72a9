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
The README's first command.

The default models are built once with the project's pipeline, cached, rebuilt when the recipe
changes, and compared in closed loop (a tiny recipe here; the real one is `pilotnet demo`).
"""

from __future__ import annotations

import json
from pathlib import Path

from pilotnet_optimized.demo import DemoRecipe, ensure_default_models, RECIPE_FILE
import pytest

TINY = DemoRecipe(
    circuits=('simple',), frames_per_circuit=40, epochs=1, methods=('baseline', 'dynamic')
)


@pytest.fixture(scope='module')
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path], list[str]]:
    folder = tmp_path_factory.mktemp('default_models')
    lines: list[str] = []
    return folder, ensure_default_models(folder, TINY, say=lines.append), lines


def test_first_run_builds_every_model_with_progress(built):
    folder, models, lines = built
    assert list(models) == ['baseline', 'dynamic']
    assert all(p.is_file() and p.stat().st_size > 10_000 for p in models.values())
    assert models['dynamic'].stat().st_size < models['baseline'].stat().st_size / 2  # int8 weights
    record = json.loads((folder / RECIPE_FILE).read_text())
    assert record['recipe']['frames_per_circuit'] == 40 and record['build_seconds'] > 0
    text = '\n'.join(lines)
    for step in (
        'building the default models',
        'dataset simple (train, 1/1): 40 frames',
        'trained pilotnet_nvidia.keras',
        'optimize: ',
        'default models ready',
    ):
        assert step in text, text


def test_second_run_reuses_the_cache_and_a_new_recipe_rebuilds(built, tmp_path):
    folder, models, _ = built
    stamps = {name: p.stat().st_mtime_ns for name, p in models.items()}
    lines: list[str] = []
    again = ensure_default_models(folder, TINY, say=lines.append)
    assert again == models and {n: p.stat().st_mtime_ns for n, p in again.items()} == stamps
    assert len(lines) == 1 and 'using the default models built earlier' in lines[0]
    # A file gone (or a changed recipe) means the cache is not complete: it is not used.
    from pilotnet_optimized.demo import _cached
    assert _cached(folder, DemoRecipe(circuits=('simple',), frames_per_circuit=41, epochs=1,
                                      methods=('baseline', 'dynamic'))) is None
    models['dynamic'].rename(tmp_path / 'moved.tflite')
    try:
        assert _cached(folder, TINY) is None
    finally:
        (tmp_path / 'moved.tflite').rename(models['dynamic'])
    assert _cached(folder, TINY) == models


def test_the_default_models_drive_in_the_comparison(built, tmp_path):
    from pilotnet_optimized.evaluate.closed_loop import compare_models, write_reports
    _, models, _ = built
    comparison = compare_models([str(p) for p in models.values()], 'simple', progress=None)
    report = comparison.to_dict()
    rows = report['rows']
    assert [r['status'] for r in rows] == ['ok', 'ok'] and all(r['frames'] > 0 for r in rows)
    paths = write_reports(comparison, tmp_path / 'run')
    assert all(Path(p).is_file() for p in paths.values())


def test_the_recipe_takes_its_methods_from_the_table():
    from pilotnet_optimized.demo import DEFAULT_RECIPE, demo_methods
    from pilotnet_optimized.optimize.methods import BASELINE, get_method

    # The same list as before the table chose it (a changed list would rebuild every cached demo
    # folder).
    assert (
        DEFAULT_RECIPE.methods
        == demo_methods()
        == ('baseline', 'dynamic', 'float16', 'int8', 'int8-fallback', 'onnx')
    )
    assert DEFAULT_RECIPE.methods[0] == BASELINE   # the comparison's baseline comes first
    assert all(get_method(name).needs_data != 'fine-tuning' for name in DEFAULT_RECIPE.methods)


def test_the_compact_table_fits_a_terminal():
    from pilotnet_optimized.evaluate.generalisation import (compact_rows, COMPACT_COLUMNS,
                                                            summarise)
    from pilotnet_optimized.evaluate.report import text_table

    def row(model, circuit, done, pct, dev):
        return {'model': model, 'circuit': circuit, 'completed': done,
                'percentage_completed': pct, 'deviation_mean_m': dev, 'deviation_max_m': 2 * dev}
    circuits = ['long_fast', 'gen-20000', 'montmelo', 'montreal', 'nurburgring', 'simple_circuit']
    rows = [row(m, c, not (m == 'int8-fallback' and c == 'montreal'), 100.0, 0.31)
            for m in ('baseline', 'int8-fallback') for c in circuits]
    offline = [{'method': 'baseline', 'backend': 'litert', 'size_mb': 6.09, 'p50_ms': 0.554,
                'mse': 0.011, 'status': 'ok'}]
    compact = compact_rows(summarise(rows), offline)
    assert [r['circuits_completed'] for r in compact] == ['6/6', '5/6']
    assert compact[0]['p50_ms'] == 0.554 and compact[1]['mse'] is None   # no offline row: '-'
    text = text_table(compact, COMPACT_COLUMNS)
    assert len(COMPACT_COLUMNS) <= 8 and max(len(line) for line in text.splitlines()) <= 80
    assert '6/6' in text and '0.554' in text


def test_the_shipped_model_is_the_default_recipes_so_a_first_run_never_retrains():
    from pilotnet_optimized.demo import _trained, DEFAULT_FOLDER, DEFAULT_RECIPE
    root = Path(__file__).resolve().parents[1]
    # the repository's own training.json must match DEFAULT_RECIPE: otherwise the README's first
    # command trains for most of an hour instead of optimising the shipped model
    assert _trained(root / DEFAULT_FOLDER, DEFAULT_RECIPE) == root / DEFAULT_FOLDER / \
        'pilotnet_nvidia.keras'
