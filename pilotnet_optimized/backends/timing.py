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
The one way this project times things.

Warm-up, timed loop, percentiles, and the stage-split predict.

Every benchmark and report (``pilotnet evaluate``, ``bag-eval``, ``compare``, the run report,
``bench-sim``, the inference node) times with these, so that a p50 means the same in every table:

- :func:`time_calls` / :func:`time_each`: untimed warm-up calls, then one :func:`time.perf_counter`
  pair around each timed call, in milliseconds;
- :func:`percentiles`: the ``p50_ms``/``p90_ms``/``p99_ms`` (and ``mean_ms``) keys of a row,
  ``None`` for no samples;
- :func:`timed_predict`: exactly :meth:`Backend.predict
  <pilotnet_optimized.backends.base.Backend.predict>` (preprocess, model call, denormalise), split
  so that the model call is timed on its own, as Behavior Metrics times it; the outputs are the
  same bit for bit.

Importing this module costs numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
import time
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    from pilotnet_optimized.backends.base import Backend

__all__ = ['percentiles', 'time_calls', 'time_each', 'timed_predict']

T = TypeVar('T')


def percentiles(
    values_ms: Iterable[float] | np.ndarray,
    which: Sequence[int] = (50, 90, 99),
    prefix: str = '',
    mean: bool = False,
    unit: str = 'ms',
    digits: int | None = None,
) -> dict[str, float | None]:
    """
    Latency percentiles as a row's keys.

    ``f'{prefix}p{q}_{unit}'`` for each ``q`` in ``which`` (and ``f'{prefix}mean_{unit}'`` first,
    when ``mean``).

    Non-finite samples (a frame that had no answer) are left out; with no sample left every value
    is ``None``.

    :param prefix: the stage, with its underscore (``'inference_'`` makes ``inference_p50_ms``).
    :param unit: the unit in the key names; the values are not converted.
    :param digits: round every value to this many decimals (``None``: full precision).
    """
    arr = np.asarray(
        list(values_ms) if not isinstance(values_ms, np.ndarray) else values_ms, dtype=np.float64
    )
    arr = arr[np.isfinite(arr)]

    def put(value: float) -> float:
        return round(float(value), digits) if digits is not None else float(value)

    out: dict[str, float | None] = {}
    if mean:
        out[f'{prefix}mean_{unit}'] = put(arr.mean()) if arr.size else None
    qs = np.percentile(arr, list(which)) if arr.size else [None] * len(which)
    for q, value in zip(which, qs, strict=True):
        out[f'{prefix}p{q}_{unit}'] = put(value) if value is not None else None
    return out


def time_calls(call: Callable[[], object], runs: int, warmup: int = 0) -> np.ndarray:
    """
    Call ``call`` ``warmup`` times untimed, then ``runs`` times timed.

    The warm-up calls are untimed because the first calls allocate and are slow in every runtime.

    :returns: milliseconds per timed call (``runs`` values).
    """
    for _ in range(warmup):
        call()
    times = np.empty(max(int(runs), 0))
    for i in range(len(times)):
        t = time.perf_counter()
        call()
        times[i] = time.perf_counter() - t
    return times * 1e3


def time_each(
    call: Callable[[T], object], items: Sequence[T], warmup: Iterable[T] = ()
) -> np.ndarray:
    """
    Time calls like :func:`time_calls`, one call per item.

    ``call(item)`` untimed for each of ``warmup``, then timed for each of ``items`` (each timed
    call on its own input: bag frames, poses along a lap).

    :returns: milliseconds per item, in the order of ``items``.
    """
    for item in warmup:
        call(item)
    times = np.empty(len(items))
    for i, item in enumerate(items):
        t = time.perf_counter()
        call(item)
        times[i] = time.perf_counter() - t
    return times * 1e3


def timed_predict(
    backend: Backend, frame_rgb: np.ndarray, *, bgr: bool = False
) -> tuple[np.ndarray, float, float]:
    """
    Run :meth:`Backend.predict` with its stages timed.

    One RGB frame (H x W x 3 uint8, or BGR with ``bgr``; a view of a camera message's buffer
    will do: it is read in place) to physical (v, w). The frame is preprocessed straight into the
    model's input (:meth:`Backend.predict_into <pilotnet_optimized.backends.base.Backend.
    predict_into>`).

    :returns: ``(outputs, preprocess_ms, inference_ms)``: ``outputs`` the physical (v m/s, w rad/s)
        as a float32 array (``float(outputs[0])`` is what ``predict`` returns), ``preprocess_ms``
        the frame to model input (crop, resize, normalise), ``inference_ms`` the model call alone
        (``predict_normalised`` at batch 1).
    :raises ImageError: for a frame the preprocessing cannot take.
    :raises ModelOutputError: when the model answers NaN or infinity.
    """
    from pilotnet_optimized.models.preprocess import denormalise_labels, preprocess
    cfg = backend.preprocessing
    filled: list[float] = []

    def fill(x: np.ndarray) -> None:
        preprocess(frame_rgb, cfg, x, bgr=bgr)
        filled.append(time.perf_counter())

    t0 = time.perf_counter()
    out = backend.predict_into(fill)
    t2 = time.perf_counter()
    t1 = filled[0]
    return np.asarray(denormalise_labels(out)), (t1 - t0) * 1e3, (t2 - t1) * 1e3
