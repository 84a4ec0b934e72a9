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
The generalisation table: every model on several circuits, in one run.

``pilotnet compare --circuits a,b,c`` (or ``--split test``) drives each model round each circuit
in lock-step, as ``pilotnet compare --circuit`` does for one, and writes:

- ``generalisation.md``, ``.json`` and ``.csv``: one row per model and circuit (completed %, lap
  s, deviation mean and max, how the run ended) and, per model, a summary (``4 of 5 circuits``);
- ``generalisation.png``: a grid of the circuits with every model's path;
- ``<circuit>/compare.{md,json,png}``: each circuit's full comparison table.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
import math
from pathlib import Path
import re
import sys
import time
from typing import Any

from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.evaluate import closed_loop
from pilotnet_optimized.evaluate.closed_loop import (
    add_arguments as add_compare_arguments,
    compare_models,
    Comparison,
    plot_runs,
    write_reports,
)
from pilotnet_optimized.evaluate.report import (
    Column,
    machine_description,
    markdown_table,
    print_rows,
    write_report_files,
)
from pilotnet_optimized.sim.splits import split_circuits, split_of_circuit
from pilotnet_optimized.store import DEFAULT_MODELS_DIR, split_names

__all__ = [
    'CIRCUIT_COLUMNS',
    'SUMMARY_COLUMNS',
    'COMPACT_COLUMNS',
    'compare_on_circuits',
    'summarise',
    'compact_rows',
    'write_generalisation',
    'exit_code',
    'add_compare_arguments',
    'run_compare',
]

#: One row per model and circuit.
CIRCUIT_COLUMNS = [
    Column('model', 'model', '{}'),
    Column('circuit', 'circuit', '{}'),
    Column('split', 'split', '{}'),
    Column('length m', 'circuit_length_m', '{:.0f}'),
    Column('end', 'end_reason', '{}'),
    Column('completed %', 'percentage_completed', '{:.1f}'),
    Column('lap s', 'lap_seconds', '{:.1f}'),
    Column('avg speed m/s', 'average_speed', '{:.2f}'),
    Column('dev mean m', 'deviation_mean_m', '{:.2f}'),
    Column('dev max m', 'deviation_max_m', '{:.2f}'),
    Column('status', 'status', '{}'),
]
#: One row per model.
SUMMARY_COLUMNS = [
    Column('model', 'model', '{}'),
    Column('circuits completed', 'completed', '{}'),
    Column('mean completed %', 'mean_percentage_completed', '{:.1f}'),
    Column('dev mean m', 'deviation_mean_m', '{:.2f}'),
    Column('worst dev max m', 'deviation_max_m', '{:.2f}'),
    Column('not completed', 'not_completed', '{}'),
]
#: One short row per model for a terminal (``pilotnet demo``): offline size, batch-1 latency and
#: error beside the closed-loop result; the full tables go to the files.
COMPACT_COLUMNS = [
    Column('model', 'model', '{}'),
    Column('backend', 'backend', '{}'),
    Column('size MB', 'size_mb', '{:.2f}'),
    Column('p50 ms', 'p50_ms', '{:.3f}'),
    Column('MSE', 'mse', '{:.4f}'),
    Column('circuits', 'circuits_completed', '{}'),
    Column('dev mean m', 'deviation_mean_m', '{:.2f}'),
]


def _slug(name: str) -> str:
    """Return a circuit name as a folder name (``gen:17`` -> ``gen-17``)."""
    return re.sub(r'[^A-Za-z0-9._-]+', '-', Path(name).stem if '/' in name else name).strip('-')


def compare_on_circuits(
    models: Sequence[str],
    circuits: Sequence[str],
    laps: int = 1,
    threads: int = 1,
    backend: str = 'auto',
    models_dir: str | Path = DEFAULT_MODELS_DIR,
    progress: Callable[[str], None] | None = print,
) -> list[Comparison]:
    """
    Return one :func:`compare_models` comparison per circuit, in order.

    Each circuit is read (and refused, if it is unknown) before any model drives.

    :raises PilotnetError: for no circuits, or what :func:`compare_models` raises.
    """
    from pilotnet_optimized.sim import get_circuit
    names = [str(c).strip() for c in circuits if str(c).strip()]
    if not names:
        raise PilotnetError('no circuits given (--circuits a,b,c or --split test)')
    tracks = [get_circuit(name) for name in names]
    say = progress or (lambda _line: None)
    out = []
    for k, (name, track) in enumerate(zip(names, tracks), 1):
        say(f'[circuit {k}/{len(names)}] {track.name} ({track.length:.0f} m)')
        comparison = compare_models(
            models,
            track,
            laps=laps,
            threads=threads,
            backend=backend,
            models_dir=models_dir,
            progress=progress,
        )
        comparison.header['circuit_source'] = name
        out.append(comparison)
    return out


def circuit_rows(comparisons: Sequence[Comparison]) -> list[dict[str, Any]]:
    """Return one row per model and circuit."""
    rows = []
    for comparison in comparisons:
        source = comparison.header.get('circuit_source', comparison.circuit.name)
        for r in comparison.rows:
            rows.append({
                'model': r.name,
                'circuit': comparison.circuit.name,
                'source': source,
                'split': split_of_circuit(source),
                'circuit_length_m': round(comparison.circuit.length, 1),
                'completed': r.completed,
                'end_reason': r.end_reason,
                'percentage_completed': r.percentage_completed,
                'lap_seconds': r.lap_seconds,
                'average_speed': r.average_speed,
                'deviation_mean_m': r.deviation_mean_m,
                'deviation_max_m': r.deviation_max_m,
                'status': r.status if not r.error else f'{r.status}: {r.error}',
            })
    return rows


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    Return one summary row per model, in the order the models first appear.

    ``completed`` reads ``4 of 5``; means are over the circuits where the model ran.
    """
    models = list(dict.fromkeys(r['model'] for r in rows))
    out = []
    for model in models:
        mine = [r for r in rows if r['model'] == model]
        ran = [r for r in mine if r['percentage_completed'] is not None]
        done = [r for r in mine if r['completed']]

        def mean(key: str, of: list[dict[str, Any]] = ran) -> float | None:
            values = [r[key] for r in of if r[key] is not None]
            return sum(values) / len(values) if values else None

        worst = [r['deviation_max_m'] for r in ran if r['deviation_max_m'] is not None]
        out.append({
            'model': model,
            'completed': f'{len(done)} of {len(mine)}',
            'circuits_completed': len(done),
            'circuits': len(mine),
            'mean_percentage_completed': mean('percentage_completed'),
            'deviation_mean_m': mean('deviation_mean_m'),
            'deviation_max_m': max(worst) if worst else None,
            'not_completed': ', '.join(r['circuit'] for r in mine if not r['completed']) or '-',
        })
    return out


def compact_rows(
    summary: Sequence[dict[str, Any]], offline: Sequence[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """
    Return one :data:`COMPACT_COLUMNS` row per model of ``summary`` (:func:`summarise`).

    :param offline: ``pilotnet evaluate`` rows (``method``, ``backend``, ``size_mb``, ``p50_ms``,
        ``mse``), matched to the summary's models by name; a model without one shows ``-`` there.
        ``circuits`` reads ``5/6`` (completed of driven).
    """
    by_name = {r['method']: r for r in offline if r.get('status', 'ok') == 'ok'}
    out = []
    for row in summary:
        found = by_name.get(row['model'], {})
        out.append({
            'model': row['model'],
            'backend': found.get('backend'),
            'size_mb': found.get('size_mb'),
            'p50_ms': found.get('p50_ms'),
            'mse': found.get('mse'),
            'circuits_completed': f"{row['circuits_completed']}/{row['circuits']}",
            'mean_percentage_completed': row['mean_percentage_completed'],
            'deviation_mean_m': row['deviation_mean_m'],
        })
    return out


def _plot_grid(comparisons: Sequence[Comparison], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n = len(comparisons)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.8 * rows + 0.8), squeeze=False)
    for ax, comparison in zip(axes.flat, comparisons):
        plot_runs(ax, comparison, comparison.circuit.name, lw=0.9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel('')
        ax.set_ylabel('')
    for ax in list(axes.flat)[n:]:
        ax.axis('off')
    # One legend for the grid: the models (the same colours in every panel).
    handles, labels = axes.flat[0].get_legend_handles_labels()
    names = [label.split(':')[0] for label in labels]
    fig.legend(handles, names, loc='lower center', ncol=min(len(names), 6), fontsize=8)
    fig.suptitle('Each model on each circuit, lock-step (X: run ended early)')
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_generalisation(
    comparisons: Sequence[Comparison], out_dir: str | Path
) -> dict[str, Path]:
    """Write the generalisation files and each circuit's comparison into ``out_dir``."""
    out = Path(out_dir)
    rows = circuit_rows(comparisons)
    summary = summarise(rows)
    for comparison in comparisons:
        write_reports(comparison, out / _slug(comparison.header['circuit_source']))
    first = comparisons[0].header
    report = {
        'benchmark': 'generalisation',
        'circuits': [c.header['circuit_source'] for c in comparisons],
        'laps': first['laps'],
        'mode': first['mode'],
        'threads': first['threads'],
        'backend': first['backend'],
        'machine': machine_description(),
        'summary': summary,
        'rows': rows,
    }
    header = (
        f"{len(comparisons)} circuit(s), {first['laps']} lap(s) each, {first['mode']};"
        f" {report['machine']}; {first['threads']} thread(s).\n\n"
        + markdown_table(summary, SUMMARY_COLUMNS)
        + '\n\nPer circuit:'
    )
    paths = write_report_files(report, out, 'generalisation', CIRCUIT_COLUMNS, header)
    paths['png'] = out / 'generalisation.png'
    _plot_grid(comparisons, paths['png'])
    return paths


def exit_code(rows: Sequence[dict[str, Any]]) -> int:
    """Return 0 when every model completed every circuit, 3 when not, 1 when none ran."""
    if not any(r['percentage_completed'] is not None for r in rows):
        return 1
    return 0 if all(r['completed'] for r in rows) else 3


def run_compare(args: argparse.Namespace) -> int:
    """
    Run ``pilotnet compare``: one circuit (:func:`closed_loop.run`), or several.

    With ``--circuits`` or ``--split``: drive, write the generalisation files, print the tables,
    return the exit code (:func:`exit_code`).
    """
    if not (args.circuits or args.split):
        return closed_loop.run(args)
    models = split_names(args.models)
    if args.start:
        raise PilotnetError('--start applies to one --circuit, not to --circuits or --split')
    circuits = (
        split_names(args.circuits) if args.circuits
        else split_circuits(args.split, args.perfect_bags)
    )

    def progress(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    start = time.perf_counter()
    comparisons = compare_on_circuits(
        models,
        circuits,
        laps=args.laps,
        threads=args.threads,
        backend=args.backend,
        models_dir=args.models_dir,
        progress=progress,
    )
    out = Path(args.out or Path('runs') / f"generalisation-{args.split or 'circuits'}")
    paths = write_generalisation(comparisons, out)
    rows = circuit_rows(comparisons)
    if args.json:
        import json
        print(json.dumps({'summary': summarise(rows), 'rows': rows}, indent=2))
    else:
        print_rows(rows, columns=CIRCUIT_COLUMNS)
        print()
        print_rows(summarise(rows), columns=SUMMARY_COLUMNS)
        print(f'\n{time.perf_counter() - start:.0f} s; wrote '
              + ', '.join(str(p) for p in paths.values()))
    return exit_code(rows)
