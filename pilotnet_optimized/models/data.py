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
Reading DeepLearningStudio-layout datasets (``N.png`` + ``data.csv``) into model-ready arrays.

Decoded folders are cached.

Decoding 640x480 PNGs dominates a training epoch, so each folder's frames are cropped and resized
once (by :func:`~pilotnet_optimized.models.preprocess.resize_frame`, the same step inference runs)
and cached as uint8 next to the data, keyed by the preprocessing settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.models.preprocess import Preprocessing, resize_frame
from pilotnet_optimized.sim.dataset import LABELS_FILE, META_FILE, read_labels
from tqdm import tqdm

__all__ = ['Frames', 'find_dataset_dirs', 'load_frames', 'load_datasets', 'dataset_split']

CACHE_DIR = '.pilotnet_cache'


@dataclass(frozen=True)
class Frames:
    """Resized frames (N x h x w x 3 uint8) and their physical labels (N x 2: v, w)."""

    images: np.ndarray
    labels: np.ndarray
    sources: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)


def find_dataset_dirs(paths: list[str | Path]) -> list[Path]:
    """
    Dataset folders under each path.

    The path itself if it holds ``data.csv``, else every folder below it that does (so
    ``data/train`` finds ``data/train/simple`` and ``data/train/many_curves``).
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise PilotnetError(f'dataset not found: {p}')
        if (p / LABELS_FILE).is_file():
            found.append(p)
            continue
        below = sorted(d.parent for d in p.rglob(LABELS_FILE) if CACHE_DIR not in d.parts)
        if not below:
            raise PilotnetError(f'{p}: no dataset ({LABELS_FILE}) in it or below it')
        found.extend(below)
    return found


def dataset_split(folder: Path) -> str | None:
    """Return the split (train/val/test) the dataset writer recorded for a folder, if any."""
    meta = folder / META_FILE
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text()).get('split')
    except ValueError:
        return None


def dataset_circuits(data: Sequence[str | Path]) -> list[str]:
    """
    Return the circuits the dataset folders under ``data`` were recorded on, in first-seen order.

    Each is read from the folder's meta.json (its ``circuit_source`` where the writer recorded
    one, else its ``circuit``); a folder without one is skipped.
    """
    names: list[str] = []
    for folder in find_dataset_dirs(list(data)):
        try:
            info = json.loads((folder / META_FILE).read_text())
        except (OSError, ValueError):
            continue
        name = info.get('circuit_source') or info.get('circuit')
        if name and name not in names:
            names.append(str(name))
    return names


def folders_of_test_circuits(data: Sequence[str | Path]) -> list[str]:
    """
    Return the dataset folders under ``data`` that hold frames of a test circuit.

    A folder is a test one when the dataset writer recorded the test split for it, or when its
    recorded circuit (or circuit source) is a test circuit by today's splits
    (:func:`~pilotnet_optimized.sim.splits.split_of_circuit`): a check, not a convention, so that
    a model is never trained or calibrated on a circuit it is judged on.
    """
    from pilotnet_optimized.sim.splits import split_of_circuit
    found = []
    for folder in find_dataset_dirs(list(data)):
        meta = folder / META_FILE
        try:
            info = json.loads(meta.read_text()) if meta.is_file() else {}
        except ValueError:
            info = {}
        names = [str(info[k]) for k in ('circuit', 'circuit_source') if info.get(k)]
        if info.get('split') == 'test' or any(split_of_circuit(n) == 'test' for n in names):
            found.append(str(folder))
    return found


def _cache_key(folder: Path, cfg: Preprocessing) -> str:
    labels = folder / LABELS_FILE
    stamp = (
        f'{cfg.crop_top}-{cfg.width}x{cfg.height}-'
        f'{labels.stat().st_size}-{labels.stat().st_mtime_ns}'
    )
    return hashlib.sha1(stamp.encode()).hexdigest()[:16]


def load_frames(folder: str | Path, cfg: Preprocessing = Preprocessing(), progress: bool = True,
                limit: int | None = None) -> Frames:
    """
    One dataset folder as resized uint8 frames and physical labels.

    They come from the cache when it is current.

    :param limit: read only the first ``limit`` frames (no caching then).
    :raises PilotnetError: for a missing folder, missing or unreadable images, or a label count
        mismatch.
    """
    folder = Path(folder)
    labels = read_labels(folder)
    if limit is not None:
        labels = labels[:limit]
    cache = folder / CACHE_DIR / f'{_cache_key(folder, cfg)}.npz'
    if limit is None and cache.is_file():
        with np.load(cache) as data:
            if len(data['images']) == len(labels):
                return Frames(data['images'], labels, (str(folder),))
    images = np.empty((len(labels), cfg.height, cfg.width, 3), np.uint8)
    for i in tqdm(
        range(len(labels)),
        desc=f'reading {folder}',
        unit='frame',
        disable=not progress,
        leave=False,
    ):
        bgr = cv2.imread(str(folder / f'{i}.png'), cv2.IMREAD_COLOR)
        if bgr is None:
            raise PilotnetError(
                f'{folder}: frame {i}.png is missing or unreadable ({len(labels)} labels)'
            )
        images[i] = resize_frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), cfg)
    if limit is None:
        cache.parent.mkdir(exist_ok=True)
        tmp = cache.with_suffix('.tmp.npz')
        np.savez(tmp, images=images)
        tmp.replace(cache)  # atomic: an interrupted run never leaves a half-written cache
    return Frames(images, labels, (str(folder),))


def load_datasets(
    paths: list[str | Path],
    cfg: Preprocessing = Preprocessing(),
    progress: bool = True,
    limit_per_folder: int | None = None,
) -> Frames:
    """Every dataset folder found under ``paths``, concatenated."""
    parts = [load_frames(d, cfg, progress, limit_per_folder) for d in find_dataset_dirs(paths)]
    return Frames(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.labels for p in parts]),
        tuple(s for p in parts for s in p.sources),
    )
