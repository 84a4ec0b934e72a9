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

Build the default models once (cached), then compare them in closed loop on held-out circuits.

A model that drives circuits it never saw is trained on many circuits (the built-in training ones
and generated ones with hairpins, chicanes and S-bends), on randomised frames, with on-policy
rounds: longer than a first run should take on two CPU cores. So the trained Keras model (NVIDIA's
original PilotNet, 1.6 M parameters) is shipped in ``models/default/`` with the recipe that made
it (``training.json``, its training log beside it); a first run optimises it with the methods that
need no fine-tuning (int8 calibrated on a small dataset of training circuits) and compares.
``pilotnet demo --rebuild`` makes every file again, the training too. A later run with the same
recipe reuses the models; a changed recipe (or a missing file) rebuilds what it changes.

``pilotnet demo`` then scores every model offline on a small dataset of a validation circuit
(size, batch-1 latency on one thread, MSE: :mod:`pilotnet_optimized.evaluate.offline`), drives
every model one lap of each held-out circuit in lock-step (results independent of the machine's
load): the built-in test circuit, a generated test circuit and, when Behavior Metrics' perfect laps
are found (:func:`~pilotnet_optimized.sim.splits.perfect_bags`), its worlds from their spawn poses;
and prints one short row per model (:data:`~pilotnet_optimized.evaluate.generalisation
.COMPACT_COLUMNS`: size, p50, MSE, circuits completed, mean deviation). The full tables are written
to files: ``evaluation.*``, ``generalisation.*`` and each circuit's ``compare.*`` in ``--out``.
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
from pilotnet_optimized.argtypes import positive_int
from pilotnet_optimized.models.steering import DEFAULT_CIRCUITS, DEFAULT_GAINS
from pilotnet_optimized.optimize.context import FINE_TUNING
from pilotnet_optimized.optimize.methods import METHODS

__all__ = ['DemoRecipe', 'DEFAULT_RECIPE', 'DEFAULT_FOLDER', 'DEMO_SUFFIXES', 'demo_methods',
           'ensure_default_models', 'add_arguments', 'run']

DEFAULT_FOLDER = Path('models/default')
RECIPE_FILE = 'recipe.json'
#: The training half of the recipe, beside the (shipped) Keras model it made.
TRAINING_FILE = 'training.json'
#: Held-out circuits the demo compares on, besides Behavior Metrics' perfect laps when found.
DEMO_CIRCUITS = ('long_fast', 'gen:20000')
#: Frames of the validation circuit the demo scores the models on offline (MSE, latency).
EVAL_FRAMES = 200
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

    :param circuits: training circuits (of the ``train`` split), one dataset folder each.
    :param frames_per_circuit: labelled frames per circuit.
    :param frames_by_circuit: ``(circuit, frames)`` pairs where a circuit has more or fewer.
    :param val_circuits: validation circuits (``val`` split; none: a 10 % holdout).
    :param val_frames: labelled frames per validation circuit.
    :param arch: model architecture.
    :param epochs: training epochs (early stopping may end sooner).
    :param on_policy_rounds: DAgger rounds after the first fit (see
        :class:`~pilotnet_optimized.models.train.TrainConfig`).
    :param on_policy_frames: frames driven per training circuit and round.
    :param focus_rounds: DAgger rounds after those, continuing the model they made (``pilotnet
        train --init-model M --epochs 0``), with a share ``focus_share`` of the episodes started a
        run-up before a tight bend (:func:`~pilotnet_optimized.models.on_policy.focus_start`):
        ``focus_frames`` per circuit and round, learning rate ``focus_learning_rate``.
    :param steering_gains: closed-loop steering gains tried on ``steering_circuits`` after
        training; the smallest that completes the most laps is folded into the model
        (:mod:`~pilotnet_optimized.models.steering`). Empty: none.
    :param steering_circuits: validation circuits of that calibration (a test circuit is refused).
    :param calibration_frames: frames per circuit of the small calibration dataset written when
        the Keras model is reused (int8 needs representative frames; its first two circuits).
    :param methods: optimisation methods, in table order; the first is the comparison's baseline
        (default: :func:`demo_methods`).
    :param seed: dataset and training seed.
    """

    circuits: tuple[str, ...] = ('simple', 'many_curves')
    frames_per_circuit: int = 500
    frames_by_circuit: tuple[tuple[str, int], ...] = ()
    val_circuits: tuple[str, ...] = ()
    val_frames: int = 400
    arch: str = 'pilotnet-nvidia'
    epochs: int = 6
    on_policy_rounds: int = 0
    on_policy_frames: int = 150
    focus_rounds: int = 0
    focus_frames: int = 300
    focus_share: float = 0.7
    focus_learning_rate: float = 3e-4
    steering_gains: tuple[float, ...] = ()
    steering_circuits: tuple[str, ...] = ()
    calibration_frames: int = 200
    methods: tuple[str, ...] = field(default_factory=demo_methods)
    seed: int = 0

    def to_dict(self) -> dict:
        """Return the recipe as JSON-ready data, with the package version."""
        return {**dataclasses.asdict(self), 'package_version': __version__}

    def training_dict(self) -> dict:
        """Return what makes the Keras model: the recipe without the methods and the version."""
        data = dataclasses.asdict(self)
        del data['methods'], data['calibration_frames']
        if not self.focus_rounds:
            # Without focused rounds their settings make nothing: a model trained before they
            # existed (the shipped one's training.json) still matches.
            for key in ('focus_frames', 'focus_share', 'focus_learning_rate', 'focus_rounds'):
                del data[key]
        if not self.steering_gains:
            del data['steering_gains'], data['steering_circuits']
        return json.loads(json.dumps(data))

    def frames_of(self, circuit: str) -> int:
        """Return the frames of a training circuit's dataset."""
        return dict(self.frames_by_circuit).get(circuit, self.frames_per_circuit)


#: The shipped model's recipe: the built-in training circuits and 30 generated ones (randomised
#: frames, the expert's disturbances), validated on three generated validation circuits, then one
#: on-policy round on every training circuit, then a closed-loop steering gain chosen on 26
#: validation circuits (the fit under-steers at hairpin apexes under 3 m radius; a round focused
#: on the tight bends did not mend it, see BENCHMARKS).
DEFAULT_RECIPE = DemoRecipe(
    circuits=('simple', 'many_curves', *(f'gen:{i}' for i in range(30))),
    frames_per_circuit=500,
    frames_by_circuit=(('simple', 1500), ('many_curves', 1500)),
    val_circuits=('gen:10000', 'gen:10001', 'gen:10002'),
    val_frames=400,
    epochs=6,
    on_policy_rounds=1,
    on_policy_frames=150,
    steering_gains=DEFAULT_GAINS,
    steering_circuits=DEFAULT_CIRCUITS,
)


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


def _trained(folder: Path, recipe: DemoRecipe) -> Path | None:
    """Return the Keras model in ``folder`` if the training half of ``recipe`` made it."""
    keras_path = folder / f"{recipe.arch.replace('-', '_')}.keras"
    try:
        stored = json.loads((folder / TRAINING_FILE).read_text())
    except (OSError, ValueError):
        return None
    if stored.get('training') != recipe.training_dict() or not keras_path.is_file():
        return None
    return keras_path


def write_datasets(folder: Path, recipe: DemoRecipe, say: Callable[[str], None] = print,
                   calibration_only: bool = False) -> tuple[list[Path], list[Path]]:
    """
    Write the recipe's training and validation datasets into ``folder/data``.

    With ``calibration_only``, only a small dataset of the first two training circuits
    (``calibration_frames`` each), for int8's calibration when the Keras model is reused. Seeds
    follow the circuits' order (training circuits, then validation ones), so a rebuild writes the
    same frames.
    """
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.dataset import write_dataset
    jobs = [(name, 'train', recipe.frames_of(name)) for name in recipe.circuits]
    jobs += [(name, 'val', recipe.val_frames) for name in recipe.val_circuits]
    if calibration_only:
        jobs = [(name, 'calibration', recipe.calibration_frames) for name, _, _ in jobs[:2]]
    dirs: dict[str, list[Path]] = {'train': [], 'val': [], 'calibration': []}
    for i, (name, use, frames) in enumerate(jobs):
        step_start = time.monotonic()
        out = folder / 'data' / use / name.replace(':', '-')
        write_dataset(get_circuit(name), frames, out, seed=recipe.seed + i, overwrite=True,
                      progress=sys.stdout.isatty())
        dirs[use].append(out)
        say(f'[demo] dataset {name} ({use}, {i + 1}/{len(jobs)}): {frames} frames in'
            f' {time.monotonic() - step_start:.0f} s')
    return dirs['train'] or dirs['calibration'], dirs['val']


def write_eval_dataset(folder: Path, recipe: DemoRecipe,
                       say: Callable[[str], None] = print) -> Path:
    """
    Return a small dataset of the recipe's first validation circuit, written once.

    ``folder/data/eval/<circuit>``, :data:`EVAL_FRAMES` frames (``hairpins``, the built-in
    validation circuit, when the recipe has none): held out from training and calibration, never a
    test circuit.
    """
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.dataset import META_FILE, write_dataset
    name = recipe.val_circuits[0] if recipe.val_circuits else 'hairpins'
    out = folder / 'data' / 'eval' / name.replace(':', '-')
    try:
        meta = json.loads((out / META_FILE).read_text())
    except (OSError, ValueError):
        meta = {}
    source = meta.get('circuit_source', meta.get('circuit'))
    if source == name and meta.get('frames') == EVAL_FRAMES:
        return out
    step_start = time.monotonic()
    write_dataset(get_circuit(name), EVAL_FRAMES, out, seed=recipe.seed + 1000, overwrite=True,
                  progress=sys.stdout.isatty())
    say(f'[demo] dataset {name} (held out, for MSE): {EVAL_FRAMES} frames in'
        f' {time.monotonic() - step_start:.0f} s')
    return out


def train_default_model(folder: Path, recipe: DemoRecipe, data_dirs: list[Path],
                        val_dirs: list[Path], say: Callable[[str], None] = print) -> Path:
    """Train the recipe's Keras model on the datasets; write it and ``training.json`` beside it."""
    from pilotnet_optimized.models.train import train, TrainConfig
    keras_path = folder / f"{recipe.arch.replace('-', '_')}.keras"
    (folder / TRAINING_FILE).unlink(missing_ok=True)
    step_start = time.monotonic()
    result = train(
        data_dirs,
        keras_path,
        TrainConfig(arch=recipe.arch, epochs=recipe.epochs, seed=recipe.seed,
                    on_policy_rounds=recipe.on_policy_rounds,
                    on_policy_frames=recipe.on_policy_frames),
        val=val_dirs or None,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    say(
        f'[demo] trained {keras_path.name}: {result.epochs_run} epochs in'
        f' {time.monotonic() - step_start:.0f} s, held-out MAE v {result.val_mae_v:.2f} m/s, w'
        f' {result.val_mae_w:.3f} rad/s'
    )
    record = {'training': recipe.training_dict(), 'package_version': __version__,
              'result': {k: v for k, v in dataclasses.asdict(result).items() if k != 'history'},
              'log': keras_path.name + '.train.json'}
    if recipe.focus_rounds:
        record.update(focus_default_model(keras_path, recipe, data_dirs, val_dirs, say))
    if recipe.steering_gains:
        record['steering'] = steer_default_model(keras_path, recipe, say)
    (folder / TRAINING_FILE).write_text(json.dumps(record, indent=2) + '\n')
    return keras_path


def steer_default_model(keras_path: Path, recipe: DemoRecipe,
                        say: Callable[[str], None] = print) -> dict:
    """
    Calibrate the trained model's steering gain in closed loop and fold it in, in place.

    Return the calibration (every lap, the summary per gain, the gain chosen) for
    ``training.json``.
    """
    from pilotnet_optimized.models.steering import apply_steering_gain, calibrate_steering_gain
    step_start = time.monotonic()
    say(f'[demo] steering gain: {len(recipe.steering_gains)} gains x'
        f' {len(recipe.steering_circuits)} validation circuits, one lap each')
    calibration = calibrate_steering_gain(keras_path, recipe.steering_circuits,
                                          recipe.steering_gains)
    apply_steering_gain(keras_path, calibration.gain)
    rows = ', '.join(f"{r['gain']:g}: {r['completed']}/{r['circuits']}"
                     for r in calibration.summary())
    say(f'[demo] steering gain {calibration.gain:g} folded into {keras_path.name} ({rows} laps'
        f' completed) in {time.monotonic() - step_start:.0f} s')
    return calibration.to_dict()


def focus_default_model(keras_path: Path, recipe: DemoRecipe, data_dirs: list[Path],
                        val_dirs: list[Path], say: Callable[[str], None] = print) -> dict:
    """
    Run the recipe's focused DAgger rounds on the trained ``keras_path``, in place.

    Its training log stays beside it; the focused rounds' log is ``<model>.focus.train.json``.
    Return what goes into ``training.json`` about them.
    """
    import tf_keras
    from pilotnet_optimized.models.preprocess import Preprocessing
    from pilotnet_optimized.models.train import train, TrainConfig
    first_log = keras_path.with_name(keras_path.name + '.train.json')
    kept = first_log.read_bytes() if first_log.exists() else None
    step_start = time.monotonic()
    result = train(
        data_dirs,
        keras_path,
        TrainConfig(arch=recipe.arch, epochs=0, preprocessing=Preprocessing.for_model(keras_path),
                    # the rounds' seeds go on from the first rounds'
                    seed=recipe.seed + recipe.on_policy_rounds,
                    learning_rate=recipe.focus_learning_rate,
                    on_policy_rounds=recipe.focus_rounds, on_policy_frames=recipe.focus_frames,
                    on_policy_focus=recipe.focus_share),
        val=val_dirs or None,
        verbose=1 if sys.stdout.isatty() else 2,
        model=tf_keras.models.load_model(keras_path, compile=False),
    )
    focus_log = keras_path.with_name(keras_path.name + '.focus.train.json')
    first_log.replace(focus_log)
    if kept is not None:
        first_log.write_bytes(kept)
    say(
        f'[demo] focused round(s) on {keras_path.name}: {result.epochs_run} epochs in'
        f' {time.monotonic() - step_start:.0f} s, held-out MAE v {result.val_mae_v:.2f} m/s, w'
        f' {result.val_mae_w:.3f} rad/s'
    )
    return {'focus_result': {k: v for k, v in dataclasses.asdict(result).items()
                             if k != 'history'},
            'focus_log': focus_log.name}


def ensure_default_models(
    folder: str | Path = DEFAULT_FOLDER,
    recipe: DemoRecipe = DEFAULT_RECIPE,
    rebuild: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, Path]:
    """
    Return the default models (method name -> file).

    Built into ``folder`` unless a build of ``recipe`` is there. Steps, each with progress:
    datasets (``folder/data/``) and training (``folder/<arch>.keras``, skipped when that file and
    its ``training.json`` match the recipe: the shipped model), then optimisation
    (``folder/optimized/``).
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
    (folder / RECIPE_FILE).unlink(missing_ok=True)  # a build cut short must not look complete
    keras_path = None if rebuild else _trained(folder, recipe)
    if keras_path is not None:
        say(f'[demo] optimising the trained {keras_path} ({TRAINING_FILE} beside it; --rebuild'
            f' trains it again): {", ".join(recipe.methods)}')
        data_dirs, _ = write_datasets(folder, recipe, say, calibration_only=True)
    else:
        say(
            f'[demo] building the default models in {folder} (once; later runs reuse them):'
            f' datasets of {len(recipe.circuits)} training circuits, {recipe.arch},'
            f' {recipe.epochs} epochs, {recipe.on_policy_rounds} on-policy round(s)'
            f' (+{recipe.focus_rounds} focused on tight bends), then'
            f' {", ".join(recipe.methods)}'
        )
        data_dirs, val_dirs = write_datasets(folder, recipe, say)
        keras_path = train_default_model(folder, recipe, data_dirs, val_dirs, say)

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
        '--circuits',
        nargs='+',
        metavar='CIRCUIT',
        help='circuits to compare them on, comma- or space-separated (default: '
        f"{', '.join(DEMO_CIRCUITS)} and Behavior Metrics' perfect laps when found)",
    )
    parser.add_argument(
        '--perfect-bags',
        metavar='DIR',
        help="folder of Behavior Metrics' lap-*.bag (default: $PILOTNET_PERFECT_BAGS, else"
        ' ../shared/behavior_metrics/perfect_bags if it exists)',
    )
    parser.add_argument('--laps', type=positive_int, default=1, help='laps per model (default: 1)')
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
    from pilotnet_optimized.evaluate.generalisation import (
        circuit_rows,
        compact_rows,
        COMPACT_COLUMNS,
        compare_on_circuits,
        exit_code,
        summarise,
        write_generalisation,
    )
    from pilotnet_optimized.evaluate.offline import evaluate_folder
    from pilotnet_optimized.evaluate.offline import write_reports as write_evaluation
    from pilotnet_optimized.evaluate.report import markdown_table, print_rows
    from pilotnet_optimized.sim.splits import perfect_bags
    from pilotnet_optimized.store import split_names

    def say(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    circuits = (split_names(args.circuits) if args.circuits
                else [*DEMO_CIRCUITS, *map(str, perfect_bags(args.perfect_bags))])
    models = ensure_default_models(args.folder, rebuild=args.rebuild, say=say)
    eval_dir = write_eval_dataset(Path(args.folder), DEFAULT_RECIPE, say)
    folders = {p.parent for p in models.values()}
    offline = evaluate_folder(next(iter(folders)), [eval_dir], methods=list(models),
                              progress=say) if len(folders) == 1 else None
    say(f'[demo] driving {len(models)} models {args.laps} lap(s) of each of {len(circuits)}'
        ' held-out circuits in lock-step')
    comparisons = compare_on_circuits([str(p) for p in models.values()], circuits,
                                      laps=args.laps, progress=say)
    paths = write_generalisation(comparisons, args.out)
    if offline is not None:
        written = write_evaluation(offline, args.out)
        paths.update({f'evaluation.{k}': p for k, p in written.items()})
    rows = circuit_rows(comparisons)
    summary = summarise(rows)
    compact = compact_rows(summary, offline['rows'] if offline else ())
    paths['demo.md'] = Path(args.out) / 'demo.md'
    paths['demo.md'].write_text(markdown_table(compact, COMPACT_COLUMNS) + '\n')
    if args.json:
        print(json.dumps({'summary': summary, 'compact': compact, 'rows': rows}, indent=2))
    else:
        print_rows(compact, columns=COMPACT_COLUMNS)
        say(f'[demo] p50: batch 1, one thread, offline; MSE on {EVAL_FRAMES} frames of'
            f' {eval_dir.name} (normalised labels); circuits: completed of driven, lock-step')
        say(f"[demo] full tables: {', '.join(str(p) for p in paths.values())} (and each"
            " circuit's compare.* beside them)")
    return exit_code(rows)
