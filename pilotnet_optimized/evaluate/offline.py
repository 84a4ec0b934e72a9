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
The seed's table, measured in one run on one machine.

Size, error on a held-out circuit, batch-1 latency.

For every model in a folder (the ``pilotnet optimize`` output): file size in MB (bytes / 2^20, as
the seed), MSE on normalised labels, MAE of v and w in physical units, batch-1 latency p50/p90/p99
after warm-up, and speed-up and size ratios against both the Keras model and the TFLite float32
baseline. Writes Markdown, CSV, JSON and a size-vs-latency plot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
from pathlib import Path
import platform
import time
from typing import TYPE_CHECKING

import numpy as np
from pilotnet_optimized.argtypes import positive_int
from pilotnet_optimized.backends.timing import percentiles, time_calls
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.evaluate.report import Column, machine_description
from pilotnet_optimized.evaluate.report import markdown_table as rows_markdown
from pilotnet_optimized.evaluate.report import versions, write_report_files
from pilotnet_optimized.models.data import Frames, load_datasets
from pilotnet_optimized.models.preprocess import (denormalise_labels, normalise_input,
                                                  normalise_labels, Preprocessing)
from pilotnet_optimized.optimize.methods import BASELINE, REFERENCE
from pilotnet_optimized.store import find_models, size_mb, split_names

if TYPE_CHECKING:
    import argparse

__all__ = [
    'EvalRow',
    'COLUMNS',
    'evaluate_model',
    'evaluate_folder',
    'write_reports',
    'markdown_table',
    'add_arguments',
    'run',
]


@dataclass
class EvalRow:
    """One model's line of the table."""

    method: str
    file: str
    backend: str
    precision: str
    size_mb: float
    mse: float | None
    mae_v: float | None
    mae_w: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    speedup_vs_keras: float | None = None
    speedup_vs_baseline: float | None = None
    size_ratio_vs_keras: float | None = None
    size_ratio_vs_baseline: float | None = None
    status: str = 'ok'
    error: str | None = None


def evaluate_model(
    method: str,
    path: Path,
    frames: Frames,
    threads: int = 1,
    warmup: int = 50,
    runs: int = 300,
    backend_name: str = 'auto',
) -> EvalRow:
    """Return one model's row: accuracy over all ``frames`` (in batches), latency at batch 1."""
    from pilotnet_optimized.backends import load_backend
    try:
        backend = load_backend(path, backend_name, num_threads=threads)
    except PilotnetError as err:
        return EvalRow(
            method,
            path.name,
            backend_name,
            '-',
            size_mb(path),
            None,
            None,
            None,
            None,
            None,
            None,
            status='skipped' if 'tensorrt' in str(err).lower() else 'failed',
            error=str(err),
        )
    prep: Preprocessing = backend.preprocessing
    x = normalise_input(frames.images, prep)
    preds = np.concatenate([backend.predict_normalised(x[i:i + 64]) for i in range(0, len(x), 64)])
    target = normalise_labels(frames.labels)
    mse = float(np.mean((preds - target) ** 2))
    mae = np.abs(denormalise_labels(preds) - frames.labels).mean(axis=0)
    batch = x[len(x) // 2][None]
    lat = time_calls(lambda: backend.predict_normalised(batch), runs, warmup)
    info = backend.describe()
    backend.close()
    return EvalRow(method=method, file=path.name, backend=info.get('backend', backend.name),
                   precision=backend.precision, size_mb=backend.file_size_bytes / 2 ** 20, mse=mse,
                   mae_v=float(mae[0]), mae_w=float(mae[1]), **percentiles(lat))


def _add_ratios(rows: list[EvalRow]) -> None:
    refs = {name: next((r for r in rows if r.method == name and r.status == 'ok'), None)
            for name in (REFERENCE, BASELINE)}
    for r in rows:
        if r.status != 'ok':
            continue
        for name, ref in refs.items():
            if ref is None:
                continue
            setattr(r, f'speedup_vs_{name}', ref.p50_ms / r.p50_ms if r.p50_ms else None)
            setattr(r, f'size_ratio_vs_{name}', ref.size_mb / r.size_mb if r.size_mb else None)


def evaluate_folder(
    folder: str | Path,
    data: list[str | Path],
    threads: int = 1,
    limit: int | None = None,
    warmup: int = 50,
    runs: int = 300,
    methods: list[str] | None = None,
    progress=print,
) -> dict:
    """
    Evaluate every model in ``folder`` on the dataset folders ``data`` (a held-out circuit).

    :param limit: use only the first ``limit`` frames of each dataset folder.
    :returns: a JSON-ready report: header (machine, data, versions) and rows.
    """
    models = find_models(folder)
    if methods:
        models = [(m, p) for m, p in models if m in methods]
    # Every model in a folder from `pilotnet optimize` shares its preprocessing; read it from the
    # first.
    prep = Preprocessing.for_model(models[0][1])
    frames = load_datasets(data, prep, progress=False, limit_per_folder=limit)
    rows: list[EvalRow] = []
    start = time.perf_counter()
    for method, path in models:
        t = time.perf_counter()
        row = evaluate_model(method, path, frames, threads, warmup, runs)
        rows.append(row)
        if progress:
            detail = (
                f'MSE {row.mse:.5f}  p50 {row.p50_ms:.3f} ms  {row.size_mb:.2f} MB'
                if row.status == 'ok'
                else f'{row.status}: {row.error}'
            )
            progress(f'[evaluate] {method:<14} {detail}  ({time.perf_counter() - t:.1f} s)')
    _add_ratios(rows)
    return {
        'benchmark': 'evaluate',
        'models': str(folder),
        'data': [str(d) for d in frames.sources],
        'frames': len(frames),
        'threads': threads,
        'latency': f'batch 1, {warmup} warm-up calls, then {runs} timed calls',
        'machine': machine_description(),
        'python': platform.python_version(),
        'versions': versions(),
        'seconds': round(time.perf_counter() - start, 1),
        'rows': [asdict(r) for r in rows],
    }


#: The table's columns (Markdown and the terminal).
COLUMNS = [
    Column('method', 'method', '{}'),
    Column('backend', 'backend', '{}'),
    Column('precision', 'precision', '{}'),
    Column('size MB', 'size_mb', '{:.2f}'),
    Column('MSE', 'mse', '{:.5f}'),
    Column('MAE v m/s', 'mae_v', '{:.3f}'),
    Column('MAE w rad/s', 'mae_w', '{:.3f}'),
    Column('p50 ms', 'p50_ms', '{:.3f}'),
    Column('p90 ms', 'p90_ms', '{:.3f}'),
    Column('p99 ms', 'p99_ms', '{:.3f}'),
    Column('speed-up vs Keras', 'speedup_vs_keras', '{:.1f}x'),
    Column('speed-up vs TFLite', 'speedup_vs_baseline', '{:.2f}x'),
    Column('smaller vs Keras', 'size_ratio_vs_keras', '{:.1f}x'),
    Column('smaller vs TFLite', 'size_ratio_vs_baseline', '{:.1f}x'),
    Column('status', 'status', '{}'),
]


def markdown_table(report: dict) -> str:
    """Return the report's rows as a Markdown table."""
    return rows_markdown(report['rows'], COLUMNS)


def header_text(report: dict) -> str:
    """Return one line about the models, the data and the machine, above the table."""
    return (
        f"Models: `{report['models']}`; data: {', '.join(report['data'])} ({report['frames']}"
        f" frames); {report['machine']}; {report['threads']} thread(s); {report['latency']}."
    )


def write_reports(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write evaluation.json, evaluation.csv, evaluation.md and evaluation.png in ``out_dir``."""
    paths = write_report_files(report, out_dir, 'evaluation', COLUMNS, header_text(report))
    paths['png'] = Path(out_dir) / 'evaluation.png'
    _plot(report, paths['png'])
    return paths


def _plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = [r for r in report['rows'] if r['status'] == 'ok' and r['p50_ms']]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    mse = np.array([r['mse'] for r in rows])
    sc = ax.scatter(
        [r['size_mb'] for r in rows],
        [r['p50_ms'] for r in rows],
        c=mse,
        cmap='viridis_r',
        s=70,
        edgecolors='k',
    )
    for r in rows:
        ax.annotate(f"{r['method']}\nMSE {r['mse']:.4f}", (r['size_mb'], r['p50_ms']), fontsize=7,
                    xytext=(4, 4), textcoords='offset points')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('model size (MB, log)')
    ax.set_ylabel('batch-1 latency p50 (ms, log)')
    ax.set_title(f"PilotNet optimisations: size vs latency ({report['threads']} thread(s))")
    fig.colorbar(sc, ax=ax, label='MSE (normalised labels, held-out circuit)')
    ax.grid(True, which='both', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the command ----------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``pilotnet evaluate``'s options."""
    p.add_argument('models', help='folder of models (the output of pilotnet optimize)')
    p.add_argument(
        '--data', nargs='+', required=True, help='held-out dataset folders (e.g. data/test)'
    )
    p.add_argument('--threads', type=int, default=1, help='inference threads (default: 1)')
    p.add_argument(
        '--limit', type=positive_int, help='first N frames of each dataset folder (default: all)'
    )
    p.add_argument(
        '--runs',
        type=positive_int,
        default=300,
        help='timed batch-1 calls per model (default: 300)',
    )
    p.add_argument(
        '--methods',
        nargs='+',
        help='only these methods, comma- or space-separated (default: every model in the folder)',
    )
    p.add_argument(
        '--out', help='folder for evaluation.{md,csv,json,png} (default: the models folder)'
    )
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')


def run(args: argparse.Namespace) -> int:
    """
    Evaluate, write the reports, print the table (or JSON).

    Exit 0 when at least one model ran, 1 when none did.
    """
    report = evaluate_folder(
        args.models,
        args.data,
        threads=args.threads,
        limit=args.limit,
        runs=args.runs,
        methods=split_names(args.methods) if args.methods else None,
        progress=None if args.json else print,
    )
    paths = write_reports(report, args.out or args.models)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['machine']}; {report['frames']} frames of {', '.join(report['data'])}; "
              f"{report['threads']} thread(s)")
        print(markdown_table(report))
        print('wrote ' + ', '.join(str(p) for p in paths.values()))
    return 0 if any(r['status'] == 'ok' for r in report['rows']) else 1
