"""The seed's table, measured in one run on one machine: size, error on a held-out circuit, batch-1 latency.

For every model in a folder (the ``pilotnet optimize`` output): file size in MB (bytes / 2^20, as the seed),
MSE on normalised labels, MAE of v and w in physical units, batch-1 latency p50/p90/p99 after warm-up, and
speed-up and size ratios against both the Keras model and the TFLite float32 baseline. Writes Markdown,
CSV, JSON and a size-vs-latency plot.
"""

from __future__ import annotations

import csv
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.models.data import Frames, load_datasets
from pilotnet_optimized.models.preprocess import Preprocessing, denormalise_labels, normalise_input, normalise_labels
from pilotnet_optimized.store import find_models, size_mb

__all__ = ['EvalRow', 'evaluate_model', 'evaluate_folder', 'write_reports', 'markdown_table']


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


def _latency_ms(backend, sample: np.ndarray, warmup: int, runs: int) -> np.ndarray:
    batch = sample[None]
    for _ in range(warmup):
        backend.predict_normalised(batch)
    times = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter()
        backend.predict_normalised(batch)
        times[i] = time.perf_counter() - t
    return times * 1e3


def evaluate_model(method: str, path: Path, frames: Frames, threads: int = 1, warmup: int = 50,
                   runs: int = 300, backend_name: str = 'auto') -> EvalRow:
    """One model's row: accuracy over all ``frames`` (in batches), latency at batch 1."""
    from pilotnet_optimized.backends import load_backend
    try:
        backend = load_backend(path, backend_name, num_threads=threads)
    except PilotnetError as err:
        return EvalRow(method, path.name, backend_name, '-', size_mb(path), None, None, None, None, None, None,
                       status='skipped' if 'tensorrt' in str(err).lower() else 'error', error=str(err))
    prep: Preprocessing = backend.preprocessing
    x = normalise_input(frames.images, prep)
    preds = np.concatenate([backend.predict_normalised(x[i:i + 64]) for i in range(0, len(x), 64)])
    target = normalise_labels(frames.labels)
    mse = float(np.mean((preds - target) ** 2))
    mae = np.abs(denormalise_labels(preds) - frames.labels).mean(axis=0)
    lat = _latency_ms(backend, x[len(x) // 2], warmup, runs)
    info = backend.describe()
    backend.close()
    return EvalRow(method=method, file=path.name, backend=info.get('backend', backend.name),
                   precision=backend.precision, size_mb=backend.file_size_bytes / 2 ** 20, mse=mse,
                   mae_v=float(mae[0]), mae_w=float(mae[1]), p50_ms=float(np.percentile(lat, 50)),
                   p90_ms=float(np.percentile(lat, 90)), p99_ms=float(np.percentile(lat, 99)))


def _add_ratios(rows: list[EvalRow]) -> None:
    refs = {name: next((r for r in rows if r.method == name and r.status == 'ok'), None)
            for name in ('keras', 'baseline')}
    for r in rows:
        if r.status != 'ok':
            continue
        for name, ref in refs.items():
            if ref is None:
                continue
            setattr(r, f'speedup_vs_{name}', ref.p50_ms / r.p50_ms if r.p50_ms else None)
            setattr(r, f'size_ratio_vs_{name}', ref.size_mb / r.size_mb if r.size_mb else None)


def evaluate_folder(folder: str | Path, data: list[str | Path], threads: int = 1, limit: int | None = None,
                    warmup: int = 50, runs: int = 300, methods: list[str] | None = None,
                    progress=print) -> dict:
    """Evaluate every model in ``folder`` on the dataset folders ``data`` (a held-out circuit).

    :param limit: use only the first ``limit`` frames of each dataset folder.
    :returns: a JSON-ready report: header (machine, data, versions) and rows.
    """
    models = find_models(folder)
    if methods:
        models = [(m, p) for m, p in models if m in methods]
    # Every model in a folder from `pilotnet optimize` shares its preprocessing; read it from the first.
    prep = Preprocessing.for_model(models[0][1])
    frames = load_datasets(data, prep, progress=False, limit_per_folder=limit)
    rows: list[EvalRow] = []
    start = time.perf_counter()
    for method, path in models:
        t = time.perf_counter()
        row = evaluate_model(method, path, frames, threads, warmup, runs)
        rows.append(row)
        if progress:
            detail = (f'MSE {row.mse:.5f}  p50 {row.p50_ms:.3f} ms  {row.size_mb:.2f} MB' if row.status == 'ok'
                      else f'{row.status}: {row.error}')
            progress(f'[evaluate] {method:<14} {detail}  ({time.perf_counter() - t:.1f} s)')
    _add_ratios(rows)
    from pilotnet_optimized.sim.bench import machine_description
    return {
        'benchmark': 'evaluate',
        'models': str(folder),
        'data': [str(d) for d in frames.sources],
        'frames': len(frames),
        'threads': threads,
        'latency': f'batch 1, {warmup} warm-up calls, then {runs} timed calls',
        'machine': machine_description(),
        'python': platform.python_version(),
        'versions': _versions(),
        'seconds': round(time.perf_counter() - start, 1),
        'rows': [asdict(r) for r in rows],
    }


def _versions() -> dict:
    out = {}
    for mod in ('tensorflow', 'ai_edge_litert', 'onnxruntime', 'tensorflow_model_optimization'):
        try:
            from importlib.metadata import version
            out[mod] = version(mod.replace('_', '-'))
        except Exception:  # noqa: BLE001 - a missing runtime just is not listed
            continue
    return out


COLUMNS = [('method', 'method', '{}'), ('precision', 'precision', '{}'), ('size MB', 'size_mb', '{:.2f}'),
           ('MSE', 'mse', '{:.5f}'), ('MAE v m/s', 'mae_v', '{:.3f}'), ('MAE w rad/s', 'mae_w', '{:.3f}'),
           ('p50 ms', 'p50_ms', '{:.3f}'), ('p90 ms', 'p90_ms', '{:.3f}'), ('p99 ms', 'p99_ms', '{:.3f}'),
           ('speed-up vs Keras', 'speedup_vs_keras', '{:.1f}x'),
           ('speed-up vs TFLite', 'speedup_vs_baseline', '{:.2f}x'),
           ('smaller vs Keras', 'size_ratio_vs_keras', '{:.1f}x'),
           ('smaller vs TFLite', 'size_ratio_vs_baseline', '{:.1f}x'), ('status', 'status', '{}')]


def markdown_table(report: dict) -> str:
    """The report's rows as a Markdown table."""
    lines = ['| ' + ' | '.join(c[0] for c in COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    for row in report['rows']:
        cells = []
        for _, key, fmt in COLUMNS:
            value = row.get(key)
            cells.append('-' if value is None else fmt.format(value))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def write_reports(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """evaluation.json, evaluation.csv, evaluation.md and evaluation.png in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f'evaluation.{k}' for k in ('json', 'csv', 'md', 'png')}
    paths['json'].write_text(json.dumps(report, indent=2) + '\n')
    with open(paths['csv'], 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(report['rows'][0]))
        writer.writeheader()
        writer.writerows(report['rows'])
    header = (f"Models: `{report['models']}`; data: {', '.join(report['data'])} ({report['frames']} frames); "
              f"{report['machine']}; {report['threads']} thread(s); {report['latency']}.")
    paths['md'].write_text(header + '\n\n' + markdown_table(report) + '\n')
    _plot(report, paths['png'])
    return paths


def _plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = [r for r in report['rows'] if r['status'] == 'ok' and r['p50_ms']]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    mse = np.array([r['mse'] for r in rows])
    sc = ax.scatter([r['size_mb'] for r in rows], [r['p50_ms'] for r in rows], c=mse, cmap='viridis_r', s=70,
                    edgecolors='k')
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
