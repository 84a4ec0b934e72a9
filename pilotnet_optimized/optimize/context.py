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
What every optimisation method shares in one run.

The settings, the context (reference model, data, fine-tuning, calibration input), distillation,
and :func:`fresh_copy` for the tfmot wrappers.

The per-method modules (:mod:`.qat`, :mod:`.pruning`, :mod:`.clustering`, :mod:`.collaborative`,
:mod:`.structured`) and the pipeline import this module; the method table (:mod:`.methods`) imports
them only when a producer runs, so nothing here imports the table back. Importing it is cheap:
TensorFlow, tfmot and the training code are imported only when a model is loaded or fine-tuned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
import difflib
from pathlib import Path
from typing import Any, TYPE_CHECKING

import numpy as np
from pilotnet_optimized.errors import one_line, PilotnetError
from pilotnet_optimized.models.preprocess import Preprocessing

if TYPE_CHECKING:  # pragma: no cover
    from pilotnet_optimized.models.data import Frames
    import tf_keras

__all__ = [
    'CALIBRATION',
    'FINE_TUNING',
    'OptimizeSettings',
    'OptimizeContext',
    'distillation_sequence',
    'fresh_copy',
]

#: ``needs_data`` values: what the method uses the training data for.
CALIBRATION = 'calibration'
FINE_TUNING = 'fine-tuning'


@dataclass(frozen=True)
class OptimizeSettings:
    """
    Every knob of the optimisation run (written to ``manifest.json``).

    :param finetune_epochs: epochs of fine-tuning for QAT, pruning, clustering and their
        combinations (the seed used 2).
    :param max_finetune_frames: fine-tune on a random subset of at most this many training frames
        (fixed seed), so that ``--methods all`` on the 17 M-parameter model stays within about half
        an hour on two cores (CQAT and PCQAT take a third each); ``None`` uses every frame. With
        2000, pruning and ``slim`` came out 7 % and 4 % worse on held-out data than with 3000.
    :param calibration_frames: representative samples for the integer modes (evenly spaced through
        the data).
    :param learning_rate: Adam learning rate for fine-tuning an already trained model.
    :param initial_sparsity: pruning schedule start (the seed: 50 %).
    :param final_sparsity: pruning schedule end (the seed: 80 %).
    :param prune_conv: prune the Conv2D kernels too, as the seed did (default: Dense only; see
        :data:`~pilotnet_optimized.optimize.pruning.PRUNED_LAYERS`).
    :param clusters: weight clusters per Dense kernel for CQAT and PCQAT (Conv2D kernels stay
        unclustered).
    :param slim_units: dense1 units kept by structured pruning (``slim``; the seed's model has
        1164).
    :param slim_quantization: TFLite mode for ``slim``: ``'dynamic'``, ``'int8-fallback'``,
        ``'float16'``...
    :param slim_criterion: how dense1 units are ranked: ``'activation'`` (mean activation on
        training frames times the L2 norm of the unit's outgoing weights), ``'l2'`` (incoming
        weights) or ``'l2-out'`` (incoming times outgoing).
    :param slim_epochs: fine-tuning epochs for ``slim`` (default: twice ``finetune_epochs``:
        removing most of dense1 needs more recovery than pruning within it).
    :param slim_learning_rate: learning rate for ``slim``'s fine-tuning.
    :param teacher_weight: knowledge distillation in the fine-tuning of QAT, pruning and
        clustering: targets are ``w * reference + (1 - w) * labels``, the reference model seeing
        the same augmented frame. 1 (pure distillation) by default; 0 is the seed (labels), which
        pulls an early-stopped model towards the training circuits: measured on the trained model,
        QAT's held-out MSE was 1.21 x the baseline's with labels and 1.00 x distilled.
    :param slim_teacher_weight: the same for ``slim`` (labels and teacher at 0.5 gave 1.09 x, pure
        distillation 1.02 x).
    :param slim_on_policy_rounds: after distillation, rounds of driving the training circuits with
        the student and fine-tuning on the frames it saw as well
        (:mod:`~pilotnet_optimized.models.on_policy`, DAgger); 0 turns it off.
    :param slim_on_policy_frames: frames per training circuit and round.
    :param tiny_epochs: distillation epochs of the ``tiny`` student on all training frames.
    :param tiny_learning_rate: learning rate for the ``tiny`` student (trained from scratch).
    :param tiny_on_policy_rounds: DAgger rounds for ``tiny`` (as ``slim_on_policy_rounds``).
    :param tiny_on_policy_frames: frames per training circuit and round for ``tiny``.
    :param eval_frames: at most this many validation frames for the MSE and agreement figures in
        the manifest.
    """

    finetune_epochs: int = 2
    max_finetune_frames: int | None = 3000
    calibration_frames: int = 200
    learning_rate: float = 1e-4
    batch_size: int = 64
    seed: int = 42
    initial_sparsity: float = 0.5
    final_sparsity: float = 0.8
    prune_conv: bool = False
    clusters: int = 16
    slim_units: int = 96
    slim_quantization: str = 'dynamic'
    slim_criterion: str = 'activation'
    slim_epochs: int | None = None
    slim_learning_rate: float = 3e-4
    slim_teacher_weight: float = 1.0
    slim_on_policy_rounds: int = 2
    slim_on_policy_frames: int = 1500
    teacher_weight: float = 1.0
    tiny_epochs: int = 8
    tiny_learning_rate: float = 2e-3
    tiny_on_policy_rounds: int = 1
    tiny_on_policy_frames: int = 150
    eval_frames: int = 1000

    def __post_init__(self) -> None:
        if self.finetune_epochs < 1:
            raise PilotnetError(
                'finetune_epochs must be at least 1 (QAT ranges and pruning masks need training '
                'steps)'
            )
        if self.max_finetune_frames is not None and self.max_finetune_frames < self.batch_size:
            raise PilotnetError(
                f'max_finetune_frames must be at least one batch ({self.batch_size})'
            )
        if not 0.0 <= self.initial_sparsity <= self.final_sparsity < 1.0:
            raise PilotnetError('need 0 <= initial_sparsity <= final_sparsity < 1')
        if self.clusters < 2:
            raise PilotnetError('clusters must be at least 2')
        if self.slim_units < 1:
            raise PilotnetError('slim_units must be at least 1')
        if self.slim_on_policy_rounds < 0 or self.slim_on_policy_frames < 1:
            raise PilotnetError(
                'slim_on_policy_rounds must be at least 0 and slim_on_policy_frames at least 1'
            )
        if self.slim_criterion not in ('activation', 'l2', 'l2-out'):
            raise PilotnetError(f"slim_criterion must be 'activation', 'l2' or 'l2-out', not "
                                f'{self.slim_criterion!r}')
        if not (0.0 <= self.slim_teacher_weight <= 1.0 and 0.0 <= self.teacher_weight <= 1.0):
            raise PilotnetError('teacher weights must be within 0..1')

    @classmethod
    def from_options(cls, **options: Any) -> OptimizeSettings:
        """
        Build settings from keyword options.

        An unknown name is an error naming the valid ones.
        """
        known = {f.name for f in fields(cls)}
        for key in options:
            if key not in known:
                near = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ''
                raise PilotnetError(f"unknown optimisation option '{key}'{hint}: choose from "
                                    f"{', '.join(sorted(known))}")
        return cls(**options)

    @property
    def slim_finetune_epochs(self) -> int:
        return self.slim_epochs if self.slim_epochs is not None else 2 * self.finetune_epochs


@dataclass
class OptimizeContext:
    """
    What producers share in one run.

    The reference model, the data, the settings, and intermediate models that several methods start
    from (the pruned model feeds ``pruning``, ``pruning-quant``, ``pqat`` and ``pcqat``), each
    loaded or made once.
    """

    keras_path: Path
    out_dir: Path
    train_data: list[Path] | None = None
    val_data: list[Path] | None = None
    settings: OptimizeSettings = field(default_factory=OptimizeSettings)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def preprocessing(self) -> Preprocessing:
        """
        Return the reference model's preprocessing, as its sidecar records it.

        It is written beside every output.
        """
        if 'preprocessing' not in self._cache:
            self._cache['preprocessing'] = Preprocessing.for_model(self.keras_path)
        return self._cache['preprocessing']

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """
        Return ``make()``, called once per run and cached under ``key``.

        A failure is remembered too, so dependent methods fail fast with the same message instead
        of repeating a long fine-tuning run.
        """
        if key not in self._cache:
            try:
                self._cache[key] = make()
            except Exception as err:
                self._cache[key] = err
                raise
        value = self._cache[key]
        if isinstance(value, Exception):
            raise PilotnetError(f'{key} failed earlier in this run: {one_line(value)}') from value
        return value

    def model(self) -> tf_keras.Model:
        """
        Return the reference model, loaded once.

        Producers must not train it: every tfmot helper here works on a copy with new layers
        (:func:`fresh_copy`), because tfmot's wrappers keep the layer objects they wrap and
        fine-tuning would change the reference too.
        """
        return self.cached('model', self._load_model)

    def _load_model(self) -> tf_keras.Model:
        import tf_keras

        if not self.keras_path.is_file():
            raise PilotnetError(f'{self.keras_path}: model not found')
        try:
            return tf_keras.models.load_model(self.keras_path, compile=False)
        except Exception as err:  # Keras raises ValueError, OSError, TypeError... for bad files
            raise PilotnetError(
                f'{self.keras_path}: not a loadable tf_keras model ({one_line(err)})'
            ) from err

    def train_frames(self) -> Frames:
        """Return all training frames (loaded once, through the dataset cache)."""
        def load() -> Frames:
            from pilotnet_optimized.models.data import load_datasets
            if not self.train_data:
                raise PilotnetError('this method needs training data: pass --data DATASET_FOLDER')
            return load_datasets(self.train_data, self.preprocessing, progress=False)
        return self.cached('train_frames', load)

    def finetune_frames(self) -> Frames:
        """
        Return a random subset of the training frames (``max_finetune_frames``, fixed seed).

        The same for every method so they are comparable.
        """
        def pick() -> Frames:
            from pilotnet_optimized.models.data import Frames
            frames = self.train_frames()
            cap = self.settings.max_finetune_frames
            if cap is None or len(frames) <= cap:
                return frames
            idx = np.sort(
                np.random.default_rng(self.settings.seed).choice(len(frames), cap, replace=False)
            )
            return Frames(frames.images[idx], frames.labels[idx], frames.sources)
        return self.cached('finetune_frames', pick)

    def val_frames(self) -> Frames | None:
        """
        Return up to ``eval_frames`` validation frames, evenly spaced.

        ``None`` without validation data.
        """
        def load() -> Frames | None:
            from pilotnet_optimized.models.data import Frames, load_datasets
            if not self.val_data:
                return None
            frames = load_datasets(self.val_data, self.preprocessing, progress=False)
            if len(frames) > self.settings.eval_frames:
                idx = (
                    np.linspace(0, len(frames) - 1, self.settings.eval_frames).round().astype(int)
                )
                frames = Frames(frames.images[idx], frames.labels[idx], frames.sources)
            return frames
        return self.cached('val_frames', load)

    def calibration_frames(self) -> Frames:
        """
        Return ``calibration_frames`` training frames.

        Evenly spaced through the data (the integer modes calibrate on them; the pipeline checks
        calibrated outputs on them when there is no validation data).
        """
        from pilotnet_optimized.models.data import Frames
        frames = self.train_frames()
        n = min(len(frames), self.settings.calibration_frames)
        idx = np.linspace(0, len(frames) - 1, n).round().astype(int)
        return Frames(frames.images[idx], frames.labels[idx], frames.sources)

    def representative(self) -> np.ndarray:
        """
        Return the calibration input.

        That is :meth:`calibration_frames` preprocessed exactly as at inference (the seed
        calibrated on raw images).
        """
        from pilotnet_optimized.models.preprocess import normalise_input
        return normalise_input(self.calibration_frames().images, self.preprocessing)

    def fit(
        self,
        model: tf_keras.Model,
        epochs: int | None = None,
        learning_rate: float | None = None,
        callbacks: Iterable[Any] = (),
        teacher_weight: float | None = None,
        frames: Frames | None = None,
    ) -> dict[str, list[float]]:
        """
        Fine-tune ``model`` in place on :meth:`finetune_frames`.

        Augmented as in training, MSE loss, Adam, with BatchNormalization layers frozen.

        :param teacher_weight: distil from the reference model: targets become
            ``teacher_weight * reference(x) + (1 - teacher_weight) * labels`` on the same augmented
            batch (default: the settings' ``teacher_weight``).
        :param frames: fine-tune on these instead of :meth:`finetune_frames`.
        :returns: the Keras history.
        """
        from pilotnet_optimized.models.train import make_sequence, TrainConfig
        import tf_keras

        cfg = TrainConfig(batch_size=self.settings.batch_size, seed=self.settings.seed,
                          preprocessing=self.preprocessing)
        sequence = make_sequence(
            frames if frames is not None else self.finetune_frames(),
            cfg,
            shuffle=True,
            augment=True,
        )
        weight = self.settings.teacher_weight if teacher_weight is None else teacher_weight
        if weight > 0:
            sequence = distillation_sequence(sequence, self.model(), weight)
        lr = self.settings.learning_rate if learning_rate is None else learning_rate
        # Keep the input normalisation's statistics frozen (a frozen BatchNormalization runs in
        # inference mode): fine-tuning then sees the activations the reference model and the QAT
        # range calibration saw, and small fine-tuning batches cannot drift the statistics the
        # whole training set set.
        frozen = [
            layer
            for layer in model.layers
            if type(getattr(layer, 'layer', layer)).__name__ == 'BatchNormalization'
            and layer.trainable
        ]
        for layer in frozen:
            layer.trainable = False
        try:
            model.compile(optimizer=tf_keras.optimizers.Adam(lr), loss='mse')
            tf_keras.utils.set_random_seed(self.settings.seed)
            history = model.fit(sequence, epochs=epochs or self.settings.finetune_epochs,
                                callbacks=list(callbacks), verbose=0)
        finally:
            # Unfreeze so the saved config stays as trained: tfmot's collaborative schemes count a
            # layer without trainable weights as quantisable and then fail on BatchNormalization.
            for layer in frozen:
                layer.trainable = True
        return {k: [float(v) for v in vals] for k, vals in history.history.items()}

    def finetune_parameters(self) -> dict[str, Any]:
        """Return what the manifest records about a fine-tuning run."""
        s = self.settings
        return {
            'finetune_epochs': s.finetune_epochs,
            'finetune_frames': len(self.finetune_frames()),
            'learning_rate': s.learning_rate,
            'teacher_weight': s.teacher_weight,
        }

    def steps_per_epoch(self) -> int:
        """Return the training steps in one fine-tuning epoch (pruning schedules are in steps)."""
        from pilotnet_optimized.models.train import oversample_indices, TrainConfig
        cfg = TrainConfig()
        n = len(oversample_indices(self.finetune_frames().labels, cfg.oversample_thresholds))
        return -(-n // self.settings.batch_size)


def distillation_sequence(sequence: Any, teacher: tf_keras.Model, teacher_weight: float) -> Any:
    """
    Wrap a ``(x, y)`` Keras Sequence so its targets blend the teacher's outputs and the labels.

    Targets become ``teacher_weight * teacher(x) + (1 - w) * y``. The teacher sees the same
    augmented batch as the student, so flips and photometric changes are distilled too, and its
    soft targets carry what the full model learnt from all the training data.
    """
    import tf_keras

    w = np.float32(teacher_weight)

    class Distilled(tf_keras.utils.Sequence):

        def __len__(self) -> int:
            return len(sequence)

        def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
            x, y = sequence[k]
            soft = np.asarray(teacher(x, training=False), np.float32)
            return x, w * soft + (1 - w) * y

        def on_epoch_end(self) -> None:
            sequence.on_epoch_end()

    return Distilled()


def fresh_copy(model: tf_keras.Model, wrap: Callable[[Any], Any] | None = None) -> tf_keras.Model:
    """
    Return a copy of ``model`` with new layer objects and the same weights.

    Optionally with some layers wrapped.

    ``tf_keras.models.clone_model(model, clone_function=...)`` hands the clone function the
    *original* layer objects, and tfmot's wrappers keep them: the wrapped model would share (and
    train) the original's weights. Rebuilding from the config first gives every method its own
    layers. (``clone_model`` itself fails on ``strip_pruning``'s output, "Graph disconnected"; the
    config round trip does not.)

    :param wrap: called with each fresh layer (weights already set); returns the layer or a wrapper
        of it.
    """
    import tf_keras

    copy = tf_keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    if wrap is None:
        return copy
    return tf_keras.models.clone_model(copy, clone_function=wrap)
