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
The one preprocessing function: training, every backend and every node call exactly this.

Behavior Metrics' brain takes the camera image as RGB, optionally keeps rows 240:480 (the road),
resizes to 200x66 and feeds a batch of one. The model's outputs are v and w normalised to [0, 1]
over the dataset ranges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from pilotnet_optimized.errors import ConversionError, ImageError, PilotnetError
from pilotnet_optimized.sim.car import V_RANGE, W_RANGE

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras

__all__ = [
    'Preprocessing',
    'preprocess',
    'preprocess_batch',
    'resize_frame',
    'normalise_input',
    'normalise_labels',
    'denormalise_labels',
    'sidecar_path',
    'check_model_input',
]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255.0
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255.0


@dataclass(frozen=True)
class Preprocessing:
    """
    How a camera frame becomes model input.

    :param crop_top: keep rows from this one down (240 keeps the bottom half of a 480-row frame:
        the road); ``None`` keeps the whole frame.
    :param width: model input width (PilotNet: 200).
    :param height: model input height (PilotNet: 66).
    :param normalisation: ``'none'`` keeps 0..255 (the model normalises, as DeepLearningStudio's
        PilotNet does with a BatchNormalization input layer, and integer models take pixels
        directly), ``'unit'`` divides by 255, ``'imagenet'`` subtracts ImageNet's mean and divides
        by its standard deviation.
    """

    crop_top: int | None = 240
    width: int = 200
    height: int = 66
    normalisation: str = 'none'
    source_width: int = 640
    source_height: int = 480

    def __post_init__(self) -> None:
        if self.normalisation not in ('none', 'unit', 'imagenet'):
            raise PilotnetError(
                f"normalisation must be 'none', 'unit' or 'imagenet', not {self.normalisation!r}"
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one model input."""
        return (self.height, self.width, 3)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def save(self, model_path: str | Path) -> Path:
        """
        Write the sidecar ``<model>.preprocessing.json`` next to a model file.

        Backends read it there.
        """
        path = sidecar_path(model_path)
        path.write_text(
            json.dumps({**self.to_dict(), 'v_range': V_RANGE, 'w_range': W_RANGE}, indent=2) + '\n'
        )
        return path

    @classmethod
    def for_model(cls, model_path: str | Path) -> Preprocessing:
        """
        Return the preprocessing a model was trained with (its sidecar), or the default.

        The default is for a model that has no sidecar.
        """
        path = sidecar_path(model_path)
        if path.exists():
            try:
                return cls.from_dict(json.loads(path.read_text()))
            except (ValueError, TypeError) as err:
                raise PilotnetError(f'{path}: unreadable preprocessing sidecar ({err})') from err
        return cls()


def sidecar_path(model_path: str | Path) -> Path:
    """``model.tflite`` -> ``model.tflite.preprocessing.json`` (also for SavedModel folders)."""
    p = Path(model_path)
    return p.with_name(p.name + '.preprocessing.json')


def resize_frame(
    image: np.ndarray, cfg: Preprocessing = Preprocessing(), *, bgr: bool = False
) -> np.ndarray:
    """
    Return the geometric half.

    Check, crop and resize one RGB frame to ``height x width x 3`` uint8.

    Training caches this result (and augments its pixels); inference goes straight on to
    :func:`normalise_input`. The frame may be a view (of a camera message's buffer): the crop is a
    view of it and the resize reads it in place.

    :param bgr: the frame is in BGR order (a ``bgr8`` camera): the result is the RGB view of the
        resized frame (resizing works channel by channel, so swapping after it gives the same
        pixels as swapping the whole frame first, for a 17th of the work).
    :raises ImageError: for anything but an H x W x 3 uint8 image taller than ``crop_top``.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, 'shape', None)
        raise ImageError(f'expected an H x W x 3 RGB image, got shape {shape}')
    if image.dtype != np.uint8:
        raise ImageError(f'expected uint8 pixels, got {image.dtype}')
    if cfg.crop_top is not None:
        # Scale the crop with the image so a half-size camera still keeps the same part of the
        # view.
        top = int(round(cfg.crop_top * image.shape[0] / cfg.source_height))
        if image.shape[0] - top < 2:
            raise ImageError(f'image of {image.shape[0]} rows cannot be cropped from row {top}')
        image = image[top:]
    # INTER_AREA averages the pixels a target pixel covers: no aliasing of the thin far-away line.
    small = cv2.resize(image, (cfg.width, cfg.height), interpolation=cv2.INTER_AREA)
    return small[:, :, ::-1] if bgr else small


def normalise_input(
    small: np.ndarray, cfg: Preprocessing = Preprocessing(), out: np.ndarray | None = None
) -> np.ndarray:
    """
    Return the photometric half.

    Resized uint8 pixels (one image or a batch) to float32 model input.

    :param out: a float32 array of the same shape to write the input into (a runtime's own input
        tensor): one pass over the pixels (the conversion, and the channel swap of a BGR view),
        the same values as without it.
    """
    if out is None:
        out = np.asarray(small, dtype=np.float32)
        if cfg.normalisation == 'unit':
            out = out * (1.0 / 255.0)
        elif cfg.normalisation == 'imagenet':
            out = (out - IMAGENET_MEAN) / IMAGENET_STD
        return out
    # The same float32 operations as above, written in place.
    if cfg.normalisation == 'unit':
        np.multiply(small, np.float32(1.0 / 255.0), out=out)
    elif cfg.normalisation == 'imagenet':
        np.subtract(small, IMAGENET_MEAN, out=out)
        np.divide(out, IMAGENET_STD, out=out)
    else:
        np.copyto(out, small)
    return out


def preprocess(
    image: np.ndarray,
    cfg: Preprocessing = Preprocessing(),
    out: np.ndarray | None = None,
    *,
    bgr: bool = False,
) -> np.ndarray:
    """
    One RGB camera frame (H x W x 3 uint8) to one model input (height x width x 3 float32).

    Exactly :func:`resize_frame` then :func:`normalise_input`: training uses the same two steps.

    :param out: where to write the input (``height x width x 3`` float32, e.g. a runtime's input
        tensor, :meth:`~pilotnet_optimized.backends.base.Backend.predict_into`); the frame itself
        is read in place, so a camera message's buffer goes to the model with no copy between.
    :param bgr: the frame is BGR (``bgr8``); the result is the same as for its RGB copy.
    """
    return normalise_input(resize_frame(image, cfg, bgr=bgr), cfg, out)


def preprocess_batch(
    images: list[np.ndarray] | np.ndarray, cfg: Preprocessing = Preprocessing()
) -> np.ndarray:
    """Return a batch of frames: N x height x width x 3 float32."""
    return np.stack([preprocess(img, cfg) for img in images])


def normalise_labels(vw: np.ndarray) -> np.ndarray:
    """Physical (v m/s, w rad/s) to the model's [0, 1] targets."""
    vw = np.asarray(vw, dtype=np.float32)
    lo = np.array([V_RANGE[0], W_RANGE[0]], np.float32)
    hi = np.array([V_RANGE[1], W_RANGE[1]], np.float32)
    return (vw - lo) / (hi - lo)


def denormalise_labels(pred: np.ndarray) -> np.ndarray:
    """
    Return the model's [0, 1] outputs to physical (v, w).

    V = p0 (24 - 6.5) + 6.5, w = p1 (7.1 + 7.1) - 7.1.
    """
    pred = np.asarray(pred, dtype=np.float32)
    lo = np.array([V_RANGE[0], W_RANGE[0]], np.float32)
    hi = np.array([V_RANGE[1], W_RANGE[1]], np.float32)
    return pred * (hi - lo) + lo


def check_model_input(model: tf_keras.Model, preprocessing: Preprocessing) -> None:
    """
    Check that the model takes what its sidecar's preprocessing makes.

    Otherwise every backend would reject the file: every converter checks this before writing one.

    :raises ConversionError: when it does not.
    """
    shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if shape != preprocessing.input_shape:
        raise ConversionError(
            f'model {model.name!r} takes input {model.input_shape}, but its preprocessing makes '
            f"{'x'.join(map(str, preprocessing.input_shape))}"
        )
