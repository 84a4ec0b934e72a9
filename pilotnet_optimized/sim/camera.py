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

How the world looks is an :class:`Appearance`: its default is the clean look every evaluation
sees; :meth:`Appearance.random` varies everything that does not change the driving answer
(asphalt, kerbs, grass, the line's shade and width, sky, lighting, shadows, optics, sensor noise,
the camera mount) so that a model trained on such frames learns the line and the road edges, not
the paint. The painted part (:class:`PaintedLook`) costs a texture (a second or two); the rest
(:class:`FrameEffects`, the mount) about 2 ms a frame on average, 6 ms at most (one core).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import colorsys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
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
    'PaintedLook',
    'FrameEffects',
    'Appearance',
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

#: Kerb colour pairs of real circuits that a random look picks from; the first is the clean one.
KERB_PAIRS = (
    KERB_RGB,
    ((200, 35, 35), (235, 235, 235)),   # red and white
    ((225, 190, 35), (30, 30, 30)),     # yellow and black
    ((40, 135, 60), (235, 235, 235)),   # green and white
    ((30, 30, 30), (230, 230, 230)),    # black and white
)
#: How much red rises and blue falls at colour temperature 1 (warm light; -1 is cool).
WARMTH = 0.06
#: Overcast sky (top, horizon) that a random sky blends towards.
OVERCAST_RGB = ((150, 155, 165), (200, 203, 208))


@dataclass(frozen=True)
class CameraModel:
    """
    Pinhole camera fixed to the car, looking straight ahead, level.

    Defaults are Behavior Metrics' ``cam_f1_left``: 640x480, horizontal FOV 1.57 rad, 0.45 m ahead
    of the car's origin and 0.04 m to its left. Its mount is 0.1 m above the car link; the height
    of the lens above the road (``height``) is our assumption of chassis plus mount, and a
    parameter. ``pitch`` tilts the optical axis down by that many radians (0, level, as in Gazebo;
    a randomised mount varies it a little).
    """

    width: int = 640
    height_px: int = 480
    hfov: float = 1.57
    mount_x: float = 0.45
    mount_y: float = 0.04
    height: float = 0.6
    max_range: float = 60.0
    pitch: float = 0.0

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
        c, s = math.cos(self.pitch), math.sin(self.pitch)
        h, d = self.height, self.max_range
        return int(math.ceil(self.cy + self.fx * (h * c - d * s) / (d * c + h * s)))

    @property
    def horizon_row(self) -> float:
        """Image row of the horizon (fractional): ``cy`` when level, higher when pitched down."""
        return self.cy - self.fx * math.tan(self.pitch)

    def row_distance(self, rows: np.ndarray) -> np.ndarray:
        """Return how far ahead of the lens the ground seen at (fractional) image ``rows`` is."""
        f, h = self.fx, self.height
        c, s = math.cos(self.pitch), math.sin(self.pitch)
        v = np.asarray(rows, dtype=float) - self.cy
        return h * (f * c - v * s) / (f * s + v * c)

    def image_to_ground(self, first_row: int) -> np.ndarray:
        """
        Return the homography from pixels to ground points of the car.

        It maps pixel (column, row - first_row) to ground point (forward, left).
        """
        f, h = self.fx, self.height
        c, s = math.cos(self.pitch), math.sin(self.pitch)
        # Ground point seen by pixel (col, r), with v = r - cy and the axis pitched down by p:
        # forward = h (f cos p - v sin p) / (f sin p + v cos p), left = -(col - cx) h / (same);
        # level (p = 0) that is f h / v and -(col - cx) h / v.
        v0 = first_row - self.cy
        cam = np.array([[0.0, -h * s, h * (f * c - v0 * s)],
                        [-h, 0.0, h * self.cx],
                        [0.0, c, f * s + v0 * c]])
        mount = np.array([[1.0, 0.0, self.mount_x], [0.0, 1.0, self.mount_y], [0.0, 0.0, 1.0]])
        return mount @ cam

    def ground_to_image(self, forward: float, left: float) -> tuple[float, float]:
        """Pixel (column, row) where a ground point (in the car frame) appears."""
        fwd = forward - self.mount_x
        lat = left - self.mount_y
        c, s = math.cos(self.pitch), math.sin(self.pitch)
        h = self.height
        depth = fwd * c + h * s  # along the optical axis
        return self.cx - self.fx * lat / depth, self.cy + self.fx * (h * c - fwd * s) / depth


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


RGB = tuple[int, int, int]


@dataclass(frozen=True)
class PaintedLook:
    """
    What is painted into a circuit's texture: asphalt, kerbs, grass and the centre line.

    The defaults are the clean look. ``*_grain`` is the relative brightness variation of a surface
    and ``*_grain_px`` the size of its features in texture pixels (5 cm, more on big circuits);
    ``line_width_scale`` multiplies the circuit's ``line_width``; ``seed`` draws the grain
    (``None``: from the circuit's name, so that the clean texture never changes).
    """

    road_rgb: RGB = ROAD_RGB
    road_grain: float = 0.07
    road_grain_px: int = 8
    kerb_rgb: tuple[RGB, RGB] = KERB_RGB
    kerb_stripe_m: float = 1.0
    grass_rgb: RGB = GRASS_RGB
    grass_grain: float = 0.12
    grass_grain_px: int = 60
    line_rgb: RGB = RED_LINE_RGB
    line_width_scale: float = 1.0
    seed: int | None = None

    @classmethod
    def random(cls, rng: np.random.Generator, strength: float = 1.0) -> PaintedLook:
        """
        Return a random painted look; ``strength`` 0 gives the clean one, 1 the full ranges.

        Asphalt grey 72..130, a little warm or cool, with a grain of 0.03..0.11 and 4..12 px;
        kerbs in one of :data:`KERB_PAIRS`, 0.6..2 m stripes; grass from dry to lush (hue 75..125
        degrees, grain 0.06..0.22 of 25..120 px); the line a red of another shade (R 170..235, G
        and B 10..50), 0.7..1.6 times as wide.
        """
        clean = cls()
        grey, warmth = rng.uniform(72, 130), rng.uniform(-6, 8)
        road = (grey + warmth, grey, grey + 3 - warmth)
        hue, sat, val = rng.uniform(75, 125) / 360, rng.uniform(0.45, 0.75), rng.uniform(0.35, 0.6)
        grass = tuple(255 * c for c in colorsys.hsv_to_rgb(hue, sat, val))
        pair = KERB_PAIRS[int(rng.integers(len(KERB_PAIRS)))]
        if rng.uniform() >= strength:  # weaker randomisation keeps the clean kerbs more often
            pair = clean.kerb_rgb
        kerbs = tuple(_toward(c, _jitter(rng, c, 15), strength) for c in pair)
        line = (rng.uniform(170, 235), rng.uniform(10, 50), rng.uniform(10, 50))
        return cls(
            road_rgb=_toward(clean.road_rgb, road, strength),
            road_grain=_lerp(clean.road_grain, rng.uniform(0.03, 0.11), strength),
            road_grain_px=int(round(_lerp(clean.road_grain_px, rng.uniform(4, 12), strength))),
            kerb_rgb=kerbs,
            kerb_stripe_m=_lerp(clean.kerb_stripe_m, rng.uniform(0.6, 2.0), strength),
            grass_rgb=_toward(clean.grass_rgb, grass, strength),
            grass_grain=_lerp(clean.grass_grain, rng.uniform(0.06, 0.22), strength),
            grass_grain_px=int(round(_lerp(clean.grass_grain_px, rng.uniform(25, 120), strength))),
            line_rgb=_toward(clean.line_rgb, line, strength),
            line_width_scale=_lerp(1.0, rng.uniform(0.7, 1.6), strength),
            seed=int(rng.integers(2**31)) if strength > 0 else None,
        )


@dataclass(frozen=True)
class FrameEffects:
    """
    What is done to a rendered frame: lighting, shadows, optics, sensor and compression.

    Applied in that order after the warp: ``shadows`` soft dark patches on the ground (up to that
    many per frame, each taking ``shadow_darkness`` of the light), ``vignette`` (the corners'
    loss of light), ``lighting`` (its fog, then gain, tint and offset), ``temperature`` (-1 cool
    to 1 warm: red up and blue down by up to 6 %), ``contrast`` (about mid-grey), ``blur_sigma``
    (Gaussian, pixels) or ``motion_blur_px`` (vertical, the ground's motion), ``noise_sigma``
    (sensor noise, grey levels) and ``jpeg_quality`` (0: none). ``seed`` draws what changes from
    frame to frame (where the shadows are, the noise).
    """

    lighting: Lighting = field(default_factory=Lighting)
    temperature: float = 0.0
    contrast: float = 1.0
    shadows: int = 0
    shadow_darkness: float = 0.0
    vignette: float = 0.0
    blur_sigma: float = 0.0
    motion_blur_px: int = 0
    noise_sigma: float = 0.0
    jpeg_quality: int = 0
    seed: int = 0

    @classmethod
    def random(cls, rng: np.random.Generator, strength: float = 1.0) -> FrameEffects:
        """
        Return random effects; ``strength`` 0 gives none, 1 the full ranges.

        :meth:`Lighting.random`, temperature -1..1, contrast 0.8..1.2, 0..3 shadows taking
        25..55 % of the light, vignette 0..0.35, a Gaussian blur of 0.3..1.3 px (two times in
        five) or a motion blur of 3..9 px (one in five), noise 0..6 levels, JPEG at quality
        35..90 one time in four.
        """
        lighting = Lighting.random(rng, strength)
        blur = rng.choice(3, p=[0.4, 0.4, 0.2])  # none, Gaussian, motion
        sigma, motion = rng.uniform(0.3, 1.3), rng.integers(3, 10)
        jpeg = rng.uniform() < 0.25 * min(strength, 1.0)
        quality = int(rng.integers(35, 91))
        motion_px = int(round(strength * motion)) if blur == 2 else 0
        return cls(
            lighting=lighting,
            temperature=strength * rng.uniform(-1.0, 1.0),
            contrast=_lerp(1.0, rng.uniform(0.8, 1.2), strength),
            shadows=int(round(strength * rng.integers(0, 4))),
            shadow_darkness=strength * rng.uniform(0.25, 0.55),
            vignette=strength * rng.uniform(0.0, 0.35),
            blur_sigma=strength * sigma if blur == 1 else 0.0,
            motion_blur_px=motion_px if motion_px >= 2 else 0,
            noise_sigma=strength * rng.uniform(0.0, 6.0),
            jpeg_quality=quality if jpeg else 0,
            seed=int(rng.integers(2**31)) if strength > 0 else 0,
        )

    @property
    def neutral(self) -> bool:
        """Whether the effects leave a frame as rendered (the seed does not count)."""
        return replace(self, seed=0) == FrameEffects()

    @property
    def only_lighting(self) -> bool:
        """Whether nothing but :attr:`lighting` changes the frame (the clean path then)."""
        return replace(self, lighting=Lighting(), seed=0) == FrameEffects()


@dataclass(frozen=True)
class Appearance:
    """
    How the world looks to the camera: the painted circuit, the sky, frame effects and mount.

    ``Appearance()`` is the clean look that evaluation and the simulator use (frames byte for
    byte as before randomisation existed). ``camera_height_offset`` (m) and ``camera_pitch`` (rad,
    positive down) are added to the :class:`CameraModel`'s, as a real mount varies between cars.
    """

    painted: PaintedLook = field(default_factory=PaintedLook)
    sky_top_rgb: RGB = SKY_TOP_RGB
    sky_horizon_rgb: RGB = SKY_HORIZON_RGB
    effects: FrameEffects = field(default_factory=FrameEffects)
    camera_height_offset: float = 0.0
    camera_pitch: float = 0.0

    @classmethod
    def random(cls, rng: np.random.Generator, strength: float = 1.0) -> Appearance:
        """
        Return a random appearance; ``strength`` 0 gives the clean one, 1 the full ranges.

        :meth:`PaintedLook.random` and :meth:`FrameEffects.random`, a sky from clear to overcast,
        80..115 % as bright, and the mount within 3 cm of its height and 1.5 degrees of its pitch.
        """
        painted = PaintedLook.random(rng, strength)
        overcast = rng.uniform() ** 2  # mostly clear skies
        brightness = rng.uniform(0.8, 1.15)
        sky = []
        for clean, grey in zip((SKY_TOP_RGB, SKY_HORIZON_RGB), OVERCAST_RGB):
            blend = np.array(clean) * (1 - overcast) + np.array(grey) * overcast
            sky.append(_toward(clean, _jitter(rng, blend * brightness, 10), strength))
        effects = FrameEffects.random(rng, strength)
        return cls(
            painted=painted,
            sky_top_rgb=sky[0],
            sky_horizon_rgb=sky[1],
            effects=effects,
            camera_height_offset=strength * rng.uniform(-0.03, 0.03),
            camera_pitch=strength * math.radians(rng.uniform(-1.5, 1.5)),
        )

    def mounted(self, camera: CameraModel) -> CameraModel:
        """Return ``camera`` moved by this look's mount offsets (itself if there are none)."""
        if self.camera_height_offset == 0.0 and self.camera_pitch == 0.0:
            return camera
        return replace(camera, height=camera.height + self.camera_height_offset,
                       pitch=camera.pitch + self.camera_pitch)

    @property
    def clean(self) -> bool:
        return replace(self, effects=replace(self.effects, seed=0)) == Appearance()


def _lerp(clean: float, value: float, strength: float) -> float:
    """Return ``clean`` moved ``strength`` of the way to ``value`` (a plain float)."""
    return float(clean + strength * (value - clean))


def _toward(clean: tuple, value: tuple, strength: float) -> RGB:
    """Return colour ``clean`` moved ``strength`` of the way to ``value``, as integer RGB."""
    return tuple(int(np.clip(round(_lerp(c, v, strength)), 0, 255)) for c, v in zip(clean, value))


def _jitter(rng: np.random.Generator, rgb: tuple | np.ndarray, spread: float) -> tuple[float, ...]:
    """Return colour ``rgb`` with each channel moved by up to ``spread`` levels."""
    return tuple(float(c + rng.uniform(-spread, spread)) for c in rgb)


class CircuitTexture:
    """
    The circuit painted from above, once: grass, kerbs, asphalt and the red centre line.

    :param line_width: width of the centre line (m); ``None``: the circuit's ``line_width``
        times the look's ``line_width_scale``.
    :param look: the painted look (colours, grain, kerb stripes); ``None``: the clean one.
    """

    def __init__(self, circuit: Circuit, resolution: float = 0.05, margin: float = 30.0,
                 max_pixels: int = 48_000_000, line_width: float | None = None,
                 look: PaintedLook | None = None) -> None:
        look = look or PaintedLook()
        self.look = look
        if line_width is None:
            line_width = circuit.line_width * look.line_width_scale
        pts = circuit.centreline
        lo = pts.min(axis=0) - margin
        hi = pts.max(axis=0) + margin
        extent = hi - lo
        # Big circuits get a coarser texture so that memory stays bounded (about 150 MB at most).
        resolution = max(resolution, math.sqrt(extent[0] * extent[1] / max_pixels))
        self.resolution = resolution
        self.origin = (float(lo[0]), float(hi[1]))  # world (x, y) of texture pixel (0, 0)
        w, h = (int(math.ceil(e / resolution)) for e in extent)
        seed = zlib.crc32(circuit.name.encode()) if look.seed is None else look.seed
        rng = np.random.default_rng(seed)
        # Both noise fields are drawn first, in the order the stream always had (grass, then
        # asphalt); then the grass with its kerbs and the asphalt with the road's mask are painted
        # at the same time, on two threads (OpenCV releases the GIL): a second or two less to wait.
        grass_noise = _noise_field(h, w, rng, look.grass_grain_px)
        asphalt_noise = _noise_field(h, w, rng, look.road_grain_px)
        px = self.world_to_pixel(pts)
        closed = np.vstack([px, px[:1]])

        def thickness(metres: float) -> int:
            return max(1, int(round(metres / resolution)))

        def grass_and_kerbs() -> np.ndarray:
            image = _noise_image(h, w, grass_noise, look.grass_rgb, look.grass_grain)
            # Kerbs: striped under the road, wider than it by the kerb on each side.
            stripe = max(1, int(round(look.kerb_stripe_m / circuit.spacing)))
            kerb_t = thickness(circuit.road_width + 2 * circuit.kerb_width)
            for k, start in enumerate(range(0, len(px), stripe)):
                seg = closed[start:start + stripe + 1]
                cv2.polylines(
                    image, [_fixed(seg)], False, look.kerb_rgb[k % 2], kerb_t, cv2.LINE_AA, 4
                )
            return image

        def asphalt_and_road() -> tuple[np.ndarray, np.ndarray]:
            road = np.zeros((h, w), np.uint8)
            cv2.polylines(
                road, [_fixed(closed)], True, 255, thickness(circuit.road_width), cv2.LINE_AA, 4
            )
            return _noise_image(h, w, asphalt_noise, look.road_rgb, look.road_grain), road

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix='paint') as painter:
            asphalt_job = painter.submit(asphalt_and_road)
            self.image = grass_and_kerbs()
            asphalt, road = asphalt_job.result()
        _blend_road(self.image, asphalt, road)
        del asphalt, road
        cv2.polylines(self.image, [_fixed(closed)], True, look.line_rgb, thickness(line_width),
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


#: Spare noise values beyond one frame's: each frame reads the bank from a random start (a
#: contiguous slice, so no copy), so one bank drawn per renderer gives every frame other noise.
NOISE_MARGIN = 64 * 1024
#: Shadows are drawn at a quarter of the frame's size and enlarged: their edges are soft anyway.
SHADOW_SCALE = 4


class CameraRenderer:
    """
    Renders RGB frames (H x W x 3, uint8, the ``rgb8`` layout) from the car pose.

    :param texture: the circuit already painted (with ``appearance.painted``); ``None`` paints it.
    :param appearance: how the world looks; ``None``: the clean look (with ``texture``'s paint).
    :raises PilotnetError: if ``texture`` was painted with another look than ``appearance``'s.
    """

    def __init__(self, circuit: Circuit, camera: CameraModel | None = None,
                 texture: CircuitTexture | None = None,
                 appearance: Appearance | None = None) -> None:
        if appearance is None:
            appearance = Appearance() if texture is None else Appearance(painted=texture.look)
        if texture is not None and texture.look != appearance.painted:
            raise PilotnetError('the texture was painted with another look than the appearance')
        self.circuit = circuit
        self.appearance = appearance
        self.camera = appearance.mounted(camera or CameraModel())
        self.texture = texture or CircuitTexture(circuit, look=appearance.painted)
        cam = self.camera
        self._row0 = cam.ground_row
        self._ground_h = cam.height_px - self._row0
        self._img_to_car = cam.image_to_ground(self._row0)
        self._tex_from_world = self.texture.world_to_pixel_matrix()
        self._template = _sky(cam.height_px, cam.width, cam.horizon_row, self.texture.border_rgb,
                              appearance.sky_top_rgb, appearance.sky_horizon_rgb)
        # Distance of each ground row, for fog: near rows keep their colour, far rows fade to haze.
        self._row_distance = cam.row_distance(np.arange(self._row0, cam.height_px) + 0.5)
        effects = appearance.effects
        self._effects = None if effects.only_lighting else _EffectsState(effects, cam)
        self._lighting_cache: tuple[Lighting, tuple] | None = None

    def render(self, x: float, y: float, yaw: float, lighting: Lighting | None = None,
               out: np.ndarray | None = None) -> np.ndarray:
        """
        One frame seen from a car at (x, y) heading ``yaw`` (rad, counter-clockwise from +x).

        :param lighting: replaces the appearance's lighting (``None``: the appearance's own).
        """
        out, finish = self.render_staged(x, y, yaw, lighting, out)
        if finish is not None:
            finish(out)
        return out

    def render_staged(
        self, x: float, y: float, yaw: float, lighting: Lighting | None = None,
        out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Callable[[np.ndarray], None] | None]:
        """
        Return :meth:`render`'s frame up to its lens effects, and what finishes it (or ``None``).

        The finish (blur, sensor noise, the JPEG round trip) draws no random numbers and reads
        only what the renderer never changes, so another thread may run it on this frame while
        the next one is drawn (the dataset writer does): the frames are :meth:`render`'s, in
        whatever order they are finished.
        """
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
        if lighting is None:
            lighting = self.appearance.effects.lighting
        if self._effects is not None:
            return out, self._apply_effects(out, lighting)
        if not lighting.neutral:
            self._apply_lighting(out, lighting)
        return out, None

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
        keep, haze, lut = self._lighting_terms(lighting)
        if keep is not None:
            # Exponential fog with distance; the sky is already haze-coloured at the horizon.
            # float32 ground * (1 - alpha) + haze * alpha, truncated to uint8, in one buffer.
            ground = frame[self._row0:]
            mixed = np.multiply(ground, keep, dtype=np.float32)
            np.add(mixed, haze, out=mixed)
            np.copyto(ground, mixed, casting='unsafe')
        cv2.LUT(frame, lut, dst=frame)

    def _lighting_terms(
        self, lighting: Lighting
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """
        Return the fog's float32 factors (``None`` without fog) and the colour table.

        Kept for the last lighting: a dataset episode keeps one for hundreds of frames.
        """
        if self._lighting_cache is not None and self._lighting_cache[0] == lighting:
            return self._lighting_cache[1]
        keep = haze = None
        if lighting.fog > 0:
            alpha = 1.0 - np.exp(-lighting.fog * self._row_distance / 20.0)
            a = alpha.astype(np.float32)[:, None, None]
            keep = 1 - a
            haze = np.array(self.appearance.sky_horizon_rgb, np.float32) * a
        lut = np.empty((256, 1, 3), np.uint8)
        levels = np.arange(256, dtype=np.float32)
        for ch in range(3):
            lut[:, 0, ch] = np.clip(
                levels * lighting.gain * lighting.tint[ch] + lighting.offset, 0, 255
            )
        self._lighting_cache = (lighting, (keep, haze, lut))
        return keep, haze, lut

    def _apply_effects(
        self, frame: np.ndarray, lighting: Lighting
    ) -> Callable[[np.ndarray], None] | None:
        """Apply light, fog and colour; return the lens effects still to apply (or ``None``)."""
        # Every step is a saturating uint8 OpenCV call or two over the frame (the cv2.LUT of
        # _apply_lighting costs 1.7 ms here): the float work is done once, in _EffectsState.
        state = self._effects
        effects = state.effects
        gain = state.light_gain(self._row0)
        if gain is not None:
            cv2.multiply(frame, cv2.cvtColor(gain, cv2.COLOR_GRAY2RGB), dst=frame, scale=1 / 255)
        if lighting.fog > 0:
            keep, haze = state.fog_layers(lighting.fog, self._row_distance,
                                          self.appearance.sky_horizon_rgb)
            ground = frame[self._row0:]
            cv2.multiply(ground, keep, dst=ground, scale=1 / 255)
            cv2.add(ground, haze, dst=ground)
        colour = state.colour_matrix(lighting)
        if colour is not None:
            cv2.transform(frame, colour, dst=frame)
        noise_start = None
        if state.noise_up is not None:
            noise_start = int(state.rng.integers(0, NOISE_MARGIN))
        if (effects.blur_sigma > 0 or effects.motion_blur_px > 0 or noise_start is not None
                or effects.jpeg_quality > 0):
            return partial(self._apply_lens, noise_start=noise_start)
        return None

    def _apply_lens(self, frame: np.ndarray, noise_start: int | None) -> None:
        """Blur, sensor noise (from the bank at ``noise_start``) and JPEG, in that order."""
        effects = self._effects.effects
        # The sky above the horizon is a smooth gradient that blur would not change: skip it.
        lens = frame[max(0, int(self.camera.horizon_row) - 8):]
        if effects.blur_sigma > 0:
            cv2.GaussianBlur(lens, (0, 0), effects.blur_sigma, dst=lens)
        if effects.motion_blur_px > 0:
            ground = frame[self._row0:]
            cv2.blur(ground, (1, effects.motion_blur_px), dst=ground)
        if noise_start is not None:
            state, n = self._effects, frame.size
            cv2.add(frame, state.noise_up[noise_start:noise_start + n].reshape(frame.shape),
                    dst=frame)
            cv2.subtract(frame, state.noise_down[noise_start:noise_start + n].reshape(frame.shape),
                         dst=frame)
        if effects.jpeg_quality > 0:
            # Encoded as the camera would, in BGR order, so the chroma subsampling is JPEG's own.
            ok, data = cv2.imencode('.jpg', cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_JPEG_QUALITY, effects.jpeg_quality])
            cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB, dst=frame)


class _EffectsState:
    """What a renderer keeps for its frame effects: vignette, noise bank, tables and frame RNG."""

    def __init__(self, effects: FrameEffects, camera: CameraModel) -> None:
        self.effects = effects
        self.camera = camera
        self.rng = np.random.default_rng(effects.seed)
        h, w = camera.height_px, camera.width
        self.vignette: np.ndarray | None = None
        if effects.vignette > 0:
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            # 0 at the centre, 1 in the corners: a quadratic stand-in for a lens's cos^4 law.
            r2 = (((xx + 0.5) / (w / 2) - 1) ** 2 + ((yy + 0.5) / (h / 2) - 1) ** 2) / 2
            self.vignette = np.round(255 * (1 - effects.vignette * r2)).astype(np.uint8)
        self.noise_up = self.noise_down = None
        if effects.noise_sigma > 0:
            noise = np.round(self.rng.normal(0.0, effects.noise_sigma, h * w * 3 + NOISE_MARGIN))
            # Signed noise as two saturating uint8 steps: no int16 copy of every frame.
            self.noise_up = np.clip(noise, 0, 255).astype(np.uint8)
            self.noise_down = np.clip(-noise, 0, 255).astype(np.uint8)
        self._fog: tuple[float, np.ndarray, np.ndarray] | None = None
        self._colour: tuple[Lighting, np.ndarray | None] | None = None

    def fog_layers(self, fog: float, row_distance: np.ndarray,
                   haze_rgb: RGB) -> tuple[np.ndarray, np.ndarray]:
        """
        Return the ground rows' share of light kept (of 255) and the haze added, for ``fog``.

        Exponential fog with distance, as :meth:`CameraRenderer._apply_lighting` has it.
        """
        if self._fog is None or self._fog[0] != fog:
            alpha = (1.0 - np.exp(-fog * row_distance / 20.0))[:, None, None]
            shape = (len(row_distance), self.camera.width, 3)
            # Contiguous copies: cv2 is ten times slower on a broadcast (strided) array.
            keep = np.ascontiguousarray(np.broadcast_to(np.round(255 * (1 - alpha)), shape),
                                        dtype=np.uint8)
            haze = np.ascontiguousarray(np.broadcast_to(np.round(alpha * np.array(haze_rgb)),
                                                        shape), dtype=np.uint8)
            self._fog = (fog, keep, haze)
        return self._fog[1], self._fog[2]

    def colour_matrix(self, lighting: Lighting) -> np.ndarray | None:
        """
        Return the 3x4 affine colour map of gain, tint, temperature, offset and contrast.

        ``None`` when it is the identity. Contrast turns about mid-grey: ``c (v - 128) + 128``.
        """
        if self._colour is None or self._colour[0] != lighting:
            effects = self.effects
            t, c = effects.temperature, effects.contrast
            warmth = (1.0 + WARMTH * t, 1.0, 1.0 - WARMTH * t)
            matrix = np.zeros((3, 4), np.float32)
            for ch in range(3):
                matrix[ch, ch] = lighting.gain * lighting.tint[ch] * warmth[ch] * c
                matrix[ch, 3] = lighting.offset * c + 128.0 * (1.0 - c)
            identity = np.array_equal(matrix, np.eye(3, 4, dtype=np.float32))
            self._colour = (lighting, None if identity else matrix)
        return self._colour[1]

    def light_gain(self, row0: int) -> np.ndarray | None:
        """Return this frame's light gain (255: all of it) from vignette and shadows, if any."""
        count = int(self.rng.integers(0, self.effects.shadows + 1)) if self.effects.shadows else 0
        if count == 0:
            return self.vignette
        cam = self.camera
        gain = (np.full((cam.height_px, cam.width), 255, np.uint8) if self.vignette is None
                else self.vignette.copy())
        ground_h = cam.height_px - row0
        small = np.zeros((ground_h // SHADOW_SCALE + 1, cam.width // SHADOW_SCALE), np.uint8)
        for _ in range(count):
            small_poly = self._shadow_polygon(row0) / SHADOW_SCALE
            cv2.fillPoly(small, [_fixed(small_poly)], int(255 * self.effects.shadow_darkness),
                         cv2.LINE_AA, 4)
        small = cv2.GaussianBlur(small, (0, 0), 1.5)
        shade = cv2.resize(small, (cam.width, ground_h), interpolation=cv2.INTER_LINEAR)
        cv2.multiply(gain[row0:], 255 - shade, dst=gain[row0:], scale=1.0 / 255.0)
        return gain

    def _shadow_polygon(self, row0: int) -> np.ndarray:
        """
        Return a random shadow's corners in pixels of the ground rows.

        A quadrilateral on the ground (a tree's, a bridge's or a stand's shadow), placed in the
        car's frame so that it has the perspective of the road; corners are kept ahead of the
        lens, where the ground is seen.
        """
        cam, rng = self.camera, self.rng
        forward, left = rng.uniform(1.5, 20.0), rng.uniform(-8.0, 8.0)
        length, width = rng.uniform(0.8, 6.0), rng.uniform(3.0, 14.0)
        angle = rng.uniform(-1.0, 1.0)  # rad from straight across the road
        c, s = math.cos(angle), math.sin(angle)
        corners = []
        for along, across in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            a, b = along * length / 2, across * width / 2
            fwd = max(forward + a * c - b * s, cam.mount_x + 0.5)
            col, row = cam.ground_to_image(fwd, left + a * s + b * c)
            corners.append((col, row - row0))
        return np.array(corners)


#: Side of the square tiles the road is blended in (pixels).
BLEND_TILE = 256


def _blend_road(image: np.ndarray, asphalt: np.ndarray, road: np.ndarray) -> None:
    """
    Lay ``asphalt`` over ``image`` where ``road`` (0 to 255, anti-aliased edges) covers it.

    Only the tiles the road touches are blended (a fifth to a third of a circuit's texture): a
    whole-texture float weight was two 190 MB arrays and half of a painting's time. Per pixel the
    arithmetic is blendLinear's, so the texture is the same as a whole-image blend's.
    """
    h, w = road.shape
    for r0 in range(0, h, BLEND_TILE):
        for c0 in range(0, w, BLEND_TILE):
            cover = road[r0:r0 + BLEND_TILE, c0:c0 + BLEND_TILE]
            if not cover.any():
                continue
            weight = cover.astype(np.float32) * (1.0 / 255.0)
            tile = (slice(r0, r0 + BLEND_TILE), slice(c0, c0 + BLEND_TILE))
            image[tile] = cv2.blendLinear(asphalt[tile], image[tile], weight, 1.0 - weight)


def _fixed(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates as cv2's 4-bit fixed point, so thin lines keep sub-pixel positions."""
    return np.round(points * 16).astype(np.int32).reshape(-1, 1, 2)


def _noise_field(h: int, w: int, rng: np.random.Generator, feature_px: int) -> np.ndarray:
    """Draw the coarse random field of :func:`_noise_image` (one value per ``feature_px``)."""
    return rng.normal(0.0, 1.0, (max(2, h // feature_px), max(2, w // feature_px))).astype(
        np.float32
    )


def _noise_image(
    h: int,
    w: int,
    noise: np.ndarray,
    base: tuple[int, int, int],
    amplitude: float,
) -> np.ndarray:
    """
    Return an H x W colour image with smooth brightness variation from :func:`_noise_field`.

    Its features span about the field's ``feature_px`` pixels. Built small and enlarged by
    OpenCV: the features are many pixels across anyway, and a full-size float image of the largest
    circuit would cost gigabytes and seconds. Grass has patches a few metres across, as in a real
    field; asphalt a fine grain, so that speed is visible on straights.
    """
    small_h, small_w = max(2, h // 4), max(2, w // 4)
    noise = cv2.resize(noise, (small_w, small_h), interpolation=cv2.INTER_CUBIC)
    small = np.clip(np.array(base, np.float32) * (1.0 + amplitude * noise[..., None]), 0, 255)
    return cv2.resize(small.astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)


def _sky(h: int, w: int, horizon: float, ground_rgb: tuple[int, ...],
         top_rgb: RGB = SKY_TOP_RGB, horizon_rgb: RGB = SKY_HORIZON_RGB) -> np.ndarray:
    """Sky gradient above the horizon, distant grass below it (rows beyond the render range)."""
    img = np.empty((h, w, 3), np.uint8)
    top, bottom = np.array(top_rgb, np.float32), np.array(horizon_rgb, np.float32)
    rows = min(h, max(1, int(math.ceil(horizon))))
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
    parser.add_argument(
        '--look', type=int, metavar='SEED',
        help='a random appearance drawn from this seed, as training frames have (default: clean)'
    )
    parser.add_argument(
        '--strength', type=float, default=1.0, help='how far --look varies, 0 to 1 (default: 1)'
    )


def run(args: argparse.Namespace) -> int:
    """
    ``pilotnet render``: one camera frame at ``--s`` metres along the circuit.

    Written to ``--out``.
    """
    from pilotnet_optimized.sim.circuits import get_circuit
    circuit = get_circuit(args.circuit)
    x, y, yaw = circuit.pose_at(args.s, args.lateral)
    appearance = None
    if args.look is not None:
        appearance = Appearance.random(np.random.default_rng(args.look), args.strength)
    frame = CameraRenderer(circuit, appearance=appearance).render(
        x, y, yaw + args.yaw_offset, Lighting(fog=args.fog) if args.fog else None
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
        raise PilotnetError(f'could not write {out} (use a .png or .jpg name)')
    print(f'{out}: {frame.shape[1]}x{frame.shape[0]} frame of {circuit.name} at s={args.s:.1f} m '
          f'(x={x:.2f}, y={y:.2f}, yaw={yaw:.3f})')
    return 0
