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
The one interface every runtime backend implements (Donkeycar's interpreter pattern).

A backend owns one loaded model. :meth:`Backend.predict` takes a camera frame and returns physical
(v, w); :meth:`Backend.predict_normalised` takes an already preprocessed batch and returns the
model's [0, 1] outputs, which is what offline evaluation compares. Preprocessing is always
:func:`~pilotnet_optimized.models.preprocess.preprocess` with the model's sidecar settings: no
backend crops, resizes or normalises on its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
from pilotnet_optimized.errors import (BackendUnavailableError, ImageError, ModelError,
                                       ModelOutputError, PilotnetError)
from pilotnet_optimized.models.preprocess import denormalise_labels, preprocess, Preprocessing

__all__ = ['Backend', 'quantise', 'dequantise', 'size_on_disk']


class Backend(ABC):
    """
    One model loaded in one runtime.

    :param model_path: the model file (or SavedModel folder).
    :param num_threads: CPU threads the runtime may use for one inference (set explicitly: runtimes
        differ in their defaults, and the robot shares its cores with ROS).
    :param preprocessing: how camera frames become model input; by default the model's sidecar
        ``<model>.preprocessing.json``, or the project default when there is none.
    :raises BackendUnavailableError: when this runtime cannot run on this machine (see
        :meth:`unavailable_reason`).
    :raises ModelError: for a missing, unreadable or corrupt model, or one whose input shape is not
        the preprocessing's output shape.
    """

    name: ClassVar[str]
    #: File suffixes (lower case) this backend loads; a folder is ``'/'``.
    suffixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model_path: str | Path, num_threads: int = 1,
                 preprocessing: Preprocessing | None = None) -> None:
        reason = self.unavailable_reason()
        if reason is not None:
            raise BackendUnavailableError(reason)
        self.model_path = Path(model_path)
        if int(num_threads) < 1:
            raise PilotnetError(f'num_threads must be at least 1, not {num_threads}')
        self.num_threads = int(num_threads)
        if not self.model_path.exists():
            raise ModelError(f'{self.model_path}: model not found')
        self.preprocessing = (
            preprocessing
            if preprocessing is not None
            else Preprocessing.for_model(self.model_path)
        )
        self._load()
        expected = self.preprocessing.input_shape
        if tuple(self.input_shape) != expected:
            raise ModelError(
                f'{self.model_path}: model takes {_shape_str(self.input_shape)} input but its '
                f'preprocessing makes {_shape_str(expected)} (wrong model, or wrong sidecar)'
            )

    # -- what each runtime implements -------------------------------------------------------------

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """
        Return why this runtime cannot run here (a missing package, no GPU).

        ``None`` when it can.
        """
        return None

    @abstractmethod
    def _load(self) -> None:
        """
        Load ``self.model_path``.

        Wrap every runtime error in :class:`ModelError` naming the file.
        """

    @abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """
        Run an N x H x W x 3 float32 batch.

        Return the raw N x 2 outputs as float (dequantised).
        """

    @property
    @abstractmethod
    def precision(self) -> str:
        """
        Return what the weights and arithmetic are.

        'float32', 'float16', 'dynamic-range int8', 'int8 (uint8 I/O)'...
        """

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, int, int]:
        """Return (height, width, channels) of one model input, as the model file declares it."""

    # -- shared behaviour -------------------------------------------------------------------------

    @property
    def file_size_bytes(self) -> int:
        """Return the bytes on disk: the file, or every file below a SavedModel folder."""
        return size_on_disk(self.model_path) or 0

    def predict_normalised(self, batch: np.ndarray) -> np.ndarray:
        """
        Run preprocessed model input through the model and return the model's outputs.

        The input is N x H x W x 3 float32; the outputs are N x 2 float32, in [0, 1] space.

        :raises ImageError: for a batch of the wrong shape.
        :raises ModelOutputError: when any output is NaN or infinite.
        """
        batch = np.asarray(batch)
        expected = self.preprocessing.input_shape
        if batch.ndim != 4 or batch.shape[1:] != expected or batch.shape[0] < 1:
            raise ImageError(
                f'expected a preprocessed batch N x {_shape_str(expected)}, got shape'
                f' {batch.shape}'
            )
        return self._checked(
            self._infer(np.ascontiguousarray(batch, dtype=np.float32)), len(batch)
        )

    def _checked(self, raw: np.ndarray, n: int) -> np.ndarray:
        out = np.asarray(raw, dtype=np.float32).reshape(n, -1)
        if not np.isfinite(out).all():
            raise ModelOutputError(
                f'{self.model_path}: the model produced NaN or infinite outputs'
            )
        return out

    def predict_into(self, fill: Callable[[np.ndarray], object]) -> np.ndarray:
        """
        Run one frame written straight into the model's input; return its [0, 1] outputs (2,).

        ``fill(x)`` writes the preprocessed frame into ``x``, a ``height x width x 3`` float32
        array: the runtime's own input tensor where the runtime allows it (LiteRT float models,
        ONNX Runtime), else a buffer this backend keeps. Nothing is copied between the
        preprocessing and the model; the outputs are those of :meth:`predict_normalised` on the
        same input, bit for bit. ``x`` is valid only during the call.

        :raises ModelOutputError: when any output is NaN or infinite.
        """
        return self._checked(self._infer_into(fill), 1)[0]

    def _infer_into(self, fill: Callable[[np.ndarray], object]) -> np.ndarray:
        """
        Let ``fill`` write the batch-1 input, run it, return the raw outputs.

        The default: a kept buffer and :meth:`_infer`; runtimes that expose their input override
        it.
        """
        buffer = getattr(self, '_frame_input', None)
        if buffer is None:
            buffer = self._frame_input = np.zeros((1, *self.preprocessing.input_shape), np.float32)
        fill(buffer[0])
        return self._infer(buffer)

    def predict(self, image_rgb: np.ndarray, *, bgr: bool = False) -> tuple[float, float]:
        """
        Predict physical (v m/s, w rad/s) from one RGB camera frame (H x W x 3 uint8).

        :param bgr: the frame is BGR (a ``bgr8`` camera, read in place).
        :raises ImageError: for anything but an RGB uint8 frame the preprocessing can crop.
        """
        out = self.predict_into(
            lambda x: preprocess(image_rgb, self.preprocessing, x, bgr=bgr)
        )
        v, w = denormalise_labels(out)
        return float(v), float(w)

    def describe(self) -> dict:
        """Return one row for tables and logs: backend name, precision, size, path and threads."""
        size = self.file_size_bytes
        return {
            'backend': self.name,
            'precision': self.precision,
            'size_bytes': size,
            'size_mb': size / 2**20,
            'path': str(self.model_path),
            'threads': self.num_threads,
        }

    def close(self) -> None:
        """Release the runtime's resources (most runtimes free them with the object)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f'{type(self).__name__}({str(self.model_path)!r}, precision={self.precision!r}, ' \
               f'threads={self.num_threads})'


def quantise(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """
    Float values to an integer tensor's values.

    ``round(x / scale) + zero_point``, clipped to the type.

    Behavior Metrics fed raw floats to uint8 inputs and read uint8 outputs as if they were [0, 1]:
    that is the seed's MSE of 28157 for its integer-only model.
    """
    info = np.iinfo(dtype)
    q = np.round(x / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantise(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Return an integer tensor's values back to floats: ``(q - zero_point) * scale``."""
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def _shape_str(shape: tuple[int, ...]) -> str:
    return 'x'.join(str(d) for d in shape)


def size_on_disk(path: Path) -> int | None:
    """
    Return the bytes of a model file, or of every file below a model folder (SavedModel).

    An OpenVINO IR's ``.xml`` counts with its weights, the ``.bin`` beside it. ``None`` when it
    does not exist.
    """
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())
    if not path.is_file():
        return None
    weights = path.with_suffix('.bin')
    if path.suffix == '.xml' and weights.is_file():
        return path.stat().st_size + weights.stat().st_size
    return path.stat().st_size
