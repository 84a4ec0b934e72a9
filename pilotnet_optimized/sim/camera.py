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
The car's front camera: a flat-ground renderer that is one homography warp per frame.

The road is flat, so every image pixel below the horizon sees one point of the ground plane, and
the map from image pixel to ground point is a homography that only moves with the car's pose. The
circuit is painted once into a top-down texture (grass, kerbs, asphalt, red centre line); a frame
is then the sky template plus one ``cv2.warpPerspective`` of the part of that texture the camera
can see. Nothing but the 3x3 matrix is recomputed per frame.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import math
from pathlib import Path
import zlib

import cv2
import numpy as np
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.sim.circuit import Circuit

__all__ = [
    'CameraModel',
    'Lighting',
    'CircuitTexture',
    'CameraRenderer',
    'RED_LINE_RGB',
    'add_arguments',
    'run',
]

RED_LINE_RGB = (205, 25, 25)
ROAD_RGB = (95, 95, 98)
GRASS_RGB = (62, 128, 48)
# Blue and white, so that nothing but the centre line is red: the learned driver follows red.
KERB_RGB = ((40, 70, 170), (235, 235, 235))
SKY_TOP_RGB = (70, 130, 205)
SKY_HORIZON_RGB = (190, 215, 240)


@dataclass(frozen=True)
class CameraModel:
    """
    Pinhole camera fixed to the car, looking straight ahead, level.

    Defaults are Behavior Metrics' ``cam_f1_left``: 640x480, horizontal FOV 1.57 rad, 0.45 m ahead
    of the car's origin and 0.04 m to its left. Its mount is 0.1 m above the car link; the height
    of the lens above the road (``height``) is our assumption of chassis plus mount, and a
    parameter.
    """

    width: int = 640
    height_px: int = 480
    hfov: float = 1.57
    mount_x: float = 0.45
    mount_y: float = 0.04
    height: float = 0.6
    max_range: float = 60.0

    @property
    def fx(self) -> float:
        """Focal length in pixels (square pixels, so also fy)."""
        return (self.width / 2) / math.tan(self.hfov / 2)

    @property
    def cx(self) -> float:
        return self.width / 2

    @property
    def cy(self) -> float:
        return self.height_px / 2

    @property
    def ground_row(self) -> int:
        """
        Return the first image row that shows ground nearer than ``max_range``.

        Rows above it are sky or haze.
        """
        return int(math.ceil(self.cy + self.fx * self.height / self.max_range))

    def image_to_ground(self, first_row: int) -> np.ndarray:
        """
        Return the homography from pixels to ground points of the car.

        It maps pixel (column, row - first_row) to ground point (forward, left).
        """
        f, h = self.fx, self.height
        # Ground point seen by pixel (c, r):
        # forward = f h / (r - cy); left = -(c - cx) h / (r - cy).
        cam = np.array([[0.0, 0.0, f * h],
                        [-h, 0.0, h * self.cx],
                        [0.0, 1.0, first_row - self.cy]])
        mount = np.array([[1.0, 0.0, self.mount_x], [0.0, 1.0, self.mount_y], [0.0, 0.0, 1.0]])
        return mount @ cam

    def ground_to_image(self, forward: float, left: float) -> tuple[float, float]:
        """Pixel (column, row) where a ground point (in the car frame) appears."""
        fwd = forward - self.mount_x
        lat = left - self.mount_y
        return self.cx - self.fx * lat / fwd, self.cy + self.fx * self.height / fwd


@dataclass(frozen=True)
class Lighting:
    """Photometric variation for augmentation: gain, offset, per-channel tint and distance fog."""

    gain: float = 1.0
    offset: float = 0.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    fog: float = 0.0

    @classmethod
    def random(cls, rng: np.random.Generator, strength: float = 1.0) -> Lighting:
        """Return a random lighting condition; ``strength`` 0 gives the neutral one."""
        return cls(gain=float(1.0 + strength * rng.uniform(-0.35, 0.25)),
                   offset=float(strength * rng.uniform(-20, 20)),
                   tint=tuple(float(1.0 + strength * rng.uniform(-0.08, 0.08)) for _ in range(3)),
                   fog=float(strength * rng.choice([0.0, 0.0, rng.uniform(0.0, 0.6)])))

    @property
    def neutral(self) -> bool:
        return self == Lighting()


class CircuitTexture:
    """The circuit painted from above, once: grass, kerbs, asphalt and the red centre line."""

    def __init__(self, circuit: Circuit, resolution: float = 0.05, margin: float = 30.0,
                 max_pixels: int = 48_000_000, line_width: float = 0.3) -> None:
        pts = circuit.centreline
        lo = pts.min(axis=0) - margin
        hi = pts.max(axis=0) + margin
        extent = hi - lo
        # Big circuits get a coarser texture so that memory stays bounded (about 150 MB at most).
        resolution = max(resolution, math.sqrt(extent[0] * extent[1] / max_pixels))
        self.resolution = resolution
        self.origin = (float(lo[0]), float(hi[1]))  # world (x, y) of texture pixel (0, 0)
        w, h = (int(math.ceil(e / resolution)) for e in extent)
        rng = np.random.default_rng(zlib.crc32(circuit.name.encode()))
        self.image = _grass(h, w, rng)
        px = self.world_to_pixel(pts)
        closed = np.vstack([px, px[:1]])

        def thickness(metres: float) -> int:
            return max(1, int(round(metres / resolution)))

        # Kerbs: 1 m stripes under the road, wider than it by the kerb on each side.
        stripe = max(1, int(round(1.0 / circuit.spacing)))
        kerb_t = thickness(circuit.road_width + 2 * circuit.kerb_width)
        for k, start in enumerate(range(0, len(px), stripe)):
            seg = closed[start:start + stripe + 1]
            cv2.polylines(
                self.image, [_fixed(seg)], False, KERB_RGB[k % 2], kerb_t, cv2.LINE_AA, 4
            )
        road = np.zeros(self.image.shape[:2], np.uint8)
        cv2.polylines(
            road, [_fixed(closed)], True, 255, thickness(circuit.road_width), cv2.LINE_AA, 4
        )
        weight = road.astype(np.float32) * (1.0 / 255.0)
        # blendLinear does the anti-aliased edge blend per pixel in C++, without float copies of
        # the image.
        self.image = cv2.blendLinear(
            _asphalt(self.image.shape[:2], rng), self.image, weight, 1.0 - weight
        )
        cv2.polylines(self.image, [_fixed(closed)], True, RED_LINE_RGB, thickness(line_width),
                      cv2.LINE_AA, 4)
        self.border_rgb = tuple(
            int(c) for c in np.median(self.image[:50, :50].reshape(-1, 3), axis=0)
        )

    def world_to_pixel(self, xy: np.ndarray) -> np.ndarray:
        """World metres to texture pixels (float)."""
        xy = np.asarray(xy, dtype=float)
        return np.column_stack([(xy[..., 0] - self.origin[0]) / self.resolution,
                                (self.origin[1] - xy[..., 1]) / self.resolution])

    def world_to_pixel_matrix(self) -> np.ndarray:
        """Return the same map as a 3x3 affine matrix."""
        r = self.resolution
        return np.array(
            [[1 / r, 0.0, -self.origin[0] / r], [0.0, -1 / r, self.origin[1] / r], [0, 0, 1]]
        )


class CameraRenderer:
    """Renders RGB frames (H x W x 3, uint8, the ``rgb8`` layout) from the car pose."""

    def __init__(self, circuit: Circuit, camera: CameraModel | None = None,
                 texture: CircuitTexture | None = None) -> None:
        self.circuit = circuit
        self.camera = camera or CameraModel()
        self.texture = texture or CircuitTexture(circuit)
        cam = self.camera
        self._row0 = cam.ground_row
        self._ground_h = cam.height_px - self._row0
        self._img_to_car = cam.image_to_ground(self._row0)
        self._tex_from_world = self.texture.world_to_pixel_matrix()
        self._template = _sky(cam.height_px, cam.width, cam.cy, self.texture.border_rgb)
        # Distance of each ground row, for fog: near rows keep their colour, far rows fade to haze.
        rows = np.arange(self._row0, cam.height_px) + 0.5 - cam.cy
        self._row_distance = cam.fx * cam.height / rows

    def render(self, x: float, y: float, yaw: float, lighting: Lighting | None = None,
               out: np.ndarray | None = None) -> np.ndarray:
        """One frame seen from a car at (x, y) heading ``yaw`` (rad, counter-clockwise from +x)."""
        cam = self.camera
        if out is None:
            out = np.empty((cam.height_px, cam.width, 3), np.uint8)
        np.copyto(out, self._template)
        c, s = math.cos(yaw), math.sin(yaw)
        car_to_world = np.array([[c, -s, x], [s, c, y], [0.0, 0.0, 1.0]])
        src, to_roi = self._visible_window(x, y)
        m = to_roi @ self._tex_from_world @ car_to_world @ self._img_to_car
        cv2.warpPerspective(src, m, (cam.width, self._ground_h), dst=out[self._row0:],
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=self.texture.border_rgb)
        if lighting is not None and not lighting.neutral:
            self._apply_lighting(out, lighting)
        return out

    def _visible_window(self, x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
        """
        Return the texture window within ``max_range`` of the car and the matrix into its pixels.

        Warping from a small window keeps the source in cache; the view costs no copy.
        """
        tex = self.texture
        reach = (self.camera.max_range + 1.0) / tex.resolution
        u, v = tex.world_to_pixel(np.array([[x, y]]))[0]
        h, w = tex.image.shape[:2]
        u0, u1 = int(max(0, u - reach)), int(min(w, u + reach + 1))
        v0, v1 = int(max(0, v - reach)), int(min(h, v + reach + 1))
        if u0 >= u1 or v0 >= v1:  # the car is far outside the painted area: all haze
            u0, u1, v0, v1 = 0, 1, 0, 1
        shift = np.array([[1.0, 0.0, -u0], [0.0, 1.0, -v0], [0.0, 0.0, 1.0]])
        return tex.image[v0:v1, u0:u1], shift

    def _apply_lighting(self, frame: np.ndarray, lighting: Lighting) -> None:
        if lighting.fog > 0:
            # Exponential fog with distance; the sky is already haze-coloured at the horizon.
            haze = np.array(SKY_HORIZON_RGB, np.float32)
            alpha = 1.0 - np.exp(-lighting.fog * self._row_distance / 20.0)
            ground = frame[self._row0:].astype(np.float32)
            a = alpha.astype(np.float32)[:, None, None]
            frame[self._row0:] = (ground * (1 - a) + haze * a).astype(np.uint8)
        lut = np.empty((256, 1, 3), np.uint8)
        levels = np.arange(256, dtype=np.float32)
        for ch in range(3):
            lut[:, 0, ch] = np.clip(
                levels * lighting.gain * lighting.tint[ch] + lighting.offset, 0, 255
            )
        cv2.LUT(frame, lut, dst=frame)


def _fixed(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates as cv2's 4-bit fixed point, so thin lines keep sub-pixel positions."""
    return np.round(points * 16).astype(np.int32).reshape(-1, 1, 2)


def _noise_rgb(
    h: int,
    w: int,
    rng: np.random.Generator,
    base: tuple[int, int, int],
    feature_px: int,
    amplitude: float,
) -> np.ndarray:
    """
    Return a colour image with smooth brightness variation.

    Its features span about ``feature_px`` pixels. Built small and enlarged by OpenCV: the features
    are many pixels across anyway, and a full-size float image of the largest circuit would cost
    gigabytes and seconds.
    """
    noise = rng.normal(0.0, 1.0, (max(2, h // feature_px), max(2, w // feature_px))).astype(
        np.float32
    )
    small_h, small_w = max(2, h // 4), max(2, w // 4)
    noise = cv2.resize(noise, (small_w, small_h), interpolation=cv2.INTER_CUBIC)
    small = np.clip(np.array(base, np.float32) * (1.0 + amplitude * noise[..., None]), 0, 255)
    return cv2.resize(small.astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)


def _grass(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """
    Grass with patches a few metres across.

    Texture that moves past the camera, as in a real field.
    """
    return _noise_rgb(h, w, rng, GRASS_RGB, feature_px=60, amplitude=0.12)


def _asphalt(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Asphalt with a fine grain, so that speed is visible on straights."""
    return _noise_rgb(shape[0], shape[1], rng, ROAD_RGB, feature_px=8, amplitude=0.07)


def _sky(h: int, w: int, horizon: float, ground_rgb: tuple[int, ...]) -> np.ndarray:
    """Sky gradient above the horizon, distant grass below it (rows beyond the render range)."""
    img = np.empty((h, w, 3), np.uint8)
    top, bottom = np.array(SKY_TOP_RGB, np.float32), np.array(SKY_HORIZON_RGB, np.float32)
    rows = int(math.ceil(horizon))
    t = np.linspace(0.0, 1.0, rows, dtype=np.float32)[:, None]
    img[:rows] = (top * (1 - t) + bottom * t).astype(np.uint8)[:, None, :]
    img[rows:] = np.array(ground_rgb, np.uint8)
    return img


# -- command line ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pilotnet render`` arguments."""
    parser.add_argument(
        '--circuit', default='simple', help='built-in name, perfect-lap bag or x,y CSV'
    )
    parser.add_argument('--out', required=True, help='image file to write (.png or .jpg)')
    parser.add_argument(
        '--s', type=float, default=0.0, help='metres along the centre line from the start'
    )
    parser.add_argument(
        '--lateral', type=float, default=0.0, help='metres left of the centre line'
    )
    parser.add_argument(
        '--yaw-offset', type=float, default=0.0, help='radians turned from the line heading'
    )
    parser.add_argument('--fog', type=float, default=0.0, help='fog density, 0 (none) to 1')


def run(args: argparse.Namespace) -> int:
    """
    ``pilotnet render``: one camera frame at ``--s`` metres along the circuit.

    Written to ``--out``.
    """
    from pilotnet_optimized.sim.circuits import get_circuit
    circuit = get_circuit(args.circuit)
    x, y, yaw = circuit.pose_at(args.s, args.lateral)
    frame = CameraRenderer(circuit).render(x, y, yaw + args.yaw_offset,
                                           Lighting(fog=args.fog) if args.fog else None)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
        raise PilotnetError(f'could not write {out} (use a .png or .jpg name)')
    print(f'{out}: {frame.shape[1]}x{frame.shape[0]} frame of {circuit.name} at s={args.s:.1f} m '
          f'(x={x:.2f}, y={y:.2f}, yaw={yaw:.3f})')
    return 0
