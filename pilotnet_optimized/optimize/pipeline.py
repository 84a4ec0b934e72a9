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
``pilotnet optimize``.

Every method of the table on one trained model, one file each, and a manifest.

One progress line per method (name, status, seconds, size); a failing method is recorded and the
run goes on; ``manifest.json`` in the output folder lists every method asked for with its file,
precision, size, seconds, status, error and parameters, and is rewritten after each method so an
interrupted run still leaves a readable one. With validation data, each file is also loaded back in
its runtime and scored (MSE on normalised labels, and mean absolute difference from the Keras
model).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
import json
import os
from pathlib import Path
import platform
import shutil
import time
from typing import Any

import numpy as np
from pilotnet_optimized.errors import one_line, PilotnetError
from pilotnet_optimized.optimize.context import OptimizeContext, OptimizeSettings
from pilotnet_optimized.optimize.methods import Method, method_names, METHODS, resolve_methods
from pilotnet_optimized.store import MANIFEST, size_on_disk, split_names, write_bytes_atomic

__all__ = ['optimize_model', 'add_arguments', 'run']


def optimize_model(
    keras_path: str | Path,
    out_dir: str | Path,
    methods: Iterable[str] | str = ('all',),
    train_data: list[str | Path] | None = None,
    val_data: list[str | Path] | None = None,
    finetune_epochs: int = OptimizeSettings.finetune_epochs,
    max_finetune_frames: int | None = OptimizeSettings.max_finetune_frames,
    calibration_frames: int = OptimizeSettings.calibration_frames,
    progress: Callable[[str], None] | None = print,
    **options: Any,
) -> list[dict]:
    """
    Produce every requested method's file from the trained model ``keras_path`` into ``out_dir``.

    :param methods: names from :data:`~pilotnet_optimized.optimize.methods.METHODS` or ``'all'``.
    :param train_data: dataset folders for calibration and fine-tuning (needed by int8, QAT,
        pruning, clustering and ``slim``).
    :param val_data: held-out dataset folders; when given, each output is loaded back and scored.
    :param progress: called with one line per method and a summary; ``None`` for silence.
    :param options: further :class:`~pilotnet_optimized.optimize.context.OptimizeSettings` fields
        (``slim_units``, ``slim_quantization``, ``clusters``, ``learning_rate``...).
    :returns: one row per method: method, file, precision, size_bytes, seconds, status ('ok',
        'failed' or 'skipped'), error, parameters, and the scores when measured.
    :raises PilotnetError: for an unknown method or option, a missing model, or methods that need
        data without ``train_data``; a method that fails while running is recorded instead.
    """
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    say = progress or (lambda line: None)
    chosen = resolve_methods(methods)
    settings = OptimizeSettings.from_options(
        finetune_epochs=finetune_epochs,
        max_finetune_frames=max_finetune_frames,
        calibration_frames=calibration_frames,
        **options,
    )
    keras_path = Path(keras_path)
    if not keras_path.is_file():
        raise PilotnetError(f'{keras_path}: model not found (give the trained .keras file)')
    needy = [m.name for m in chosen if m.needs_data and m.unavailable_reason() is None]
    if needy and not train_data:
        free = ', '.join(m.name for m in METHODS if not m.needs_data and not m.needs_gpu)
        raise PilotnetError(
            f"methods {', '.join(needy)} need training data for calibration or fine-tuning: pass "
            f'--data DATASET_FOLDER (methods that need none: {free})'
        )
    if train_data:
        # Calibration and fine-tuning frames are learned from: never a test circuit's.
        from pilotnet_optimized.models.data import folders_of_test_circuits
        # (A missing folder fails only the methods that read it, later, as before.)
        test_dirs = folders_of_test_circuits([d for d in train_data if Path(d).exists()])
        if test_dirs:
            raise PilotnetError(
                f"refusing to calibrate or fine-tune on test-circuit data ({', '.join(test_dirs)})"
            )
    if val_data:
        # Checked now: a typo here would otherwise fail every method's scoring. (Training data is
        # read lazily, by the first method that needs it, and a failure there fails only those
        # methods.)
        from pilotnet_optimized.models.data import find_dataset_dirs
        find_dataset_dirs(list(val_data))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = OptimizeContext(
        keras_path=keras_path,
        out_dir=out_dir,
        train_data=[Path(p) for p in train_data] if train_data else None,
        val_data=[Path(p) for p in val_data] if val_data else None,
        settings=settings,
    )
    rows: list[dict] = []
    started = time.perf_counter()
    for method in chosen:
        row = _run_method(ctx, method)
        rows.append(row)
        say(_progress_line(row))
        _write_manifest(ctx, rows, time.perf_counter() - started)
    say(_summary(rows, out_dir, time.perf_counter() - started))
    return rows


def _run_method(ctx: OptimizeContext, method: Method) -> dict:
    out = ctx.out_dir / method.filename
    row: dict[str, Any] = {
        'method': method.name,
        'file': method.filename,
        'precision': method.precision,
        'needs_data': method.needs_data,
        'needs_gpu': method.needs_gpu,
        'size_bytes': None,
        'seconds': None,
        'status': 'ok',
        'error': None,
        'parameters': {},
    }
    reason = method.unavailable_reason()
    if reason is not None:
        row.update(status='skipped', error=reason)
        return row
    _remove_stale(out, ctx.keras_path)
    start = time.perf_counter()
    try:
        with _quiet_tensorflow():
            row['parameters'] = method.producer(ctx, out) or {}
        row['seconds'] = round(time.perf_counter() - start, 1)
        row['size_bytes'] = size_on_disk(out)
        row.update(_check_output(ctx, method, out))
    except Exception as err:  # one method's failure must not stop the run: record it, go on
        row.update(
            status='failed', error=one_line(err), seconds=round(time.perf_counter() - start, 1)
        )
    return row


def _remove_stale(out: Path, source: Path) -> None:
    """
    Delete an earlier run's output of this method.

    So that the folder only holds what this run made (a method that fails now must not leave last
    week's file for evaluation to pick up).
    """
    from pilotnet_optimized.models.preprocess import sidecar_path
    if not out.exists() or out.resolve() == source.resolve():
        return
    if out.is_dir():
        shutil.rmtree(out)
    else:
        out.unlink()
    if out.suffix == '.xml':  # an OpenVINO IR's weights
        out.with_suffix('.bin').unlink(missing_ok=True)
    sidecar_path(out).unlink(missing_ok=True)


def _check_output(ctx: OptimizeContext, method: Method, out: Path) -> dict:
    """
    Load the file back in its runtime and score it.

    It is scored on held-out frames (or calibration frames when there are none): MSE on normalised
    labels and mean |difference| from the Keras model, both in [0, 1] space.
    """
    from pilotnet_optimized.backends import load_backend
    from pilotnet_optimized.models.preprocess import normalise_input, normalise_labels

    try:
        backend = load_backend(out)
    except Exception as err:
        raise PilotnetError(f'{out.name} was written but does not load: {one_line(err)}') from err
    with backend:
        found: dict[str, Any] = {'runtime_precision': backend.precision}
        if ctx.val_data:
            frames, key = ctx.val_frames(), 'reference on validation frames'
        elif ctx.train_data and method.needs_data:
            frames, key = (
                ctx.cached('check frames', ctx.calibration_frames),
                'reference on check frames',
            )
        else:
            return found
        x = normalise_input(frames.images, ctx.preprocessing)
        pred = np.concatenate(
            [backend.predict_normalised(x[i:i + 64]) for i in range(0, len(x), 64)]
        )
        reference = ctx.cached(key, lambda: ctx.model().predict(x, batch_size=64, verbose=0))
        found['agreement_mae'] = round(float(np.abs(pred - reference).mean()), 6)
        if ctx.val_data:
            found['val_mse'] = round(
                float(((pred - normalise_labels(frames.labels)) ** 2).mean()), 6
            )
            found['val_frames'] = len(frames)
    return found


# -- manifest and progress ------------------------------------------------------------------------
def _write_manifest(ctx: OptimizeContext, rows: list[dict], seconds: float) -> Path:
    from dataclasses import asdict

    manifest = {
        'model': str(ctx.keras_path),
        'train_data': [str(p) for p in ctx.train_data or []],
        'val_data': [str(p) for p in ctx.val_data or []],
        'preprocessing': ctx.preprocessing.to_dict(),
        'settings': asdict(ctx.settings),
        'machine': f'{platform.machine()} {platform.system()}, {os.cpu_count()} cores',
        'seconds': round(seconds, 1),
        'methods': {
            **_earlier_methods(ctx),
            **{row['method']: {k: v for k, v in row.items() if k != 'method'} for row in rows},
        },
    }
    return write_bytes_atomic(
        ctx.out_dir / MANIFEST, (json.dumps(manifest, indent=2) + '\n').encode()
    )


def _earlier_methods(ctx: OptimizeContext) -> dict:
    """
    Return the entries of an existing manifest from the same source model whose files remain.

    Re-running one method (``--methods int8``) then adds to the folder's table instead of
    replacing it.
    """
    path = ctx.out_dir / MANIFEST
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(old, dict) or old.get('model') != str(ctx.keras_path):
        return {}
    return {
        name: entry
        for name, entry in old.get('methods', {}).items()
        if isinstance(entry, dict) and entry.get('file') and (ctx.out_dir / entry['file']).exists()
    }


def _progress_line(row: dict) -> str:
    name = f"{row['method']:<14}"
    if row['status'] == 'skipped':
        return f"{name} skipped  {row['error']}"
    size = f"{row['size_bytes'] / 2 ** 20:9.2f} MB" if row['size_bytes'] is not None else ' ' * 12
    line = f"{name} {row['status']:<7} {row['seconds']:7.1f} s {size}"
    if row['status'] == 'failed':
        return f"{line}  error: {row['error']}"
    extras = []
    if 'val_mse' in row:
        extras.append(f"val mse {row['val_mse']:.4g}")
    if 'agreement_mae' in row:
        extras.append(f"|diff| from keras {row['agreement_mae']:.4f}")
    gz = row['parameters'].get('gzip_size_bytes')
    if gz:
        extras.append(f'gzip {gz / 2 ** 20:.2f} MB')
    return f"{line}  {', '.join(extras)}".rstrip()


def _summary(rows: list[dict], out_dir: Path, seconds: float) -> str:
    ok = sum(r['status'] == 'ok' for r in rows)
    text = f'{ok} of {len(rows)} methods written to {out_dir} in {seconds:.0f} s ({MANIFEST})'
    failed = [f"{r['method']} ({r['error']})" for r in rows if r['status'] == 'failed']
    skipped = [r['method'] for r in rows if r['status'] == 'skipped']
    if skipped:
        text += f"; skipped: {', '.join(skipped)}"
    if failed:
        text += f"; FAILED: {'; '.join(failed)}"
    return text


class _quiet_tensorflow:
    """
    Silence TensorFlow's Python logger while a method runs.

    Tfmot's fine-tuning repeats warnings that are expected (no gradients for cluster-preserved
    kernels, deprecated interpreter) on every call.
    """

    def __enter__(self) -> None:
        import logging

        self._logger = logging.getLogger('tensorflow')
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)


# -- command line ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pilotnet optimize`` arguments."""
    parser.add_argument('model', help='trained model (.keras, from pilotnet train)')
    parser.add_argument(
        '--methods',
        nargs='+',
        default=['all'],
        metavar='METHOD',
        help='methods to run, comma- or space-separated, or all (default): '
        f"{', '.join(method_names())}",
    )
    parser.add_argument(
        '--out', help='output folder (default: <model stem>_optimized beside the model)'
    )
    parser.add_argument(
        '--data', nargs='+', help='training dataset folders, for calibration and fine-tuning'
    )
    parser.add_argument(
        '--val', nargs='+', help='held-out dataset folders: score each output on them'
    )
    parser.add_argument(
        '--finetune-epochs',
        type=int,
        default=OptimizeSettings.finetune_epochs,
        help=f'fine-tuning epochs (default: {OptimizeSettings.finetune_epochs}, the seed)',
    )
    parser.add_argument(
        '--max-finetune-frames',
        type=int,
        default=OptimizeSettings.max_finetune_frames,
        help=(
            'fine-tune on at most this many random training frames (default: '
            f'{OptimizeSettings.max_finetune_frames}; 0: all)'
        ),
    )
    parser.add_argument(
        '--calibration-frames',
        type=int,
        default=OptimizeSettings.calibration_frames,
        help=(
            'representative frames for the int8 modes (default: '
            f'{OptimizeSettings.calibration_frames})'
        ),
    )
    parser.add_argument('--slim-units', type=int, default=OptimizeSettings.slim_units,
                        help=f'dense1 units slim keeps (default: {OptimizeSettings.slim_units})')
    parser.add_argument(
        '--slim-quantization',
        default=OptimizeSettings.slim_quantization,
        choices=['none', 'dynamic', 'float16', 'int8', 'int8-fallback'],
        help=f'TFLite mode for slim (default: {OptimizeSettings.slim_quantization})',
    )
    parser.add_argument(
        '--slim-on-policy-rounds',
        type=int,
        default=OptimizeSettings.slim_on_policy_rounds,
        help=(
            'rounds of driving the training circuits with slim and fine-tuning on the frames it '
            'saw too, with the same targets as the rest (DAgger; default: '
            f'{OptimizeSettings.slim_on_policy_rounds}; 0: off)'
        ),
    )
    parser.add_argument(
        '--teacher-weight',
        type=float,
        default=OptimizeSettings.teacher_weight,
        help=(
            "fine-tuning targets of QAT, pruning and clustering: W * the input model's predictions"
            " + (1 - W) * labels (default: 1, distillation; 0 is the seed's labels only)"
        ),
    )
    parser.add_argument(
        '--prune-conv',
        action='store_true',
        help='prune the convolutions too, as the seed (default: the Dense layers only)',
    )
    parser.add_argument(
        '--json', action='store_true', help='print JSON instead of progress lines and a table'
    )


def run(args: argparse.Namespace) -> int:
    """
    Run :func:`optimize_model` from parsed arguments.

    0 when every method ran (or was skipped), 1 otherwise.
    """
    model = Path(args.model)
    out = Path(args.out) if args.out else model.with_name(model.stem + '_optimized')
    rows = optimize_model(
        model,
        out,
        methods=split_names(args.methods),
        train_data=args.data,
        val_data=args.val,
        finetune_epochs=args.finetune_epochs,
        max_finetune_frames=args.max_finetune_frames or None,
        calibration_frames=args.calibration_frames,
        slim_units=args.slim_units,
        slim_quantization=args.slim_quantization,
        teacher_weight=args.teacher_weight,
        slim_on_policy_rounds=args.slim_on_policy_rounds,
        prune_conv=args.prune_conv,
        progress=None if args.json else print,
    )
    if args.json:
        print(json.dumps(rows, indent=2))
    return 1 if any(r['status'] == 'failed' for r in rows) else 0
