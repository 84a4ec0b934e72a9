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

"""Tests of pilotnet_optimized.laps: trajectories, Behavior Metrics' lap figures, run monitor."""

from __future__ import annotations

from collections.abc import Callable
import json
import math
from pathlib import Path

import numpy as np
from pilotnet_optimized.errors import BagError, PilotnetError, TrajectoryError
from pilotnet_optimized.laps import (checkpoint_progress, circuit_diameter, compute_lap_metrics,
                                     EndReason, load_perfect_lap, load_trajectory, PerfectLap,
                                     point_polyline_distance, RunMonitor, save_trajectory_csv,
                                     Trajectory)
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

BAG_DIR = Path('/work/shared/behavior_metrics/perfect_bags')
# circuit: (points, path length in metres) of Behavior Metrics' perfect-lap recordings.
PERFECT_LAPS = {
    'simple-circuit': (3312, 463.4),
    'montmelo': (5257, 764.8),
    'montreal': (4128, 1513.1),
    'nurburgring': (3797, 586.6),
}


def _bag(circuit: str) -> Path:
    if not BAG_DIR.is_dir():
        pytest.skip(f'Behavior Metrics perfect-lap bags not found at {BAG_DIR}')
    return BAG_DIR / f'lap-{circuit}.bag'


@pytest.fixture(scope='module')
def perfect_runs() -> dict[str, Trajectory]:
    """Return the four perfect laps, loaded once for the module."""
    return {name: load_trajectory(_bag(name)) for name in PERFECT_LAPS}


def _track(spacing: float = 0.13) -> np.ndarray:
    """
    Return a synthetic perfect lap: a rounded, uneven oval sampled every ~``spacing`` metres.

    Like Behavior Metrics' recordings it is a closed loop whose last point stops one spacing
    short of the first (the start is not repeated).
    """
    theta = np.linspace(0.0, 2.0 * np.pi, 20001)
    r = 120.0 + 24.0 * np.sin(3.0 * theta) + 10.0 * np.cos(5.0 * theta)
    dense = np.c_[r * np.cos(theta), 0.6 * r * np.sin(theta)]
    s = np.r_[0.0, np.cumsum(np.hypot(*np.diff(dense, axis=0).T))]
    n = int(s[-1] / spacing)
    u = np.arange(n) * (s[-1] / n)
    return np.c_[np.interp(u, s, dense[:, 0]), np.interp(u, s, dense[:, 1])]


def _normals(xy: np.ndarray) -> np.ndarray:
    """Return the unit left normals of a closed polyline (central differences)."""
    tangent = np.roll(xy, -1, axis=0) - np.roll(xy, 1, axis=0)
    return np.c_[-tangent[:, 1], tangent[:, 0]] / np.hypot(*tangent.T)[:, None]


def _timed(xy: np.ndarray, dt: float = 0.05, t0: float = 0.0) -> Trajectory:
    return Trajectory(t=t0 + np.arange(len(xy)) * dt, xy=xy)


# ---------------------------------------------------------------------------------------------
# Perfect-lap bags


@pytest.mark.parametrize('circuit', sorted(PERFECT_LAPS))
def test_perfect_bag_loads(circuit: str, perfect_runs: dict[str, Trajectory]) -> None:
    traj = perfect_runs[circuit]
    points, length = PERFECT_LAPS[circuit]
    assert len(traj) == points
    assert traj.path_length() == pytest.approx(length, abs=0.1)
    assert traj.t[0] == 0.0
    assert np.all(np.diff(traj.t) >= 0)
    # Header stamps are all 0 in these bags: the record times are used instead.
    assert 0.0 < traj.duration < 30.0
    # The recordings carry all-zero quaternions, i.e. no orientation.
    assert traj.yaw is None and traj.pitch is None


@pytest.mark.parametrize('circuit', sorted(PERFECT_LAPS))
def test_perfect_lap_against_itself(circuit: str, perfect_runs: dict[str, Trajectory]) -> None:
    run = perfect_runs[circuit]
    perfect = PerfectLap.from_trajectory(run)
    m = compute_lap_metrics(run, perfect)
    # Exactly 100: each of the M checkpoints is reached once (the start one at t=0), none
    # is credited ahead of the car (see checkpoint_progress).
    assert m.percentage_completed == pytest.approx(100.0, abs=1e-9)
    assert m.laps_completed == 1
    assert m.lap_seconds == pytest.approx(run.duration, abs=1e-9)
    assert m.position_deviation_mean_m < 1e-6
    assert m.position_deviation_max_m < 1e-6
    assert m.position_deviation_bm == pytest.approx(1.0, abs=1e-9)
    # The "diameter" stops at the first point back within 1 m of the start: the lap length
    # minus at most that last metre.
    assert run.path_length() - 1.0 <= m.circuit_diameter <= run.path_length() + 1e-9
    assert m.completed_distance == pytest.approx(run.path_length())
    assert m.end_reason is None


def test_load_perfect_lap_from_bag() -> None:
    perfect = load_perfect_lap(_bag('montreal'))
    assert len(perfect) == PERFECT_LAPS['montreal'][0]
    # Montreal's last point is the first one back within 1 m of the start: the whole path.
    assert perfect.circuit_diameter == pytest.approx(1513.06, abs=0.01)


# ---------------------------------------------------------------------------------------------
# Metrics on synthetic runs


@pytest.fixture(scope='module')
def track() -> PerfectLap:
    return PerfectLap.from_xy(_track())


def test_shifted_sideways_gives_deviation(track: PerfectLap) -> None:
    m = compute_lap_metrics(_timed(track.xy + 0.5 * _normals(track.xy)), track)
    assert m.position_deviation_mean_m == pytest.approx(0.5, abs=0.01)
    assert m.position_deviation_max_m == pytest.approx(0.5, abs=0.05)
    assert m.position_deviation_bm == pytest.approx(1000.0 ** 0.5, rel=0.05)
    assert m.percentage_completed == pytest.approx(100.0, abs=0.2)


def test_half_lap(track: PerfectLap) -> None:
    half = track.xy[: len(track) // 2]
    m = compute_lap_metrics(_timed(half), track)
    assert m.percentage_completed == pytest.approx(50.0, abs=0.1)
    assert m.laps_completed == 0
    assert m.lap_seconds is None
    # Judged on the covered half only: the other half (far from the run) does not count.
    assert m.position_deviation_max_m < 1e-6


def test_half_lap_deviation_only_on_covered_part(track: PerfectLap) -> None:
    # The second half of the run swerves 2 m aside: the deviation must see it, and only on
    # the checkpoints the run covered (~75 %).
    n = len(track)
    xy = track.xy[: 3 * n // 4].copy()
    xy[n // 2:] += 2.0 * _normals(track.xy)[n // 2: 3 * n // 4]
    m = compute_lap_metrics(_timed(xy), track)
    assert m.percentage_completed == pytest.approx(75.0, abs=0.5)
    assert m.position_deviation_max_m == pytest.approx(2.0, abs=0.05)
    # 1/3 of the covered checkpoints at ~2 m (less near the jump), 2/3 at 0.
    assert 0.55 < m.position_deviation_mean_m < 0.7


def test_reverse_direction_still_completes(track: PerfectLap) -> None:
    run = _timed(track.xy[::-1])
    progress = checkpoint_progress(run.xy, track)
    assert progress.direction == -1
    m = compute_lap_metrics(run, track)
    assert m.percentage_completed == pytest.approx(100.0, abs=0.1)
    assert m.laps_completed == 1
    assert m.position_deviation_max_m < 1e-6


def test_two_laps(track: PerfectLap) -> None:
    m = compute_lap_metrics(_timed(np.r_[track.xy, track.xy]), track)
    assert m.percentage_completed == pytest.approx(200.0, abs=0.1)
    assert m.laps_completed == 2
    # lap_seconds is the *first* lap's close: the last checkpoint of lap one, row M-1.
    assert m.lap_seconds == pytest.approx((len(track) - 1) * 0.05, abs=1e-9)


def test_lap_seconds_constant_speed_circle() -> None:
    # 720 checkpoints on a 50 m circle; the car goes round once a minute, sampled at 20 Hz,
    # starting on checkpoint 0 at t=1234.5 s. The lap closes when the car passes checkpoint
    # 719 (angle 2*pi*719/720, i.e. 59.9167 s): the first sample at or after that is
    # k = 1199 (59.95 s). Behavior Metrics' bare 5 m test would close it ~0.95 s earlier.
    m_cp, radius, period, dt, t0 = 720, 50.0, 60.0, 0.05, 1234.5
    ang = 2.0 * np.pi * np.arange(m_cp) / m_cp
    perfect = PerfectLap.from_xy(radius * np.c_[np.cos(ang), np.sin(ang)])
    k = np.arange(int(1.5 * period / dt))
    phi = 2.0 * np.pi * k * dt / period
    run = Trajectory(t=t0 + k * dt, xy=radius * np.c_[np.cos(phi), np.sin(phi)])
    m = compute_lap_metrics(run, perfect)
    assert isinstance(m.lap_seconds, float)
    assert m.lap_seconds == pytest.approx(1199 * dt, abs=1e-9)
    assert m.laps_completed == 1
    assert m.percentage_completed == pytest.approx(150.0, abs=0.3)
    assert m.run_seconds == pytest.approx((len(k) - 1) * dt, abs=1e-9)
    chord = 2.0 * radius * math.sin(math.pi * dt / period)
    assert m.average_speed == pytest.approx(chord / dt, rel=1e-9)


def test_circuit_diameter_definition() -> None:
    # A square of side 10 m sampled every 0.1 m (400 points): no point after index 100 comes
    # back within 1 m of the start until index 391, so the diameter is 39.1 m; without
    # such a point (a loop of 100 points) it is the closed length.
    side = np.arange(100) * 0.1
    sq = np.r_[np.c_[side, 0 * side], np.c_[10 + 0 * side, side],
               np.c_[10 - side, 10 + 0 * side], np.c_[0 * side, 10 - side]]
    assert circuit_diameter(sq) == pytest.approx(39.1, abs=1e-9)
    small = sq[::4]   # 100 points, 0.4 m apart: indices never exceed 100
    assert circuit_diameter(small) == pytest.approx(40.0, abs=1e-9)


def test_single_pose_run_is_json_safe(track: PerfectLap) -> None:
    m = compute_lap_metrics(Trajectory(t=np.array([3.0]), xy=track.xy[:1]), track)
    assert m.run_seconds == 0.0 and m.average_speed == 0.0 and m.completed_distance == 0.0
    assert math.isnan(m.position_deviation_mean_m)
    d = m.to_dict()
    assert d['position_deviation_mean_m'] is None and d['position_deviation_bm'] is None
    assert d['lap_seconds'] is None and d['end_reason'] is None
    json.dumps(d, allow_nan=False)


def test_bm_deviation_overflow_is_none(track: PerfectLap) -> None:
    # Driving a parallel line 200 m away: 1000 ** 200 overflows a float.
    far = track.xy[:200] + np.array([0.0, 200.0])
    lap = PerfectLap.from_xy(track.xy)
    m = compute_lap_metrics(_timed(far), lap)
    assert m.position_deviation_bm is None
    assert m.to_dict()['position_deviation_bm'] is None


def test_empty_run_raises(track: PerfectLap) -> None:
    with pytest.raises(TrajectoryError, match='no poses'):
        compute_lap_metrics(Trajectory(t=np.empty(0), xy=np.empty((0, 2))), track)


def test_metrics_on_a_long_noisy_run(track: PerfectLap) -> None:
    # 20 000 noisy poses, 0.7 checkpoints apart, over ~2.6 laps of a ~5 300-checkpoint lap.
    rng = np.random.default_rng(3)
    idx = np.arange(20000) * 0.7 % len(track)
    xy = np.c_[np.interp(idx, np.arange(len(track)), track.xy[:, 0]),
               np.interp(idx, np.arange(len(track)), track.xy[:, 1])]
    run = _timed(xy + rng.normal(0.0, 0.2, xy.shape))
    m = compute_lap_metrics(run, track)
    assert m.percentage_completed == pytest.approx(14000 / len(track) * 100, abs=0.5)
    assert m.laps_completed == 2


def test_point_polyline_distance_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    walk = np.cumsum(rng.normal(0.0, 1.0, (3000, 2)), axis=0)
    walk[1500:] += 300.0   # a jump: one very long segment
    walk[10:15] = walk[10]  # repeated vertices: zero-length segments
    pts = walk[rng.integers(0, len(walk), 400)] + rng.normal(0.0, 5.0, (400, 2))
    a, d = walk[:-1], np.diff(walk, axis=0)
    len2 = (d * d).sum(axis=1)
    w = pts[:, None, :] - a[None]
    u = np.clip(np.divide((w * d).sum(-1), len2, out=np.zeros(w.shape[:2]), where=len2 > 0),
                0, 1)
    ref = np.sqrt(((w - u[..., None] * d) ** 2).sum(-1).min(axis=1))
    np.testing.assert_allclose(point_polyline_distance(pts, walk), ref, rtol=0, atol=1e-9)
    # Point-to-segment, not point-to-vertex: 1 m off the middle of a 100 m segment.
    line = np.array([[0.0, 0.0], [100.0, 0.0]])
    assert point_polyline_distance(np.array([[50.0, 1.0]]), line)[0] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# CSV


def test_csv_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 500
    traj = Trajectory(t=np.cumsum(rng.uniform(0.0, 0.1, n)), xy=rng.normal(0.0, 100.0, (n, 2)),
                      yaw=rng.uniform(-np.pi, np.pi, n), pitch=rng.normal(0.0, 0.05, n))
    path = tmp_path / 'run.csv'
    save_trajectory_csv(traj, path)
    back = load_trajectory(path)
    for name in ('t', 'xy', 'yaw', 'pitch'):
        np.testing.assert_array_equal(getattr(back, name), getattr(traj, name))
    plain = Trajectory(t=traj.t, xy=traj.xy)
    save_trajectory_csv(plain, path)
    back = load_trajectory(path)
    assert back.yaw is None and back.pitch is None
    np.testing.assert_array_equal(back.xy, plain.xy)


def test_csv_columns_in_any_order_extra_ignored(tmp_path: Path) -> None:
    path = tmp_path / 'run.csv'
    path.write_text('speed, y ,x,t\n9,2,1,0.5\n9,4,3,1.0\n')
    traj = load_trajectory(path)
    np.testing.assert_array_equal(traj.t, [0.5, 1.0])
    np.testing.assert_array_equal(traj.xy, [[1.0, 2.0], [3.0, 4.0]])


def _one_line_error(err: BaseException, path: Path) -> str:
    """Return the message of ``err``, checked to be one line that names ``path``."""
    msg = str(err)
    assert '\n' not in msg
    assert str(path) in msg
    return msg


def test_csv_missing_column_names_it(tmp_path: Path) -> None:
    path = tmp_path / 'no_y.csv'
    path.write_text('t,x,yaw\n0,1,0\n1,2,0\n')
    with pytest.raises(TrajectoryError) as exc_info:
        load_trajectory(path)
    msg = _one_line_error(exc_info.value, path)
    assert 'missing CSV column(s) y ' in msg


@pytest.mark.parametrize(('content', 'needle'), [
    ('', 'empty'),
    ('\n\n', 'empty'),
    ('t,x,y\n', 'no data rows'),
    ('t,x,y\n0,1,2\n1,abc,3\n', 'row 3'),
    ('t,x,y\n0,1,2\n1,2\n', 'row 3'),
    ('t,x,y\n1,1,2\n0,2,3\n', 'backwards'),
])
def test_csv_bad_content(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / 'bad.csv'
    path.write_text(content)
    with pytest.raises(TrajectoryError) as exc_info:
        load_trajectory(path)
    assert needle in _one_line_error(exc_info.value, path)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(TrajectoryError, match='no such file'):
        load_trajectory(tmp_path / 'nope.bag')
    other = tmp_path / 'run.txt'
    other.write_text('t,x,y\n')
    with pytest.raises(TrajectoryError, match='unknown trajectory format'):
        load_trajectory(other)


# ---------------------------------------------------------------------------------------------
# Bags

_TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)


def _odometry(x: float, y: float, yaw: float, pitch: float, stamp_ns: int) -> object:
    t = _TYPESTORE.types
    # Quaternion of yaw about z then pitch about y (x, y, z, w).
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    quat = t['geometry_msgs/msg/Quaternion'](x=-sy * sp, y=cy * sp, z=sy * cp, w=cy * cp)
    zero3 = t['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0)
    return t['nav_msgs/msg/Odometry'](
        header=t['std_msgs/msg/Header'](
            stamp=t['builtin_interfaces/msg/Time'](sec=stamp_ns // 10**9,
                                                   nanosec=stamp_ns % 10**9),
            frame_id='odom'),
        child_frame_id='base_link',
        pose=t['geometry_msgs/msg/PoseWithCovariance'](
            pose=t['geometry_msgs/msg/Pose'](
                position=t['geometry_msgs/msg/Point'](x=x, y=y, z=0.0), orientation=quat),
            covariance=np.zeros(36)),
        twist=t['geometry_msgs/msg/TwistWithCovariance'](
            twist=t['geometry_msgs/msg/Twist'](linear=zero3, angular=zero3),
            covariance=np.zeros(36)))


def _write_mcap(path: Path, fill: Callable[[Writer], None]) -> Path:
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        fill(writer)
    return path


def test_mcap_odometry_round_trip(tmp_path: Path) -> None:
    n = 50
    yaw = np.linspace(-3.0, 3.0, n)
    pitch = np.linspace(-0.3, 0.3, n)

    def fill(writer: Writer) -> None:
        odom = writer.add_connection('/odom', 'nav_msgs/msg/Odometry', typestore=_TYPESTORE)
        other = writer.add_connection('/other_odom', 'nav_msgs/msg/Odometry',
                                      typestore=_TYPESTORE)
        for i in range(n):
            # Header stamps 0.1 s apart; record times deliberately different (0.2 s).
            msg = _odometry(float(i), -2.0 * i, yaw[i], pitch[i], 1_700_000_000 * 10**9
                            + i * 100_000_000)
            raw = _TYPESTORE.serialize_cdr(msg, 'nav_msgs/msg/Odometry')
            writer.write(odom, 5 * 10**9 + i * 200_000_000, raw)
            far = _odometry(1e6, 1e6, 0.0, 0.0, 0)
            writer.write(other, 5 * 10**9 + i * 200_000_000,
                         _TYPESTORE.serialize_cdr(far, 'nav_msgs/msg/Odometry'))

    bag = _write_mcap(tmp_path / 'odom_bag', fill)
    for path in (bag, next(bag.glob('*.mcap'))):
        traj = load_trajectory(path)   # picks /odom over /other_odom
        np.testing.assert_allclose(traj.t, np.arange(n) * 0.1, atol=1e-12)
        np.testing.assert_array_equal(traj.xy, np.c_[np.arange(n), -2.0 * np.arange(n)])
        assert traj.yaw is not None and traj.pitch is not None
        np.testing.assert_allclose(traj.yaw, yaw, atol=1e-9)
        np.testing.assert_allclose(traj.pitch, pitch, atol=1e-9)
    other = load_trajectory(bag, topic='/other_odom')
    # Zero header stamps: the record times (0.2 s apart) are used.
    np.testing.assert_allclose(other.t, np.arange(n) * 0.2, atol=1e-12)
    assert other.xy[0, 0] == 1e6
    with pytest.raises(BagError, match='no topic /nope'):
        load_trajectory(bag, topic='/nope')


def test_bag_without_odometry(tmp_path: Path) -> None:
    def fill(writer: Writer) -> None:
        conn = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=_TYPESTORE)
        msg = _TYPESTORE.types['std_msgs/msg/String'](data='hello')
        writer.write(conn, 1, _TYPESTORE.serialize_cdr(msg, 'std_msgs/msg/String'))

    bag = _write_mcap(tmp_path / 'chatter', fill)
    with pytest.raises(BagError) as exc_info:
        load_trajectory(bag)
    msg = _one_line_error(exc_info.value, bag)
    assert 'no nav_msgs/msg/Odometry topic' in msg
    assert '/chatter' in msg
    with pytest.raises(BagError, match='is std_msgs/msg/String, not nav_msgs/msg/Odometry'):
        load_trajectory(bag, topic='/chatter')


def test_truncated_bag(tmp_path: Path) -> None:
    source = _bag('simple-circuit')
    data = source.read_bytes()
    cut = tmp_path / 'cut.bag'
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError) as exc_info:
        load_trajectory(cut)
    _one_line_error(exc_info.value, cut)
    # Raised from the rosbags error, not a bare traceback from inside the reader.
    assert exc_info.value.__cause__ is not None


def test_garbage_mcap(tmp_path: Path) -> None:
    path = tmp_path / 'junk.mcap'
    path.write_bytes(b'not a bag at all' * 10)
    with pytest.raises(BagError) as exc_info:
        load_trajectory(path)
    _one_line_error(exc_info.value, path)


# ---------------------------------------------------------------------------------------------
# RunMonitor


def _drive(monitor: RunMonitor, poses: list[tuple[float, float, float, float]],
           ) -> tuple[EndReason | None, float | None]:
    """Feed (t, x, y, pitch) poses until the monitor ends the run."""
    for t, x, y, pitch in poses:
        reason = monitor.update(t, x, y, pitch)
        if reason is not None:
            return reason, t
    return None, None


def test_monitor_trapped_after_10_s_still() -> None:
    # 5 m/s for 20 s at 10 Hz, then standing still (with 1 cm jitter).
    poses = [(i * 0.1, 0.5 * min(i, 200) + 0.01 * (i % 2), 0.0, 0.0) for i in range(600)]
    reason, t = _drive(RunMonitor(timeout_s=100.0), poses)
    assert reason is EndReason.TRAPPED
    assert t == pytest.approx(30.0, abs=0.11)


def test_monitor_standing_on_start_is_trapped_not_back() -> None:
    poses = [(i * 0.1, 0.0, 0.0, 0.0) for i in range(300)]
    reason, t = _drive(RunMonitor(timeout_s=100.0), poses)
    assert reason is EndReason.TRAPPED
    assert t == pytest.approx(10.0, abs=1e-9)


def _circle(laps: float, radius: float = 20.0, period: float = 30.0, rate: float = 20.0,
            ) -> list[tuple[float, float, float, float]]:
    k = np.arange(int(laps * period * rate))
    phi = 2.0 * np.pi * k / (period * rate)
    return [(float(ki / rate), radius * math.cos(p), radius * math.sin(p), 0.0)
            for ki, p in zip(k, phi, strict=True)]


def test_monitor_back_at_start_after_a_loop() -> None:
    reason, t = _drive(RunMonitor(timeout_s=100.0), _circle(1.5))
    assert reason is EndReason.BACK_AT_START
    # 1 m short of the start at 4.19 m/s: ~0.24 s before the full 30 s loop.
    assert t is not None and 29.6 < t <= 30.0


def test_monitor_laps_done() -> None:
    monitor = RunMonitor(timeout_s=100.0, laps_target=2)
    reason, t = _drive(monitor, _circle(2.5))
    assert reason is EndReason.LAPS_DONE
    assert monitor.laps == 2
    assert t is not None and 59.6 < t <= 60.0


def test_monitor_flip() -> None:
    # Starting pitched at 0.1 rad: 0.25 is a 0.15 change (no flip), 0.35 is 0.25 (flip).
    poses = [(i * 0.1, float(i), 0.0, 0.1) for i in range(10)]
    poses += [(1.0, 10.0, 0.0, 0.25), (1.1, 11.0, 0.0, 0.35)]
    reason, t = _drive(RunMonitor(timeout_s=100.0), poses)
    assert reason is EndReason.FLIPPED
    assert t == pytest.approx(1.1)


def test_monitor_timeout_and_sticky_reason() -> None:
    monitor = RunMonitor(timeout_s=15.0)
    poses = [(i * 0.1, 0.5 * i, 0.0, 0.0) for i in range(300)]
    reason, t = _drive(monitor, poses)
    assert reason is EndReason.TIMEOUT
    assert t == pytest.approx(15.0, abs=0.11)
    assert monitor.update(100.0, 0.0, 0.0, 1.0) is EndReason.TIMEOUT
    assert monitor.reason is EndReason.TIMEOUT and str(monitor.reason) == 'timeout'
    monitor.reset()
    assert monitor.update(0.0, 0.0, 0.0, off_track=True) is EndReason.OFF_TRACK


def test_monitor_rejects_time_going_back() -> None:
    monitor = RunMonitor(timeout_s=15.0)
    monitor.update(1.0, 0.0, 0.0)
    with pytest.raises(TrajectoryError, match='backwards'):
        monitor.update(0.5, 0.0, 0.0)
    with pytest.raises(PilotnetError, match='timeout_s'):
        RunMonitor(timeout_s=0.0)


def test_monitor_keeps_bounded_state() -> None:
    # 100 Hz for 200 s: the trapped window must not keep the whole history.
    monitor = RunMonitor(timeout_s=1e9)
    for i in range(20000):
        assert monitor.update(i * 0.01, 0.1 * i, 0.0) is None
    assert len(monitor._times) <= 1002
