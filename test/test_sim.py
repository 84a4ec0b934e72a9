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

"""The built-in simulator: circuits, camera, kinematics, expert driver and dataset writer."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
from pilotnet_optimized.errors import PilotnetError, UnknownCircuitError
from pilotnet_optimized.laps import EndReason
from pilotnet_optimized.sim import (BUILTIN_CIRCUITS, CameraModel, CameraRenderer, circuit_names,
                                    ExpertDriver, get_circuit, PlanarCar, SimConfig, Simulator,
                                    SPLITS)
from pilotnet_optimized.sim.camera import RED_LINE_RGB
from pilotnet_optimized.sim.dataset import read_labels, write_dataset
from pilotnet_optimized.sim.episodes import drive_expert
import pytest

BAGS = Path(__file__).resolve().parents[2] / 'shared' / 'behavior_metrics' / 'perfect_bags'


def red_mask(frame: np.ndarray) -> np.ndarray:
    """Pixels of the centre line's red (and nothing else in the scene is that red)."""
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    return (r > 150) & (g < 90) & (b < 90)


@pytest.fixture(scope='module')
def simple():
    return get_circuit('simple')


@pytest.fixture(scope='module')
def simple_renderer(simple):
    return CameraRenderer(simple)


# -- circuits -------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', list(BUILTIN_CIRCUITS))
def test_builtin_circuit_is_drivable_geometry(name):
    c = get_circuit(name)
    spec = BUILTIN_CIRCUITS[name]
    assert c.length == pytest.approx(spec.length_m, rel=0.01)
    # The road must not overlap itself (kerbs included) and bends must be wider than half the road.
    assert c.min_clearance() > c.road_width + 2 * c.kerb_width
    assert c.min_radius() > c.road_width / 2 + 1.0
    assert c.spacing == pytest.approx(0.1, abs=0.01)


def test_simple_circuit_is_about_460_m_and_long_fast_is_long():
    assert get_circuit('simple').length == pytest.approx(460, rel=0.02)
    assert get_circuit('long_fast').length > 2.5 * get_circuit('simple').length


def test_splits_keep_circuits_apart():
    seen = [n for names in SPLITS.values() for n in names]
    assert len(seen) == len(set(seen))
    assert set(seen) == set(circuit_names())
    assert 'simple' in SPLITS['train']


def test_unknown_circuit_names_the_choices():
    with pytest.raises(UnknownCircuitError) as err:
        get_circuit('simpel')
    msg = str(err.value)
    assert "'simpel'" in msg and 'simple' in msg and "did you mean 'simple'" in msg
    assert '\n' not in msg


def test_pose_and_projection_agree(simple):
    for s in (0.0, 77.7, 300.0):
        x, y, yaw = simple.pose_at(s, lateral=1.5)
        p = simple.project(x, y)
        assert p.lateral == pytest.approx(1.5, abs=0.05)
        assert p.s == pytest.approx(s, abs=0.15)


# -- kinematics -----------------------------------------------------------------------------------
def test_constant_turn_closes_a_circle():
    car = PlanarCar(0.0, 0.0, 0.0, dt=0.01)
    w = 0.5
    for _ in range(int(round(2 * math.pi / w / 0.01))):
        car.step(10.0, w)
    # Radius v / w = 20 m; after one full turn the car is back where it started.
    assert math.hypot(car.state.x, car.state.y) < 0.05
    assert car.state.t == pytest.approx(2 * math.pi / w, abs=0.01)


def test_kinematics_independent_of_step_size():
    a, b = PlanarCar(0, 0, 0.3, dt=0.01), PlanarCar(0, 0, 0.3, dt=0.05)
    for _ in range(500):
        a.step(12.0, -0.7)
    for _ in range(100):
        b.step(12.0, -0.7)
    assert (a.state.x, a.state.y) == pytest.approx((b.state.x, b.state.y), abs=1e-6)


def test_non_finite_command_is_refused():
    with pytest.raises(ValueError, match='non-finite'):
        PlanarCar(0, 0, 0).step(float('nan'), 0.0)


# -- camera ---------------------------------------------------------------------------------------
def straight_s(circuit) -> float:
    """Arc length in the middle of the circuit's longest nearly straight stretch."""
    straight = np.abs(circuit.curvature) < 1e-3
    best, run, end = 0, 0, 0
    for i, flag in enumerate(np.concatenate([straight, straight])):
        run = run + 1 if flag else 0
        if run > best:
            best, end = run, i
    return float(circuit.arc[(end - best // 2) % len(circuit.centreline)])


def test_frame_shape_and_sky(simple_renderer, simple):
    frame = simple_renderer.render(*simple.start_pose)
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
    sky = frame[:200].reshape(-1, 3).mean(axis=0)
    assert sky[2] > sky[0] + 40  # blue above the horizon


def test_red_line_at_image_centre_on_the_centre_line(simple_renderer, simple):
    s = straight_s(simple)
    frame = simple_renderer.render(*simple.pose_at(s))
    cam = simple_renderer.camera
    mask = red_mask(frame)
    assert not mask[: int(cam.cy)].any(), 'red above the horizon'
    for row in range(280, 480, 20):
        cols = np.flatnonzero(mask[row])
        assert cols.size, f'no red line in row {row}'
        centre = cols.mean()
        # The camera sits 0.04 m left of the car's axis, so the line is a few pixels right of
        # centre.
        forward = cam.fx * cam.height / (row + 0.5 - cam.cy) + cam.mount_x
        expected, _ = cam.ground_to_image(forward, 0.0)
        assert abs(centre - expected) < 3.0, (row, centre, expected)
        assert abs(centre - cam.width / 2) < 25


def test_line_moves_left_when_car_is_right_of_it(simple_renderer, simple):
    s = straight_s(simple)
    frame = simple_renderer.render(*simple.pose_at(s, lateral=-1.5))
    cols = np.flatnonzero(red_mask(frame)[300])
    # The line, 1.5 m to the car's left, crosses row 300 about 3.6 m ahead: well left of centre.
    assert cols.size and cols.mean() < 320 - 100


def test_car_turned_off_the_road_sees_no_red_line(simple_renderer, simple):
    s = straight_s(simple)
    c = simple
    # Beside the road on the grass, facing away from it.
    x, y, yaw = c.pose_at(s, lateral=c.road_width / 2 + c.kerb_width + 3.0)
    frame = simple_renderer.render(x, y, yaw + math.pi / 2)
    assert red_mask(frame).sum() == 0
    grass = frame[400:].reshape(-1, 3).mean(axis=0)
    assert grass[1] > grass[0] and grass[1] > grass[2]


def test_render_is_deterministic(simple_renderer, simple):
    a = simple_renderer.render(*simple.pose_at(50.0)).copy()
    b = simple_renderer.render(*simple.pose_at(50.0))
    assert np.array_equal(a, b)


def test_camera_model_matches_behavior_metrics():
    cam = CameraModel()
    assert (cam.width, cam.height_px) == (640, 480)
    assert cam.fx == pytest.approx(320 / math.tan(1.57 / 2))
    assert cam.mount_x == 0.45


# -- expert and closed loop -----------------------------------------------------------------------
@pytest.mark.parametrize('name', list(BUILTIN_CIRCUITS))
def test_expert_completes_a_lap_without_leaving_the_road(name):
    c = get_circuit(name)
    result = drive_expert(c, laps=1)
    assert result.end_reason is EndReason.LAPS_DONE
    assert result.max_abs_lateral_m < c.road_width / 2
    assert result.metrics.percentage_completed >= 100.0
    assert result.metrics.lap_seconds is not None and result.metrics.lap_seconds < c.timeout_s
    assert 6.5 <= result.metrics.average_speed <= 24.0
    assert result.metrics.position_deviation_mean_m < 1.0


@pytest.mark.skipif(not BAGS.is_dir(), reason=f'Behavior Metrics perfect laps not found at {BAGS}')
@pytest.mark.parametrize('bag', ['lap-simple-circuit.bag', 'lap-montmelo.bag', 'lap-montreal.bag',
                                 'lap-nurburgring.bag'])
def test_expert_drives_a_circuit_read_from_a_perfect_lap_bag(bag):
    c = get_circuit(str(BAGS / bag))
    assert c.source.endswith(bag)
    result = drive_expert(c, laps=1)
    assert result.end_reason is EndReason.LAPS_DONE
    assert result.max_abs_lateral_m < c.road_width / 2


def test_expert_recovers_from_disturbances():
    c = get_circuit('simple')
    clean = drive_expert(c, laps=1)
    disturbed = drive_expert(c, laps=1, seed=3, perturb=True)
    assert disturbed.end_reason is EndReason.LAPS_DONE
    # Disturbed, the car strays further from the line than the clean run, and still stays on the
    # road.
    assert disturbed.metrics.position_deviation_max_m > clean.metrics.position_deviation_max_m
    assert disturbed.max_abs_lateral_m < c.road_width / 2 + c.kerb_width


def test_expert_commands_stay_in_behavior_metrics_ranges(simple):
    sim = Simulator(simple)
    expert = ExpertDriver(simple)
    vs, ws = [], []
    for _ in range(400):
        v, w = expert.command(sim.state)
        vs.append(v)
        ws.append(w)
        sim.step(v, w)
    assert 6.5 <= min(vs) and max(vs) <= 24.0
    assert -7.1 <= min(ws) and max(ws) <= 7.1
    assert max(vs) > 15.0  # it does go fast on the straights


def test_runs_are_deterministic_for_a_seed():
    c = get_circuit('simple')
    a = drive_expert(c, laps=1, seed=5, perturb=True).trajectory
    b = drive_expert(c, laps=1, seed=5, perturb=True).trajectory
    assert np.array_equal(a.xy, b.xy)


def test_a_car_driven_off_the_road_ends_the_run(simple):
    from pilotnet_optimized.sim.episodes import run_closed_loop
    sim = Simulator(simple, SimConfig())
    result = run_closed_loop(sim, lambda s: (10.0, 1.0), laps=1)
    assert result.end_reason is EndReason.OFF_TRACK
    assert result.metrics.percentage_completed < 20


# -- dataset --------------------------------------------------------------------------------------
def test_dataset_in_deeplearningstudio_layout(tmp_path, simple):
    info = write_dataset(simple, 24, tmp_path / 'ds', seed=1, progress=False)
    ds = tmp_path / 'ds'
    assert info.frames == 24 and info.split == 'train'
    with open(ds / 'data.csv', newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['v', 'w'] and len(rows) == 25
    labels = read_labels(ds)
    assert labels.shape == (24, 2)
    assert np.all((labels[:, 0] >= 6.5) & (labels[:, 0] <= 24.0))
    assert np.all(np.abs(labels[:, 1]) <= 7.1)
    images = sorted(ds.glob('*.png'), key=lambda p: int(p.stem))
    assert [p.stem for p in images] == [str(i) for i in range(24)]
    img = cv2.imread(str(images[0]))
    assert img.shape == (480, 640, 3)
    # Stored as a normal (BGR-on-disk) PNG: the red line reads back red once converted to RGB.
    assert red_mask(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)).any()
    meta = json.loads((ds / 'meta.json').read_text())
    assert meta['circuit'] == 'simple' and meta['frames'] == 24


def test_dataset_refuses_to_overwrite(tmp_path, simple):
    write_dataset(simple, 2, tmp_path, progress=False)
    with pytest.raises(PilotnetError, match='overwrite'):
        write_dataset(simple, 2, tmp_path, progress=False)
    write_dataset(simple, 3, tmp_path, overwrite=True, progress=False)
    assert len(list(tmp_path.glob('*.png'))) == 3


def test_red_line_colour_is_the_scene_only_red():
    assert red_mask(np.array([[RED_LINE_RGB]], np.uint8)).all()


def test_disturbances_start_afresh_each_episode(tmp_path, simple):
    """
    Check that disturbances start afresh each episode.

    Regression: a disturbance scheduled on the previous episode's clock once lasted a whole new
    episode, and the car circled fighting it.
    """
    write_dataset(simple, 90, tmp_path, seed=4, progress=False, episode_seconds=1.0)
    poses = np.genfromtxt(tmp_path / 'poses.csv', delimiter=',', names=True)
    starts = np.flatnonzero(np.diff(poses['episode'], prepend=-1) != 0)
    assert len(starts) >= 4
    assert np.all(poses['w_disturbance'][starts] == 0.0)
    # Disturbed but recovering: on average the car stays near the line.
    assert np.abs(poses['lateral']).mean() < 1.0
    assert np.abs(read_labels(tmp_path)[:, 1]).mean() < 1.0


def test_perturbation_reset_clears_a_disturbance_from_the_old_clock():
    from pilotnet_optimized.sim import Perturbation
    p = Perturbation(np.random.default_rng(0), rate_hz=2.0)
    t = 0.0
    while p.offset(t) == 0.0:  # run the old episode until a disturbance is active
        t += 0.05
    assert t > 0 and p.offset(t) != 0.0
    p.reset(0.0)
    # The new episode's clock starts at zero, before the old disturbance's end time: it must not
    # carry over.
    assert p.offset(0.0) == 0.0
    offsets = [p.offset(k * 0.05) for k in range(200)]
    assert any(o != 0.0 for o in offsets) and sum(o == 0.0 for o in offsets) > 50


def test_bench_sim_command_prints_its_rows(capsys):
    import argparse

    from pilotnet_optimized.sim import bench
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(['--frames', '20', '--steps', '2000', '--json'])) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {r['what']: r for r in result['rows']}
    assert rows['render frame']['count'] == 20 and rows['kinematics step']['count'] == 2
    assert all(
        r['p50_us'] <= r['p90_us'] <= r['p99_us'] and r['per_second'] > 0 for r in rows.values()
    )
    assert bench.run(parser.parse_args(['--frames', '5', '--steps', '1000'])) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == list(bench.COLUMNS) and set(lines[2]) <= {'-', ' '}


# -- the dataset's PNG frames and the painted texture ---------------------------------------------
@pytest.mark.parametrize('deflate', ['isal', 'zlib'])
def test_dataset_png_frames_decode_to_the_rendered_pixels(deflate, monkeypatch, simple):
    import zlib

    from pilotnet_optimized.sim import png
    if deflate == 'zlib':
        monkeypatch.setattr(png, '_deflate', zlib)
    else:
        assert png.DEFLATE == 'isal'   # the pinned requirements install ISA-L
    rng = np.random.default_rng(0)
    frames = [CameraRenderer(simple).render(*simple.pose_at(12.0)),
              rng.integers(0, 256, (7, 5, 3), dtype=np.uint8),     # odd sizes, wrap-around
              np.full((1, 1, 3), 255, np.uint8)]
    for rgb in frames:
        data = png.encode_rgb_png(rgb)
        assert data[:8] == b'\x89PNG\r\n\x1a\n'
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(bgr[..., ::-1], rgb)
    with pytest.raises(ValueError, match='H x W x 3 uint8'):
        png.sub_filter(np.zeros((4, 4), np.uint8))


def test_road_is_blended_in_tiles_as_over_the_whole_texture():
    from pilotnet_optimized.sim.camera import _blend_road, BLEND_TILE
    rng = np.random.default_rng(3)
    h, w = BLEND_TILE * 2 + 37, BLEND_TILE * 3 + 5     # partial tiles at the edges
    grass = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    asphalt = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    road = np.zeros((h, w), np.uint8)
    cv2.line(road, (10, h - 5), (w - 3, 20), 255, 9, cv2.LINE_AA)   # through several tiles
    weight = road.astype(np.float32) * (1.0 / 255.0)
    whole = cv2.blendLinear(asphalt, grass, weight, 1.0 - weight)
    tiled = grass.copy()
    _blend_road(tiled, asphalt, road)
    np.testing.assert_array_equal(tiled, whole)
    assert (tiled != grass).any() and (tiled[road == 0] == grass[road == 0]).all()
