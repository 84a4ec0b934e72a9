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
Closed circuits: a centre line resampled at even spacing, and the geometry the simulator asks.

A circuit is only a closed polyline plus a road width, so the project's own circuits, a Behavior
Metrics perfect-lap bag, or any CSV of points become the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ['Circuit', 'Projection', 'resample_closed', 'bspline_closed']


@dataclass(frozen=True)
class Projection:
    """Where a point lies relative to the centre line."""

    index: int          # nearest centre-line sample
    s: float            # arc length of that sample from the start (m)
    lateral: float      # signed distance, positive to the left of the direction of travel (m)
    heading: float      # centre-line heading at that sample (rad)


def resample_closed(points: np.ndarray, spacing: float) -> np.ndarray:
    """
    Resample a closed polyline at (nearly) even arc-length spacing.

    Keeping the first point first.

    :param points: (N, 2) points; the closing segment back to the first point is implied.
    :param spacing: wanted distance between samples in metres.
    :returns: (M, 2) points, the last one short of the first (the loop is implied).
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise ValueError('a closed centre line needs at least 3 points of (x, y)')
    # Drop a duplicated closing point and zero-length steps: they would divide by zero below.
    if np.hypot(*(pts[-1] - pts[0])) < 1e-9:
        pts = pts[:-1]
    loop = np.vstack([pts, pts[:1]])
    seg = np.hypot(*np.diff(loop, axis=0).T)
    keep = np.concatenate([[True], seg[:-1] > 1e-9])
    loop = np.vstack([pts[keep], pts[:1]])
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(loop, axis=0).T))])
    total = s[-1]
    count = max(int(round(total / spacing)), 3)
    s_new = np.linspace(0.0, total, count, endpoint=False)
    return np.column_stack([np.interp(s_new, s, loop[:, 0]), np.interp(s_new, s, loop[:, 1])])


def bspline_closed(control: np.ndarray, samples_per_span: int = 64) -> np.ndarray:
    """
    Sample a periodic uniform cubic B-spline.

    Smooth (curvature-continuous) corners from a polygon.

    :param control: (K, 2) control polygon, closed implicitly.
    :param samples_per_span: samples between consecutive control points.
    """
    ctrl = np.asarray(control, dtype=float)
    u = np.linspace(0.0, 1.0, samples_per_span, endpoint=False)
    basis = np.stack([
        (1 - u) ** 3,
        3 * u ** 3 - 6 * u ** 2 + 4,
        -3 * u ** 3 + 3 * u ** 2 + 3 * u + 1,
        u ** 3,
    ], axis=1) / 6.0
    k = len(ctrl)
    spans = [basis @ ctrl[[(i - 1) % k, i, (i + 1) % k, (i + 2) % k]] for i in range(k)]
    return np.vstack(spans)


@dataclass(frozen=True)
class Circuit:
    """
    A closed circuit.

    ``centreline[0]`` is the start; the car starts there heading along the line, or at
    :attr:`start` when that is set.
    """

    name: str
    centreline: np.ndarray
    road_width: float = 7.0
    kerb_width: float = 0.8
    timeout_s: float = 120.0
    description: str = ''
    source: str = 'builtin'
    #: Width of the painted centre line (m).
    line_width: float = 0.3
    #: Where the car starts (x, y, yaw), when not on ``centreline[0]`` heading along the line (a
    #: world's spawn pose, ``--start``): see :mod:`pilotnet_optimized.sim.spawn`.
    start: tuple[float, float, float] | None = None
    arc: np.ndarray = field(init=False, repr=False)
    heading: np.ndarray = field(init=False, repr=False)
    curvature: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        pts = np.ascontiguousarray(self.centreline, dtype=float)
        object.__setattr__(self, 'centreline', pts)
        step = np.roll(pts, -1, axis=0) - pts
        seg = np.hypot(step[:, 0], step[:, 1])
        object.__setattr__(self, 'arc', np.concatenate([[0.0], np.cumsum(seg)]))
        heading = np.arctan2(step[:, 1], step[:, 0])
        object.__setattr__(self, 'heading', heading)
        # Curvature from the heading change over a few metres: the samples are 0.1 m apart, so a
        # one-sample difference would turn rounding of the source points into curvature noise.
        span = max(int(round(2.0 / max(float(np.median(seg)), 1e-6))), 1)
        dtheta = np.angle(np.exp(1j * (np.roll(heading, -span) - np.roll(heading, span))))
        object.__setattr__(self, 'curvature', dtheta / (2 * span * np.median(seg)))

    @property
    def length(self) -> float:
        """Return the closed length of the centre line in metres."""
        return float(self.arc[-1])

    @property
    def spacing(self) -> float:
        """Mean distance between centre-line samples."""
        return self.length / len(self.centreline)

    @property
    def start_pose(self) -> tuple[float, float, float]:
        """(x, y, yaw) of the start: :attr:`start`, else on the centre line heading along it."""
        if self.start is not None:
            return tuple(float(v) for v in self.start)
        return float(self.centreline[0, 0]), float(self.centreline[0, 1]), float(self.heading[0])

    def pose_at(self, s: float, lateral: float = 0.0) -> tuple[float, float, float]:
        """
        (x, y, yaw) at arc length ``s`` (wrapped).

        ``lateral`` metres to the left of the line.
        """
        s = float(s) % self.length
        i = int(np.searchsorted(self.arc, s, side='right') - 1) % len(self.centreline)
        frac = (s - self.arc[i]) / max(self.arc[i + 1] - self.arc[i], 1e-9)
        p0 = self.centreline[i]
        p1 = self.centreline[(i + 1) % len(self.centreline)]
        x, y = p0 + frac * (p1 - p0)
        yaw = float(self.heading[i])
        return float(x - lateral * np.sin(yaw)), float(y + lateral * np.cos(yaw)), yaw

    def project(
        self, x: float, y: float, hint: int | None = None, window: int = 200
    ) -> Projection:
        """
        Nearest centre-line sample to (x, y).

        :param hint: the previous index; when given, only ``window`` samples either side are
            searched, so a part of the circuit that passes close by (a hairpin's other leg) is not
            mistaken for this one.
        """
        n = len(self.centreline)
        if hint is None or 2 * window + 1 >= n:
            idx = np.arange(n)
        else:
            idx = np.arange(hint - window, hint + window + 1) % n
        d = self.centreline[idx] - (x, y)
        i = int(idx[np.argmin(np.einsum('ij,ij->i', d, d))])
        yaw = self.heading[i]
        dx, dy = x - self.centreline[i, 0], y - self.centreline[i, 1]
        lateral = -dx * np.sin(yaw) + dy * np.cos(yaw)
        return Projection(
            index=i, s=float(self.arc[i]), lateral=float(lateral), heading=float(yaw)
        )

    def is_on_road(self, lateral: float) -> bool:
        """
        Check whether a car centre at ``lateral`` metres from the line is on the road.

        It is while it still has road or kerb under it.
        """
        return abs(lateral) <= self.road_width / 2 + self.kerb_width

    def min_radius(self) -> float:
        """Tightest radius of curvature along the line (m)."""
        return float(1.0 / max(np.abs(self.curvature).max(), 1e-9))

    def min_clearance(self) -> float:
        """
        Closest approach of two parts of the line more than 3 road widths apart along it.

        Must exceed the road width plus kerbs, or the road would overlap itself.
        """
        pts = self.centreline[:: max(1, int(0.5 / self.spacing))]
        arc = self.arc[:-1][:: max(1, int(0.5 / self.spacing))]
        d = np.hypot(pts[:, None, 0] - pts[None, :, 0], pts[:, None, 1] - pts[None, :, 1])
        ds = np.abs(arc[:, None] - arc[None, :])
        ds = np.minimum(ds, self.length - ds)
        d[ds < 3 * self.road_width] = np.inf
        return float(d.min())
