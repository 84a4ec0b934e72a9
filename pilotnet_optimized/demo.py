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

Build the default models once (cached), then compare them in closed loop.

The seed's full-size PilotNet takes about 20 minutes to train on two CPU cores; the demo must
finish within 15 minutes on a fresh machine, install included. So its default models come from the
same pipeline, scaled down: a small dataset from the training circuits, NVIDIA's original PilotNet
(1.6 M parameters instead of 17 M), and the optimisation methods that need no fine-tuning. The
recipe is written next to the models; a later run with the same recipe reuses them, a changed
recipe (or a missing file) rebuilds them.

``pilotnet demo`` then drives every model one lap of the simple circuit in lock-step (results
independent of the machine's load) and prints the comparison table
(:mod:`pilotnet_optimized.evaluate.closed_loop`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import dataclasses
from dataclasses import dataclass, field
import json
from pathlib import Path
import sys
import time

from pilotnet_optimized import __version__
from pilotnet_optimized.optimize.context import FINE_TUNING
from pilotnet_optimized.optimize.methods import METHODS

__all__ = ['DemoRecipe', 'DEFAULT_RECIPE', 'DEFAULT_FOLDER', 'DEMO_SUFFIXES', 'demo_methods',
           'ensure_default_models', 'add_arguments', 'run']

DEFAULT_FOLDER = Path('models/default')
RECIPE_FILE = 'recipe.json'
#: The file kinds the demo compares: the TFLite and ONNX files (not the Keras reference, not a
#: SavedModel).
DEMO_SUFFIXES = ('.tflite', '.onnx')


def demo_methods() -> tuple[str, ...]:
    """
    Return the demo's methods, from the method table in its order.

    Every TFLite or ONNX file made without fine-tuning (minutes, not the half hour the tfmot
    methods take) and without a GPU. The table's first such row is the float32 baseline, which the
    comparison measures the rest against.
    """
    return tuple(m.name for m in METHODS
                 if m.suffix in DEMO_SUFFIXES and m.needs_data != FINE_TUNING and not m.needs_gpu)


@dataclass(frozen=True)
class DemoRecipe:
    """
    What the default models are made from; any change rebuilds them.

    :param circuits: training circuits (the built-in ``train`` split), one dataset folder each.
    :param frames_per_circuit: labelled frames per circuit (the full-size run uses 8000).
    :param arch: model architecture.
    :param epochs: training epochs (early stopping may end sooner).
    :param methods: optimisation methods, in table order; the first is the comparison's baseline
        (default: :func:`demo_methods`).
    :param seed: dataset and training seed.
    """

    circuits: tuple[str, ...] = ('simple', 'many_curves')
    frames_per_circuit: int = 6000
    arch: str = 'pilotnet-nvidia'
    epochs: int = 6
    methods: tuple[str, ...] = field(default_factory=demo_methods)
    seed: int = 0

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), 'package_version': __version__}


DEFAULT_RECIPE = DemoRecipe()


def _cached(folder: Path, recipe: DemoRecipe) -> dict[str, Path] | None:
    """Return the default models, if ``folder`` holds a complete build of ``recipe``."""
    try:
        stored = json.loads((folder / RECIPE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if stored.get('recipe') != json.loads(json.dumps(recipe.to_dict())):
        return None
    paths = {name: folder / rel for name, rel in stored.get('models', {}).items()}
    if list(paths) != list(recipe.methods) or not all(p.exists() for p in paths.values()):
        return None
    return paths


def ensure_default_models(
    folder: str | Path = DEFAULT_FOLDER,
    recipe: DemoRecipe = DEFAULT_RECIPE,
    rebuild: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, Path]:
    """
    Return the default models (method name -> file).

    Built into ``folder`` unless a build of ``recipe`` is there.

    Steps, each with progress: datasets (``folder/data/<circuit>``), training
    (``folder/<arch>.keras``), optimisation (``folder/optimized/``).
    """
    folder = Path(folder)
    if not rebuild:
        cached = _cached(folder, recipe)
        if cached is not None:
            say(
                f'[demo] using the default models built earlier in {folder} (--rebuild to make'
                ' them again)'
            )
            return cached
    t_start = time.monotonic()
    say(
        f'[demo] building the default models in {folder} (once; later runs reuse them):'
        f' {recipe.frames_per_circuit} frames from each of {", ".join(recipe.circuits)},'
        f' {recipe.arch}, {recipe.epochs} epochs, then {", ".join(recipe.methods)}'
    )
    (folder / RECIPE_FILE).unlink(missing_ok=True)  # a build cut short must not look complete

    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.dataset import write_dataset
    data_dirs = []
    for i, name in enumerate(recipe.circuits):
        step_start = time.monotonic()
        out = folder / 'data' / name
        write_dataset(
            get_circuit(name),
            recipe.frames_per_circuit,
            out,
            seed=recipe.seed + i,
            overwrite=True,
            progress=True,
        )
        data_dirs.append(out)
        say(
            f'[demo] dataset {name}: {recipe.frames_per_circuit} frames in'
            f' {time.monotonic() - step_start:.0f} s'
        )

    from pilotnet_optimized.models.train import train, TrainConfig
    keras_path = folder / f"{recipe.arch.replace('-', '_')}.keras"
    step_start = time.monotonic()
    result = train(
        data_dirs,
        keras_path,
        TrainConfig(arch=recipe.arch, epochs=recipe.epochs, seed=recipe.seed),
        verbose=1 if sys.stdout.isatty() else 2,
    )
    say(
        f'[demo] trained {keras_path.name}: {result.epochs_run} epochs in'
        f' {time.monotonic() - step_start:.0f} s, held-out MAE v {result.val_mae_v:.2f} m/s, w'
        f' {result.val_mae_w:.3f} rad/s'
    )

    from pilotnet_optimized.optimize.pipeline import optimize_model
    rows = optimize_model(
        keras_path,
        folder / 'optimized',
        methods=recipe.methods,
        train_data=data_dirs,
        progress=lambda line: say(f'[demo] optimize: {line}'),
    )
    failed = [r for r in rows if r['status'] != 'ok']
    if failed:
        from pilotnet_optimized.errors import PilotnetError
        raise PilotnetError(
            'building the default models failed: '
            + '; '.join(f"{r['method']}: {r.get('error') or r['status']}" for r in failed)
        )
    record = {
        'recipe': recipe.to_dict(),
        'models': {r['method']: f"optimized/{r['file']}" for r in rows},
        'build_seconds': round(time.monotonic() - t_start, 1),
    }
    (folder / RECIPE_FILE).write_text(json.dumps(record, indent=2) + '\n')
    say(f'[demo] default models ready in {time.monotonic() - t_start:.0f} s')
    return {name: folder / rel for name, rel in record['models'].items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pilotnet demo`` arguments."""
    parser.add_argument(
        '--folder',
        type=Path,
        default=DEFAULT_FOLDER,
        help=f'where the default models are built and cached (default: {DEFAULT_FOLDER})',
    )
    parser.add_argument('--rebuild', action='store_true', help='build the default models again')
    parser.add_argument(
        '--circuit', default='simple', help='circuit to compare them on (default: simple)'
    )
    parser.add_argument('--laps', type=int, default=1, help='laps per model (default: 1)')
    parser.add_argument(
        '--out',
        type=Path,
        default=Path('runs/demo'),
        help='where the comparison writes its Markdown, JSON and PNG (default: runs/demo)',
    )
    parser.add_argument(
        '--json', action='store_true', help='print the comparison as JSON (progress to stderr)'
    )


def run(args: argparse.Namespace) -> int:
    """Build (once) and compare the default models; the exit code is the comparison's."""
    from pilotnet_optimized.evaluate.closed_loop import compare_models, report_and_exit

    def say(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    models = ensure_default_models(args.folder, rebuild=args.rebuild, say=say)
    say(f'[demo] driving {len(models)} models {args.laps} lap(s) of {args.circuit} in lock-step')
    comparison = compare_models(
        [str(p) for p in models.values()], args.circuit, laps=args.laps, progress=say
    )
    return report_and_exit(comparison, args.out, args.json)
