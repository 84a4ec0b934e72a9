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
Exact point-to-polyline distances for many points against a long polyline.

A brute-force search of 5 000 points against 10^5 segments is 5 * 10^8 pairs. A driven path
is spatially coherent, so runs of consecutive segments have small bounding boxes: each point
first bounds its distance by the boxes (lower bound) and by one vertex per box (upper bound),
then measures exactly only the segments of the boxes that can still hold the minimum.
"""

from __future__ import annotations

import numpy as np

__all__ = ['point_polyline_distance']

# Point x box (or point x segment) pairs per numpy batch: bounds the memory of the temporary
# arrays while keeping the per-call overhead negligible.
_BATCH = 1 << 20


def point_polyline_distance(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """
    Distance from each point to the nearest segment of a polyline (exact, float64).

    :param points: ``(Q, 2)`` query points.
    :param polyline: ``(S + 1, 2)`` vertices in order; a single vertex is a degenerate
        polyline (distances to that point).
    :returns: ``(Q,)`` distances in the units of the inputs.
    :raises ValueError: when ``polyline`` has no vertices.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    verts = np.asarray(polyline, dtype=np.float64).reshape(-1, 2)
    if verts.shape[0] == 0:
        raise ValueError('polyline has no vertices')
    if pts.shape[0] == 0:
        return np.empty(0)
    if verts.shape[0] == 1:
        return np.hypot(*(pts - verts[0]).T)
    seg = _Segments(verts)
    # sqrt balances the two stages: Q * S / B box tests against Q * (a few) * B segment tests.
    block = int(np.clip(np.sqrt(seg.n / 4.0), 8, 128))
    boxes = _Boxes(verts, block)
    out = np.empty(pts.shape[0])
    rows = max(1, _BATCH // boxes.n)
    for lo in range(0, pts.shape[0], rows):
        out[lo:lo + rows] = _nearest_d2(pts[lo:lo + rows], seg, boxes)
    return np.sqrt(out)


class _Segments:
    """Segments ``a -> a + d`` of a polyline as x/y component arrays."""

    def __init__(self, verts: np.ndarray) -> None:
        self.ax = verts[:-1, 0].copy()
        self.ay = verts[:-1, 1].copy()
        self.dx = np.diff(verts[:, 0])
        self.dy = np.diff(verts[:, 1])
        len2 = self.dx * self.dx + self.dy * self.dy
        # 1/len^2, 0 for repeated vertices so that their projection clips to the start vertex.
        self.inv_len2 = np.divide(1.0, len2, out=np.zeros_like(len2), where=len2 > 0)
        self.n = self.ax.shape[0]


class _Boxes:
    """Bounding boxes of blocks of ``block`` consecutive segments, plus one vertex of each."""

    def __init__(self, verts: np.ndarray, block: int) -> None:
        n_seg = verts.shape[0] - 1
        starts = np.arange(0, n_seg, block)
        # Block b holds segments [b*block, (b+1)*block): vertices up to and including the
        # first vertex of the next block.
        ends = np.minimum(starts + block, n_seg)
        lo = np.minimum(np.minimum.reduceat(verts[:-1], starts, axis=0), verts[ends])
        hi = np.maximum(np.maximum.reduceat(verts[:-1], starts, axis=0), verts[ends])
        self.xmin, self.ymin = lo.T
        self.xmax, self.ymax = hi.T
        mid = verts[(starts + ends) // 2]
        self.mx, self.my = mid.T
        self.block = block
        self.n_seg = n_seg
        self.n = starts.shape[0]


def _pair_d2(px: np.ndarray, py: np.ndarray, seg: _Segments, idx: np.ndarray) -> np.ndarray:
    """Squared distance from point ``k`` to segment ``idx[k]`` (arrays broadcast)."""
    wx = px - seg.ax[idx]
    wy = py - seg.ay[idx]
    dx = seg.dx[idx]
    dy = seg.dy[idx]
    u = np.clip((wx * dx + wy * dy) * seg.inv_len2[idx], 0.0, 1.0)
    ex = wx - u * dx
    ey = wy - u * dy
    return ex * ex + ey * ey


def _nearest_d2(pts: np.ndarray, seg: _Segments, boxes: _Boxes) -> np.ndarray:
    px = pts[:, :1]
    py = pts[:, 1:]
    rows = np.arange(pts.shape[0])
    offsets = np.arange(boxes.block)
    # Lower bound: squared distance to each box.
    gx = np.maximum(np.maximum(boxes.xmin - px, px - boxes.xmax), 0.0)
    gy = np.maximum(np.maximum(boxes.ymin - py, py - boxes.ymax), 0.0)
    lower = gx * gx + gy * gy
    # Upper bound: the exact distance to the segments of the box holding the nearest box
    # vertex; usually that box holds the minimum, so the bound is tight and prunes well.
    vx = px - boxes.mx
    vy = py - boxes.my
    first = (vx * vx + vy * vy).argmin(axis=1)
    best = _block_d2(pts, rows, first, seg, boxes, offsets)
    lower[rows, first] = np.inf
    q_idx, b_idx = np.nonzero(lower < best[:, None])   # pairs sorted by point
    # Expand (point, box) pairs to (point, segment) pairs in batches that bound memory.
    step = max(1, _BATCH // boxes.block)
    for lo in range(0, q_idx.shape[0], step):
        q = q_idx[lo:lo + step]
        d2 = _block_d2(pts, q, b_idx[lo:lo + step], seg, boxes, offsets)
        np.minimum.at(best, q, d2)
    return best


def _block_d2(pts: np.ndarray, q: np.ndarray, b: np.ndarray, seg: _Segments, boxes: _Boxes,
              offsets: np.ndarray) -> np.ndarray:
    """Squared distance from point ``q[k]`` to the nearest segment of box ``b[k]``."""
    s = b[:, None] * boxes.block + offsets[None, :]
    # The last block may be short; clamping repeats its last segment, which is harmless.
    s = np.minimum(s, boxes.n_seg - 1)
    return _pair_d2(pts[q, :1], pts[q, 1:], seg, s).min(axis=1)
