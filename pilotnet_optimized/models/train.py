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
Training PilotNet on simulator datasets.

Fixed seed, augmentation, oversampled bends, early stopping.

Augmentation follows DeepLearningStudio's recipe on the resized frames: horizontal flip with w
negated, photometric changes (brightness, contrast, per-channel tint, gamma, blur), and sharp turns
repeated so that the long straights do not teach the model that steering never matters.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
import json
import math
import os
from pathlib import Path
import time
from typing import TYPE_CHECKING

import cv2
import numpy as np
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.models.data import (
    folders_of_test_circuits,
    Frames,
    load_datasets,
)
from pilotnet_optimized.models.preprocess import normalise_input, normalise_labels, Preprocessing

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras

__all__ = [
    'TrainConfig',
    'TrainResult',
    'augment_batch',
    'oversample_indices',
    'make_sequence',
    'train',
    'split_holdout',
    'add_arguments',
    'run',
]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (saved next to the model)."""

    arch: str = 'pilotnet'
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 3
    seed: int = 42
    flip: bool = True
    photometric: bool = True
    # |w| thresholds (rad/s): a frame is repeated once more for each threshold its |w| reaches.
    oversample_thresholds: tuple[float, ...] = (0.3, 1.0, 2.0)
    holdout_fraction: float = 0.1
    head_units: int | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    #: DAgger rounds after the first fit (:mod:`~pilotnet_optimized.models.on_policy`): the model
    #: drives the training circuits, every frame it sees is labelled with the expert's command for
    #: the car's pose, and it is trained further on those frames with the original ones.
    on_policy_rounds: int = 0
    #: Frames the model drives per training circuit and round.
    on_policy_frames: int = 1000
    #: Maximum epochs of each round's fit (early stopping as in the first fit).
    on_policy_epochs: int = 3
    #: Share of on-policy episodes that start a run-up before a tight bend (the apexes where a
    #: model fails; :func:`~pilotnet_optimized.models.on_policy.focus_start`).
    on_policy_focus: float = 0.0


@dataclass(frozen=True)
class TrainResult:
    """What a run produced."""

    model_path: str
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    val_mae_v: float
    val_mae_w: float
    train_frames: int
    val_frames: int
    seconds: float
    history: dict
    on_policy_frames: int = 0


def oversample_indices(labels: np.ndarray, thresholds: tuple[float, ...]) -> np.ndarray:
    """Frame indices with each frame repeated once, plus once per threshold its |w| reaches."""
    repeats = (
        1 + sum((np.abs(labels[:, 1]) >= t).astype(int) for t in thresholds)
        if thresholds
        else np.ones(len(labels), int)
    )
    return np.repeat(np.arange(len(labels)), repeats)


def augment_batch(
    images: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    flip: bool = True,
    photometric: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Augmented copies of a batch of resized uint8 frames and their physical (v, w) labels."""
    images = images.copy()
    labels = labels.copy()
    if flip:
        # Mirrored road, mirrored command: turning left becomes turning right.
        mirror = rng.random(len(images)) < 0.5
        images[mirror] = images[mirror, :, ::-1]
        labels[mirror, 1] = -labels[mirror, 1]
    if photometric:
        levels = np.arange(256, dtype=np.float32) / 255.0
        for i in range(len(images)):
            if rng.random() < 0.2:
                continue  # keep some frames as rendered
            gain = rng.uniform(0.6, 1.4)
            contrast = rng.uniform(0.7, 1.3)
            gamma = rng.uniform(0.7, 1.4)
            tint = rng.uniform(0.9, 1.1, 3)
            lut = np.empty((256, 1, 3), np.uint8)
            for ch in range(3):
                curve = ((levels**gamma - 0.5) * contrast + 0.5) * gain * tint[ch]
                lut[:, 0, ch] = np.clip(curve * 255.0, 0, 255)
            images[i] = cv2.LUT(images[i], lut)
            if rng.random() < 0.2:
                images[i] = cv2.GaussianBlur(images[i], (3, 3), 0)
    return images, labels


def make_sequence(frames: Frames, cfg: TrainConfig, shuffle: bool = True, augment: bool = True):
    """
    Make a tf_keras ``Sequence`` of batches over ``frames``.

    Each batch is (normalised input, normalised label).
    """
    import tf_keras

    class FrameSequence(tf_keras.utils.Sequence):

        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(cfg.seed)
            self.base = (
                oversample_indices(frames.labels, cfg.oversample_thresholds)
                if augment
                else np.arange(len(frames))
            )
            self.order = self.base.copy()
            self.on_epoch_end()

        def __len__(self) -> int:
            return math.ceil(len(self.order) / cfg.batch_size)

        def __getitem__(self, k: int):
            idx = np.sort(self.order[k * cfg.batch_size:(k + 1) * cfg.batch_size])
            images, labels = frames.images[idx], frames.labels[idx]
            if augment:
                images, labels = augment_batch(images, labels, self.rng, cfg.flip, cfg.photometric)
            return normalise_input(images, cfg.preprocessing), normalise_labels(labels)

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(self.base) if shuffle else self.base

    return FrameSequence()


def split_holdout(frames: Frames, fraction: float) -> tuple[Frames, Frames]:
    """
    Last ``fraction`` of the frames as validation.

    A contiguous tail, so neighbouring (nearly identical) frames do not end up on both sides.
    """
    n_val = max(1, int(round(len(frames) * fraction)))
    cut = len(frames) - n_val
    return (Frames(frames.images[:cut], frames.labels[:cut], frames.sources),
            Frames(frames.images[cut:], frames.labels[cut:], frames.sources))


def _on_policy_rounds(model: tf_keras.Model, data: list[str | Path], train_frames: Frames,
                      val_frames: Frames, cfg: TrainConfig, callbacks: list, hist: dict,
                      verbose: int) -> tuple[Frames, int]:
    """
    Run ``cfg.on_policy_rounds`` DAgger rounds on ``model``; return the grown frames and count.

    Each round the model drives every training circuit (from the datasets' meta.json), is
    corrected by the expert on every frame it saw, and is fitted again on all frames so far.
    ``hist`` is extended with each round's epochs.
    """
    from pilotnet_optimized.models.data import dataset_circuits
    from pilotnet_optimized.models.on_policy import collect_on_policy, keras_policy
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.splits import check_not_test

    names = dataset_circuits(data)
    if not names:
        raise PilotnetError(
            'on-policy rounds drive the circuits of the training data, read from each dataset '
            "folder's meta.json: none found (train with --on-policy-rounds 0)"
        )
    check_not_test(names, 'driven for on-policy training frames')
    circuits = [get_circuit(name) for name in names]
    images, labels, sources = [train_frames.images], [train_frames.labels], train_frames.sources
    added = 0
    for round_ in range(cfg.on_policy_rounds):
        seen = collect_on_policy(keras_policy(model, cfg.preprocessing), circuits,
                                 cfg.on_policy_frames, cfg.preprocessing, seed=cfg.seed + round_,
                                 focus=cfg.on_policy_focus)
        images.append(seen.images)
        labels.append(seen.labels)
        added += len(seen)
        sources = sources + seen.sources
        train_frames = Frames(np.concatenate(images), np.concatenate(labels), sources)
        if verbose:
            print(f'on-policy round {round_ + 1}/{cfg.on_policy_rounds}: {len(seen)} frames the '
                  f"model drove ({', '.join(c.name for c in circuits)}); training on "
                  f'{len(train_frames)}', flush=True)
        _fit(model, train_frames, val_frames, cfg, cfg.on_policy_epochs, callbacks, hist, verbose)
    return train_frames, added


def _fit(model: tf_keras.Model, train_frames: Frames, val_frames: Frames, cfg: TrainConfig,
         epochs: int, callbacks: list, hist: dict, verbose: int) -> None:
    """Fit ``model`` for at most ``epochs``; extend ``hist`` with each epoch's figures."""
    more = model.fit(
        make_sequence(train_frames, cfg),
        validation_data=make_sequence(val_frames, cfg, False, False),
        epochs=epochs,
        callbacks=callbacks,
        verbose=verbose,
    )
    for key, values in more.history.items():
        hist.setdefault(key, []).extend(float(x) for x in values)


def train(data: list[str | Path], out: str | Path, cfg: TrainConfig = TrainConfig(),
          val: list[str | Path] | None = None, allow_test_data: bool = False, verbose: int = 1,
          limit_per_folder: int | None = None, model: tf_keras.Model | None = None) -> TrainResult:
    """
    Train a model on the dataset folders under ``data`` and save it to ``out`` (``.keras``).

    :param val: validation dataset folders; without them the last ``holdout_fraction`` of the data
        is held out.
    :param allow_test_data: train on folders the dataset writer marked as the test split (refused
        otherwise, so a test score is never on training circuits).
    :param model: start from this model instead of a fresh ``cfg.arch`` one.
    """
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    from pilotnet_optimized.models.pilotnet import build_model, build_pilotnet
    import tensorflow as tf
    import tf_keras

    if cfg.on_policy_rounds < 0 or cfg.on_policy_frames < 1 or cfg.on_policy_epochs < 1:
        raise PilotnetError(
            f'on-policy rounds {cfg.on_policy_rounds}, frames {cfg.on_policy_frames}, epochs '
            f'{cfg.on_policy_epochs}: give rounds >= 0 and at least one frame and one epoch'
        )
    if cfg.epochs < 0 or (cfg.epochs == 0 and (model is None or not cfg.on_policy_rounds)):
        raise PilotnetError(
            f'epochs {cfg.epochs}: give at least 1, or 0 to only continue a model'
            ' (--init-model) with on-policy rounds'
        )
    if not 0.0 <= cfg.on_policy_focus <= 1.0:
        raise PilotnetError(
            f'on-policy focus {cfg.on_policy_focus}: give a share between 0 and 1'
        )
    out = Path(out)
    if out.suffix != '.keras':
        raise PilotnetError(
            f'{out}: the trained model is saved in Keras format; give a .keras file name'
        )
    if not allow_test_data:
        test_dirs = folders_of_test_circuits(data)
        if test_dirs:
            raise PilotnetError(
                f"refusing to train on test-split data ({', '.join(test_dirs)}); "
                'pass --allow-test-data to do it anyway'
            )
    tf_keras.utils.set_random_seed(cfg.seed)
    train_frames = load_datasets(
        data, cfg.preprocessing, progress=verbose > 0, limit_per_folder=limit_per_folder
    )
    if val:
        val_frames = load_datasets(
            val, cfg.preprocessing, progress=verbose > 0, limit_per_folder=limit_per_folder
        )
    else:
        train_frames, val_frames = split_holdout(train_frames, cfg.holdout_fraction)
    if model is None:
        model = (
            build_pilotnet(cfg.preprocessing.input_shape, cfg.head_units)
            if cfg.head_units
            else build_model(cfg.arch, cfg.preprocessing.input_shape)
        )
    model.compile(
        optimizer=tf_keras.optimizers.Adam(cfg.learning_rate), loss='mse', metrics=['mae']
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = out.with_name(out.stem + '.best.keras')
    callbacks = [
        tf_keras.callbacks.EarlyStopping(
            monitor='val_loss', patience=cfg.patience, restore_best_weights=True
        ),
        # The best model so far is on disk after every epoch: an interrupted run still leaves a
        # usable model.
        tf_keras.callbacks.ModelCheckpoint(
            str(checkpoint), monitor='val_loss', save_best_only=True
        ),
        tf_keras.callbacks.ReduceLROnPlateau(
            monitor='val_loss', factor=0.3, patience=max(1, cfg.patience - 1)
        ),
    ]
    if verbose:
        print(
            f'training {model.name} ({model.count_params():,} parameters) on {len(train_frames)}'
            f' frames (+ oversampled bends, flips, photometric), validating on {len(val_frames)}',
            flush=True,
        )
    start = time.perf_counter()
    hist: dict[str, list[float]] = {}
    if cfg.epochs:
        _fit(model, train_frames, val_frames, cfg, cfg.epochs, callbacks, hist, verbose)
    on_policy = 0
    if cfg.on_policy_rounds:
        train_frames, on_policy = _on_policy_rounds(model, data, train_frames, val_frames, cfg,
                                                    callbacks, hist, verbose)
    seconds = time.perf_counter() - start
    val_pred = model.predict(
        normalise_input(val_frames.images, cfg.preprocessing), batch_size=256, verbose=0
    )
    from pilotnet_optimized.models.preprocess import denormalise_labels
    mae = np.abs(denormalise_labels(val_pred) - val_frames.labels).mean(axis=0)
    tmp = out.with_name(out.stem + '.tmp.keras')
    model.save(tmp)
    tmp.replace(out)
    checkpoint.unlink(missing_ok=True)
    cfg.preprocessing.save(out)
    best_epoch = int(np.argmin(hist['val_loss'])) + 1
    result = TrainResult(
        model_path=str(out),
        epochs_run=len(hist['val_loss']),
        best_epoch=best_epoch,
        best_val_loss=float(min(hist['val_loss'])),
        val_mae_v=float(mae[0]),
        val_mae_w=float(mae[1]),
        train_frames=len(train_frames),
        val_frames=len(val_frames),
        seconds=round(seconds, 1),
        history=hist,
        on_policy_frames=on_policy,
    )
    report = {
        'result': asdict(result),
        'config': {**asdict(cfg), 'preprocessing': cfg.preprocessing.to_dict()},
        'train_data': list(train_frames.sources),
        'val_data': list(val_frames.sources),
        'tensorflow': tf.__version__,
    }
    out.with_name(out.name + '.train.json').write_text(json.dumps(report, indent=2) + '\n')
    return result


# -- command line ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pilotnet train`` arguments."""
    p = parser
    p.add_argument(
        '--data', nargs='+', required=True, help='dataset folders (or folders above them)'
    )
    p.add_argument(
        '--val', nargs='+', help='validation dataset folders (default: hold out the last 10 %%)'
    )
    p.add_argument('--out', required=True, help='model file to write (.keras)')
    p.add_argument('--arch', default='pilotnet', choices=['pilotnet', 'pilotnet-nvidia'],
                   help="architecture (default: pilotnet, the seed's 17 M-parameter model)")
    p.add_argument(
        '--head-units',
        type=int,
        help="width of the first dense layer (default: the architecture's)",
    )
    p.add_argument(
        '--epochs', type=int, default=8,
        help='maximum epochs (default: 8; early stopping); 0 with --init-model and on-policy'
        ' rounds: only the rounds, continuing that model',
    )
    p.add_argument(
        '--init-model',
        metavar='KERAS',
        help='continue training this .keras model (its preprocessing sidecar too) instead of a'
        ' new one',
    )
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=1e-3, help='Adam learning rate (default: 1e-3)')
    p.add_argument(
        '--patience', type=int, default=3, help='early-stopping patience in epochs (default: 3)'
    )
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--no-crop', action='store_true', help='use the whole frame, not rows 240:480')
    p.add_argument(
        '--normalisation',
        default='none',
        choices=['none', 'unit', 'imagenet'],
        help='input normalisation outside the model (default: none; the model has its own)',
    )
    p.add_argument(
        '--limit', type=int, help='use only the first N frames of each folder (quick trials)'
    )
    p.add_argument(
        '--on-policy-rounds',
        type=int,
        default=0,
        metavar='N',
        help='DAgger rounds after the first fit: the model drives the training circuits, the'
        ' expert labels every frame it saw, training goes on with them (default: 0)',
    )
    p.add_argument(
        '--on-policy-frames',
        type=int,
        default=1000,
        metavar='N',
        help='frames driven per training circuit and round (default: 1000)',
    )
    p.add_argument(
        '--on-policy-focus',
        type=float,
        default=0.0,
        metavar='SHARE',
        help='share of on-policy episodes started a run-up before a tight bend (under 6 m'
        ' radius), where models fail (default: 0)',
    )
    p.add_argument(
        '--allow-test-data', action='store_true', help='allow training on test-split folders'
    )
    p.add_argument(
        '--json', action='store_true', help='print JSON instead of a table (and no progress bar)'
    )


def run(args: argparse.Namespace) -> int:
    """
    ``pilotnet train``: train, write the model and its preprocessing sidecar.

    Print the summary.
    """
    from pilotnet_optimized.evaluate.report import print_mapping
    prep = Preprocessing(crop_top=None if args.no_crop else 240, normalisation=args.normalisation)
    model = None
    if args.init_model:
        init = Path(args.init_model)
        if init.suffix != '.keras' or not init.is_file():
            raise PilotnetError(f'--init-model {init}: give an existing .keras model file')
        import tf_keras
        model = tf_keras.models.load_model(init, compile=False)
        prep = Preprocessing.for_model(init)  # the frames it was trained on
    cfg = TrainConfig(
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patience=args.patience,
        seed=args.seed,
        head_units=args.head_units,
        preprocessing=prep,
        on_policy_rounds=args.on_policy_rounds,
        on_policy_frames=args.on_policy_frames,
        on_policy_focus=args.on_policy_focus,
    )
    result = train(args.data, args.out, cfg, val=args.val, allow_test_data=args.allow_test_data,
                   verbose=0 if args.json else 1, limit_per_folder=args.limit, model=model)
    print_mapping({k: v for k, v in result.__dict__.items() if k != 'history'}, args.json)
    return 0
