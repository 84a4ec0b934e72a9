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
Domain randomisation of training frames: the clean look unchanged, random looks varied and sane.

The checksums were taken with the renderer and dataset writer as they were before randomisation
existed (same pinned OpenCV and numpy), so a clean frame that changes by one bit fails here.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import json
import math
from pathlib import Path
import zlib

import cv2
import numpy as np
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.sim.camera import (Appearance, CameraModel, CameraRenderer,
                                           CircuitTexture, FrameEffects, KERB_PAIRS, Lighting,
                                           PaintedLook)
from pilotnet_optimized.sim.circuit import Circuit
from pilotnet_optimized.sim.circuits import get_circuit
from pilotnet_optimized.sim.dataset import add_arguments, run, write_dataset
import pytest

#: crc32 of the clean texture of `simple` and of clean frames at pose_at(s, 0.8), before.
CLEAN_TEXTURE_CRC = 1678424762
CLEAN_FRAME_CRC = {0.0: 3857448017, 37.5: 3248341472, 120.0: 4024090028, 300.0: 481080093}
#: Frames with Lighting.random(default_rng(3)) drawn three times, at pose_at(0, 50, 100), before.
LIGHTING_FRAME_CRC = (1248057022, 447094396, 1924587469)
FOG_FRAME_CRC = 3011800799  # Lighting(fog=0.5) at pose_at(10)
#: crc32 over the decoded frames of write_dataset(simple, 30, seed=7, episode_seconds=0.5), with
#: lighting=False and with the default lighting, before; and of the first one's data.csv.
CLEAN_DATASET_CRC = 4264694738
LIGHTING_DATASET_CRC = 1248675770
CLEAN_LABELS_CRC = 2939917513
#: `pilotnet dataset --circuit simple --frames 12 --seed 7 --no-lighting`, before.
CLI_CLEAN_DATASET_CRC = 3374418245


def crc(image: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(image).tobytes())


def frames_crc(folder: Path, count: int) -> int:
    value = 0
    for i in range(count):
        value = zlib.crc32(cv2.imread(str(folder / f'{i}.png')).tobytes(), value)
    return value


def straight_pose(circuit: Circuit) -> tuple[float, float, float]:
    """Return the pose in the middle of the circuit's longest nearly straight stretch."""
    straight = np.abs(circuit.curvature) < 1e-3
    best, run_length, end = 0, 0, 0
    for i, flag in enumerate(np.concatenate([straight, straight])):
        run_length = run_length + 1 if flag else 0
        if run_length > best:
            best, end = run_length, i
    return circuit.pose_at(float(circuit.arc[(end - best // 2) % len(circuit.centreline)]))


def patch(frame: np.ndarray, camera: CameraModel, forward: float, left: float) -> np.ndarray:
    """Median colour of the 5x5 pixels where a ground point in the car frame appears."""
    col, row = (int(round(v)) for v in camera.ground_to_image(forward, left))
    return np.median(frame[row - 2:row + 3, col - 2:col + 3].reshape(-1, 3).astype(int), axis=0)


@pytest.fixture(scope='module')
def simple() -> Circuit:
    return get_circuit('simple')


@pytest.fixture(scope='module')
def clean_texture(simple) -> CircuitTexture:
    return CircuitTexture(simple)


@pytest.fixture(scope='module')
def clean_frame(simple, clean_texture) -> np.ndarray:
    return CameraRenderer(simple, texture=clean_texture).render(*straight_pose(simple))


def effects_renderer(simple, texture, **effects) -> CameraRenderer:
    appearance = Appearance(painted=texture.look, effects=FrameEffects(seed=1, **effects))
    return CameraRenderer(simple, texture=texture, appearance=appearance)


@pytest.fixture(scope='module')
def random_looks(simple) -> list[tuple[Appearance, CircuitTexture]]:
    """Six random appearances with their textures, painted at 10 cm (4 times faster)."""
    looks = []
    for seed in range(6):
        appearance = Appearance.random(np.random.default_rng(seed))
        looks.append((appearance, CircuitTexture(simple, resolution=0.1,
                                                 look=appearance.painted)))
    return looks


# -- the clean look is today's --------------------------------------------------------------------
def test_clean_texture_and_frames_are_byte_identical_to_before(simple, clean_texture):
    assert crc(clean_texture.image) == CLEAN_TEXTURE_CRC
    for renderer in (CameraRenderer(simple, texture=clean_texture),
                     CameraRenderer(simple, texture=clean_texture, appearance=Appearance())):
        for s, expected in CLEAN_FRAME_CRC.items():
            assert crc(renderer.render(*simple.pose_at(s, 0.8))) == expected, s


def test_lighting_and_fog_frames_are_byte_identical_to_before(simple, clean_texture):
    renderer = CameraRenderer(simple, texture=clean_texture)
    rng = np.random.default_rng(3)
    for k, expected in enumerate(LIGHTING_FRAME_CRC):
        assert crc(renderer.render(*simple.pose_at(50.0 * k), Lighting.random(rng))) == expected
    assert crc(renderer.render(*simple.pose_at(10.0), Lighting(fog=0.5))) == FOG_FRAME_CRC


def test_strength_zero_is_the_clean_look(simple, clean_texture):
    rng = np.random.default_rng(9)
    assert Appearance.random(rng, 0.0) == Appearance()
    assert Appearance().clean and not Appearance.random(rng).clean
    assert CameraModel() == CameraModel(height=0.6, pitch=0.0, mount_x=0.45, mount_y=0.04)
    renderer = CameraRenderer(simple, texture=clean_texture,
                              appearance=Appearance.random(rng, 0.0))
    assert crc(renderer.render(*simple.pose_at(0.0, 0.8))) == CLEAN_FRAME_CRC[0.0]


def test_the_texture_paints_the_circuits_line_width():
    angles = np.linspace(0, 2 * np.pi, 2500, endpoint=False)
    ring = Circuit('ring', np.column_stack([40 * np.cos(angles), 40 * np.sin(angles)]))

    def red_pixels(texture: CircuitTexture) -> int:
        r, g, b = (texture.image[..., i].astype(int) for i in range(3))
        return int(((r > 150) & (g < 90) & (b < 90)).sum())

    thin = red_pixels(CircuitTexture(ring))
    wide = red_pixels(CircuitTexture(replace(ring, line_width=0.6)))
    scaled = red_pixels(CircuitTexture(ring, look=PaintedLook(line_width_scale=2.0)))
    assert 1.7 < wide / thin < 2.3
    assert scaled == wide


def test_a_texture_painted_with_another_look_is_refused(simple, clean_texture):
    with pytest.raises(PilotnetError, match='another look'):
        CameraRenderer(simple, texture=clean_texture,
                       appearance=Appearance(painted=PaintedLook(seed=1)))


# -- random looks ---------------------------------------------------------------------------------
def test_random_appearances_are_deterministic_and_differ(simple, random_looks, clean_frame):
    appearances = [a for a, _ in random_looks]
    assert appearances[0] == Appearance.random(np.random.default_rng(0))
    assert len({repr(a) for a in appearances}) == len(appearances)
    assert not any(a.clean for a in appearances)
    pose = straight_pose(simple)
    frames = []
    for appearance, texture in random_looks[:3]:
        twice = [CameraRenderer(simple, texture=texture, appearance=appearance).render(*pose)
                 for _ in range(2)]
        assert np.array_equal(*twice)  # the per-frame randomness is seeded by the appearance
        frames.append(twice[0])
    for k, frame in enumerate(frames):
        assert np.abs(frame.astype(int) - clean_frame).mean() > 5
        for other in frames[k + 1:]:
            assert np.abs(frame.astype(int) - other).mean() > 5


def test_random_painted_looks_stay_in_bounds(simple, random_looks):
    """Check the ranges, then the texture from above: grey road, red line, green grass."""
    for appearance, texture in random_looks:
        look = appearance.painted
        assert 72 <= look.road_rgb[1] <= 130 and np.ptp(look.road_rgb) <= 20
        assert 170 <= look.line_rgb[0] <= 235 and max(look.line_rgb[1:]) <= 50
        assert 0.7 <= look.line_width_scale <= 1.6 and 0.6 <= look.kerb_stripe_m <= 2.0
        assert any(np.abs(np.subtract(look.kerb_rgb, pair)).max() <= 15 for pair in KERB_PAIRS)

        def colours(lateral: float, look=look, texture=texture) -> np.ndarray:
            poses = [simple.pose_at(s, lateral) for s in np.arange(0.0, simple.length, 5.0)]
            px = np.round(texture.world_to_pixel(np.array(poses)[:, :2])).astype(int)
            return np.median(texture.image[px[:, 1], px[:, 0]].astype(int), axis=0)

        line, road = colours(0.0), colours(2.0)
        grass = colours(simple.road_width / 2 + simple.kerb_width + 4.0)
        assert line[0] >= 165 and line[0] - max(line[1:]) >= 110, (look, line)
        assert 65 <= road.mean() <= 140 and np.ptp(road) <= 25, (look, road)
        assert grass[1] == grass.max() and grass[1] > grass.min() + 20, (look, grass)


def test_the_line_stays_red_and_the_road_grey_in_random_frames(simple, random_looks):
    pose = straight_pose(simple)
    for appearance, texture in random_looks:
        renderer = CameraRenderer(simple, texture=texture, appearance=appearance)
        frame = renderer.render(*pose)
        assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
        line = patch(frame, renderer.camera, 4.0, 0.0)  # where the jittered camera sees the line
        road = patch(frame, renderer.camera, 4.0, 2.0)
        assert line[0] - max(line[1:]) >= 30, (appearance, line)
        assert 20 <= road.mean() <= 200 and np.ptp(road) <= 60, (appearance, road)


def test_strength_scales_every_range():
    weak = [Appearance.random(np.random.default_rng(s), 0.25) for s in range(20)]
    full = [Appearance.random(np.random.default_rng(s), 1.0) for s in range(20)]
    for a in weak + full:
        assert abs(a.camera_pitch) <= math.radians(1.5) and abs(a.camera_height_offset) <= 0.03
        assert 0 <= a.effects.shadows <= 3 and a.effects.noise_sigma <= 6.0
        assert 0.8 <= a.effects.contrast <= 1.2 and abs(a.effects.temperature) <= 1.0

    def spread(looks: list[Appearance]) -> float:
        return float(np.mean([abs(a.painted.road_rgb[1] - 95) + abs(a.camera_pitch) * 1e3
                              + abs(a.effects.lighting.gain - 1) * 100 for a in looks]))

    assert spread(weak) < 0.5 * spread(full)
    assert all(abs(a.camera_pitch) <= 0.25 * math.radians(1.5) + 1e-12 for a in weak)


# -- frame effects --------------------------------------------------------------------------------
def test_shadows_only_darken_the_ground(simple, clean_texture, clean_frame):
    renderer = effects_renderer(simple, clean_texture, shadows=3, shadow_darkness=0.5)
    pose = straight_pose(simple)
    out = np.empty_like(clean_frame)
    darker = 0
    for _ in range(6):
        frame = renderer.render(*pose, out=out)
        assert frame is out
        assert np.all(frame <= clean_frame)
        sky = renderer.camera.ground_row
        assert np.array_equal(frame[:sky], clean_frame[:sky])  # shadows lie on the ground
        darker += int((frame.astype(int).sum(axis=2) < clean_frame.astype(int).sum(axis=2) - 30)
                      .mean() > 0.01)
    assert darker >= 2  # 0..3 shadows a frame: most frames have some


def test_vignette_darkens_the_corners_not_the_centre(simple, clean_texture, clean_frame):
    frame = effects_renderer(simple, clean_texture, vignette=0.3).render(*straight_pose(simple))
    corners = [frame[:20, :20], frame[:20, -20:], frame[-20:, :20], frame[-20:, -20:]]
    clean_corners = [clean_frame[:20, :20], clean_frame[:20, -20:], clean_frame[-20:, :20],
                     clean_frame[-20:, -20:]]
    for corner, clean in zip(corners, clean_corners):
        assert corner.mean() < 0.8 * clean.mean()
    centre = (slice(230, 250), slice(310, 330))
    assert np.abs(frame[centre].astype(int) - clean_frame[centre]).max() <= 1


def laplacian_energy(image: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_32F)).mean())


def test_blur_and_motion_blur_soften_the_frame(simple, clean_texture, clean_frame):
    pose = straight_pose(simple)
    gaussian = effects_renderer(simple, clean_texture, blur_sigma=1.2).render(*pose)
    motion = effects_renderer(simple, clean_texture, motion_blur_px=7).render(*pose)
    assert laplacian_energy(gaussian) < 0.7 * laplacian_energy(clean_frame)
    assert laplacian_energy(motion) < 0.8 * laplacian_energy(clean_frame)
    vertical = np.abs(np.diff(motion[240:].astype(int), axis=0)).mean()
    assert vertical < 0.7 * np.abs(np.diff(clean_frame[240:].astype(int), axis=0)).mean()


def test_noise_is_zero_mean_and_new_every_frame(simple, clean_texture, clean_frame):
    renderer = effects_renderer(simple, clean_texture, noise_sigma=5.0)
    pose = straight_pose(simple)
    first, second = (renderer.render(*pose).astype(int) for _ in range(2))
    diff = first[300:] - clean_frame[300:]  # the ground, far from 0 and 255
    assert abs(diff.mean()) < 0.5 and 4.0 < diff.std() < 6.0
    assert (first != second).mean() > 0.5


def test_jpeg_colour_and_contrast(simple, clean_texture, clean_frame):
    pose = straight_pose(simple)
    jpeg = effects_renderer(simple, clean_texture, jpeg_quality=40).render(*pose).astype(int)
    assert 0.2 < np.abs(jpeg - clean_frame).mean() < 6
    warm = effects_renderer(simple, clean_texture, temperature=1.0).render(*pose).astype(int)
    means, clean_means = warm.mean(axis=(0, 1)), clean_frame.mean(axis=(0, 1))
    assert means[0] > clean_means[0] + 3 and means[2] < clean_means[2] - 3
    assert abs(means[1] - clean_means[1]) < 1
    punchy = effects_renderer(simple, clean_texture, contrast=1.2).render(*pose)
    assert punchy.std() > 1.15 * clean_frame.std()


def test_fog_and_lighting_match_the_clean_path_in_the_effects_path(simple, clean_texture):
    """The effects path's uint8 fog and colour matrix agree with the original fog and table."""
    pose = straight_pose(simple)
    light = Lighting(gain=0.85, offset=6.0, tint=(1.03, 1.0, 0.95), fog=0.5)
    original = CameraRenderer(simple, texture=clean_texture).render(*pose, light).astype(float)
    effects = effects_renderer(simple, clean_texture, lighting=light, contrast=1.2)
    expected = np.clip((original - 128) * 1.2 + 128, 0, 255)
    # The original truncates twice (fog, then its table), the effects path rounds: a few levels.
    error = np.abs(effects.render(*pose).astype(float) - expected)
    assert error.max() <= 4.0 and error.mean() < 1.5


# -- camera mount ---------------------------------------------------------------------------------
@pytest.mark.parametrize('pitch', [-0.026, 0.0, 0.026])
def test_pitched_camera_geometry_is_consistent(pitch):
    cam = replace(CameraModel(), pitch=pitch, height=0.63)
    assert cam.horizon_row == pytest.approx(cam.cy - cam.fx * math.tan(pitch))
    assert cam.horizon_row < cam.ground_row
    to_ground = cam.image_to_ground(cam.ground_row)
    for forward, left in ((2.0, 0.0), (5.0, 1.5), (20.0, -3.0), (50.0, 4.0)):
        col, row = cam.ground_to_image(forward, left)
        f, lat, w = to_ground @ (col, row - cam.ground_row, 1.0)
        assert (f / w, lat / w) == pytest.approx((forward, left), abs=1e-6)
        # Straight ahead of the lens, the row's distance is the point's.
        _, ahead_row = cam.ground_to_image(forward, cam.mount_y)
        assert cam.row_distance(np.array([ahead_row]))[0] + cam.mount_x == pytest.approx(forward)


def test_the_renderer_sees_through_the_jittered_mount(simple, clean_texture, clean_frame):
    pose = straight_pose(simple)
    appearance = Appearance(painted=clean_texture.look, camera_pitch=math.radians(1.5),
                            camera_height_offset=0.03)
    renderer = CameraRenderer(simple, texture=clean_texture, appearance=appearance)
    assert renderer.camera.pitch == math.radians(1.5) and renderer.camera.height == 0.63
    frame = renderer.render(*pose)
    assert not np.array_equal(frame, clean_frame)
    # Pitched down, the horizon rises by fx tan(1.5 deg), about 8 rows: rows the level camera
    # shows as sky are ground now.
    assert renderer.camera.ground_row <= CameraModel().ground_row - 7
    for forward in (2.0, 4.0, 10.0):  # the line is where the pitched camera model puts it
        line = patch(frame, renderer.camera, forward, 0.0)
        assert line[0] > 150 and max(line[1:]) < 90


# -- dataset --------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def datasets(simple, tmp_path_factory) -> Path:
    """Write the same drive clean, with lighting, randomised and randomised again."""
    root = tmp_path_factory.mktemp('randomise')
    common = {'seed': 7, 'episode_seconds': 0.5, 'progress': False}
    write_dataset(simple, 30, root / 'clean', lighting=False, randomise=False, **common)
    write_dataset(simple, 30, root / 'lighting', randomise=False, **common)
    for name in ('random', 'again'):
        write_dataset(simple, 12, root / name, texture_frames=5, **common)
    return root


def test_a_dataset_without_randomisation_is_byte_identical_to_before(datasets):
    assert frames_crc(datasets / 'clean', 30) == CLEAN_DATASET_CRC
    assert zlib.crc32((datasets / 'clean' / 'data.csv').read_bytes()) == CLEAN_LABELS_CRC
    assert frames_crc(datasets / 'lighting', 30) == LIGHTING_DATASET_CRC
    meta = json.loads((datasets / 'clean' / 'meta.json').read_text())
    assert meta['appearance']['randomise'] is False and meta['randomise'] is False
    assert meta['appearance']['episodes'][0] == {'lighting': None}


def test_a_randomised_dataset_changes_the_look_not_the_drive(datasets):
    random, lighting = datasets / 'random', datasets / 'lighting'
    for name in ('data.csv', 'poses.csv'):  # the look has its own random stream
        rows = (random / name).read_text().splitlines()
        assert rows == (lighting / name).read_text().splitlines()[:13]
    for i in range(12):
        look = cv2.imread(str(random / f'{i}.png'))
        assert look.shape == (480, 640, 3)
        assert np.abs(look.astype(int) - cv2.imread(str(lighting / f'{i}.png'))).mean() > 5
        assert np.array_equal(look, cv2.imread(str(datasets / 'again' / f'{i}.png')))


def test_a_randomised_dataset_records_its_looks(datasets):
    meta = json.loads((datasets / 'random' / 'meta.json').read_text())
    assert meta['randomise'] is True and meta['strength'] == 1.0
    record = meta['appearance']
    assert record['randomise'] is True and record['texture_frames'] == 5
    # Episodes of 10 frames start at frames 0 and 10; a texture serves 5 frames, then the next
    # episode paints a new one.
    assert meta['episodes'] == 2 and len(record['episodes']) == 2 and len(record['painted']) == 2
    assert [e['painted'] for e in record['episodes']] == [0, 1]
    assert record['painted'][0] != record['painted'][1]
    episode = record['episodes'][0]
    assert set(episode) == {'painted', 'sky_top_rgb', 'sky_horizon_rgb', 'effects',
                            'camera_height_offset', 'camera_pitch'}
    assert abs(episode['camera_pitch']) <= math.radians(1.5)
    lighting_meta = json.loads((datasets / 'lighting' / 'meta.json').read_text())
    # The episode's lighting is the one the unrandomised set drew.
    assert episode['effects']['lighting'] == lighting_meta['appearance']['episodes'][0]['lighting']
    painted = record['painted'][0]
    look = PaintedLook(**{k: tuple(map(tuple, v)) if k == 'kerb_rgb' else
                          tuple(v) if isinstance(v, list) else v for k, v in painted.items()})
    assert look == PaintedLook.random(np.random.default_rng([7, 0x100C]))


def test_the_dataset_command_flags(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ['--circuit', 'simple', '--frames', '12', '--out', str(tmp_path), '--seed', '7']
    defaults = parser.parse_args(base)
    assert defaults.randomise is None and defaults.strength == 1.0 and not defaults.no_lighting
    assert parser.parse_args(base + ['--randomise']).randomise is True
    args = parser.parse_args(base + ['--no-randomise', '--no-lighting', '--json'])
    assert run(args) == 0
    assert frames_crc(tmp_path, 12) == CLI_CLEAN_DATASET_CRC
    with pytest.raises(PilotnetError, match='strength'):
        write_dataset(get_circuit('simple'), 1, tmp_path / 'x', strength=1.5, progress=False)


def test_validation_and_test_circuits_stay_clean_unless_asked(tmp_path):
    info = write_dataset(get_circuit('hairpins'), 1, tmp_path, progress=False)
    assert info.split == 'val' and info.randomise is False
    assert json.loads((tmp_path / 'meta.json').read_text())['appearance']['randomise'] is False


def test_staged_frames_finished_out_of_order_are_the_rendered_ones(simple, clean_texture):
    """The dataset writer finishes lens effects on other threads, in any order: same frames."""
    effects = {'shadows': 2, 'shadow_darkness': 0.4, 'vignette': 0.2, 'blur_sigma': 0.8,
               'motion_blur_px': 3, 'noise_sigma': 4.0, 'jpeg_quality': 60,
               'lighting': Lighting(gain=0.9, fog=0.3)}
    poses = [simple.pose_at(s, 0.5) for s in (5.0, 40.0, 90.0, 150.0)]
    whole = effects_renderer(simple, clean_texture, **effects)
    expected = [whole.render(*p) for p in poses]
    staged = effects_renderer(simple, clean_texture, **effects)
    parts = [staged.render_staged(*p) for p in poses]
    assert all(finish is not None for _, finish in parts)
    for frame, finish in reversed(parts):
        finish(frame)
    for (frame, _), want in zip(parts, expected):
        np.testing.assert_array_equal(frame, want)
    clean = CameraRenderer(simple, texture=clean_texture)
    frame, finish = clean.render_staged(*poses[0])
    assert finish is None and crc(frame) == crc(clean.render(*poses[0]))
