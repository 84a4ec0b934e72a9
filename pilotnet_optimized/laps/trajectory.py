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
Timed 2-D trajectories: the poses of a run or of a perfect lap, read from CSV files or bags.

A bag is anything :class:`rosbags.highlevel.AnyReader` opens: a ROS 1 ``.bag``, a rosbag2
folder, or a single ``.mcap`` / ``.db3`` storage file. The odometry topic
(``nav_msgs/msg/Odometry``) gives the poses.
"""

from __future__ import annotations

from collections.abc import Callable
import csv
from dataclasses import dataclass
from pathlib import Path
import struct
import sys
from typing import Any

import numpy as np
from pilotnet_optimized.bags.read import BAG_READ_ERRORS, BAG_SUFFIXES, BagSource, open_bag
from pilotnet_optimized.errors import BagError, one_line, TrajectoryError

__all__ = [
    'BAG_SUFFIXES',
    'ODOMETRY_TYPE',
    'Trajectory',
    'load_trajectory',
    'quaternion_to_yaw_pitch',
    'save_trajectory_csv',
]

ODOMETRY_TYPE = 'nav_msgs/msg/Odometry'
#: Odometry topics picked first when a bag holds several (Behavior Metrics' F1 and plain ROS).
PREFERRED_ODOMETRY_TOPICS = ('/F1ROS/odom', '/odom')

_CSV_REQUIRED = ('t', 'x', 'y')
_CSV_OPTIONAL = ('yaw', 'pitch')
#: Time between the rows of a CSV without a ``t`` column: the 20 Hz command period.
CSV_DEFAULT_PERIOD_S = 0.05


@dataclass(frozen=True)
class Trajectory:
    """
    Poses in time order.

    Arrays are converted to float64 on construction and checked for shape, finiteness and
    non-decreasing time, so every consumer can rely on them.

    :param t: ``(N,)`` seconds, non-decreasing (usually relative to the first pose).
    :param xy: ``(N, 2)`` positions in metres.
    :param yaw: ``(N,)`` heading in radians, or ``None`` when the source has no orientation.
    :param pitch: ``(N,)`` pitch in radians, or ``None`` when the source has no orientation.
    :raises TrajectoryError: on wrong shapes, non-finite values or time going backwards.
    """

    t: np.ndarray
    xy: np.ndarray
    yaw: np.ndarray | None = None
    pitch: np.ndarray | None = None

    def __post_init__(self) -> None:
        t = _as_float_array(self.t, 't')
        xy = _as_float_array(self.xy, 'xy')
        if t.ndim != 1:
            raise TrajectoryError(f'trajectory t must be 1-D, got shape {t.shape}')
        n = t.shape[0]
        if xy.shape != (n, 2):
            raise TrajectoryError(f'trajectory xy must have shape ({n}, 2), got {xy.shape}')
        if not (np.isfinite(t).all() and np.isfinite(xy).all()):
            raise TrajectoryError('trajectory t/x/y contain NaN or infinite values')
        if n > 1 and (bad := np.flatnonzero(np.diff(t) < 0)).size:
            i = int(bad[0])
            raise TrajectoryError(
                f'trajectory time goes backwards at pose {i + 1}: {t[i]!r} -> {t[i + 1]!r}')
        object.__setattr__(self, 't', t)
        object.__setattr__(self, 'xy', xy)
        for name in ('yaw', 'pitch'):
            value = getattr(self, name)
            if value is None:
                continue
            arr = _as_float_array(value, name)
            if arr.shape != (n,):
                raise TrajectoryError(f'trajectory {name} must have shape ({n},), got {arr.shape}')
            if not np.isfinite(arr).all():
                raise TrajectoryError(f'trajectory {name} contains NaN or infinite values')
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return int(self.t.shape[0])

    @property
    def duration(self) -> float:
        """Seconds from the first to the last pose (0 for fewer than two poses)."""
        return float(self.t[-1] - self.t[0]) if len(self) > 1 else 0.0

    def path_length(self) -> float:
        """Sum of the distances between consecutive poses, in metres."""
        if len(self) < 2:
            return 0.0
        return float(np.hypot(*np.diff(self.xy, axis=0).T).sum())


def _as_float_array(value: Any, name: str) -> np.ndarray:
    try:
        return np.ascontiguousarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TrajectoryError(f'trajectory {name} is not numeric: {err}') from err


def quaternion_to_yaw_pitch(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Yaw (about z) and pitch (about y) of ``(N, 4)`` quaternions in ``x, y, z, w`` order.

    Quaternions are normalised first; an all-zero quaternion (what Behavior Metrics' perfect
    laps hold) gives yaw 0 and pitch 0 instead of NaN.

    :param q: ``(N, 4)`` quaternions.
    :returns: ``(yaw, pitch)`` in radians.
    """
    q = np.asarray(q, dtype=np.float64).reshape(-1, 4)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.divide(q, norm, out=np.zeros_like(q), where=norm > 0)
    x, y, z, w = q.T
    yaw = np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    pitch = np.arcsin(np.clip(2.0 * (w * y - z * x), -1.0, 1.0))
    return yaw, pitch


# ---------------------------------------------------------------------------------------------
# Loading and saving


def load_trajectory(path: str | Path, topic: str | None = None,
                    warn: Callable[[str], None] | None = None) -> Trajectory:
    """
    Read a trajectory from a CSV file or a bag.

    CSV: a header row naming at least ``x``, ``y`` and usually ``t`` (optionally ``yaw``,
    ``pitch``; other columns are ignored), one pose per row. Without a ``t`` column (a circuit's
    centre line or a perfect lap given as points) the rows are taken
    :data:`CSV_DEFAULT_PERIOD_S` apart: ``t = index * 0.05`` s.

    Bag: the poses of ``topic``, or of the odometry topic when ``topic`` is ``None``. Times are
    the header stamps when they are all non-zero and non-decreasing (and not all equal), else
    the record timestamps; both relative to the first message.

    :param path: ``.csv`` file, ROS 1 ``.bag``, ``.mcap``/``.db3`` file or rosbag2 folder.
    :param topic: odometry topic to read from a bag; ignored for CSV.
    :param warn: called with each warning line (a cut-off bag read up to its cut; default: printed
        on stderr).
    :returns: the trajectory.
    :raises TrajectoryError: missing file, unknown format or bad CSV content.
    :raises BagError: unreadable bag, cut off before its first pose, or no odometry topic in it.
    """
    path = Path(path)
    if not path.exists():
        raise TrajectoryError(f'{path}: no such file or directory')
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in BAG_SUFFIXES:
        return _load_bag(path, topic, warn or _warn_stderr)
    if suffix == '.csv':
        return _load_csv(path)
    raise TrajectoryError(
        f'{path}: unknown trajectory format {path.suffix!r} '
        f'(expected .csv, {", ".join(BAG_SUFFIXES)} or a rosbag2 folder)')


def _warn_stderr(line: str) -> None:
    print(f'warning: {line}', file=sys.stderr)


def save_trajectory_csv(traj: Trajectory, path: str | Path) -> None:
    """
    Write ``traj`` as CSV (``t,x,y`` plus ``yaw``/``pitch`` when present).

    Values are written with 17 significant digits so that :func:`load_trajectory` gives back
    exactly the same floats.

    :param traj: the trajectory to write.
    :param path: destination file; its parent folder must exist.
    :raises TrajectoryError: when the file cannot be written.
    """
    columns = [traj.t, traj.xy[:, 0], traj.xy[:, 1]]
    names = list(_CSV_REQUIRED)
    for name in _CSV_OPTIONAL:
        value = getattr(traj, name)
        if value is not None:
            columns.append(value)
            names.append(name)
    table = np.column_stack(columns) if len(traj) else np.empty((0, len(names)))
    try:
        np.savetxt(path, table, fmt='%.17g', delimiter=',', header=','.join(names), comments='')
    except OSError as err:
        raise TrajectoryError(f'{path}: cannot write CSV: {err.strerror or err}') from err


def _load_csv(path: Path) -> Trajectory:
    try:
        with path.open(newline='', encoding='utf-8') as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as err:
        raise TrajectoryError(f'{path}: cannot read CSV: {err}') from err
    # Blank lines (e.g. a trailing newline pair) carry no data.
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise TrajectoryError(
            f'{path}: empty CSV (expected a header row with x,y and, for a run, t)')
    header = [cell.strip() for cell in rows[0]]
    # t may be left out (points of a circuit); x and y may not.
    missing = [name for name in _CSV_REQUIRED if name not in header and name != 't']
    if missing:
        raise TrajectoryError(
            f'{path}: missing CSV column(s) {", ".join(missing)} '
            f'(header: {",".join(header)}; required: x,y and, for a run, t)')
    if len(rows) < 2:
        raise TrajectoryError(f'{path}: CSV has a header but no data rows')
    wanted = [name for name in (*_CSV_REQUIRED, *_CSV_OPTIONAL) if name in header]
    index = [header.index(name) for name in wanted]
    values = np.empty((len(rows) - 1, len(wanted)), dtype=np.float64)
    for r, row in enumerate(rows[1:]):
        try:
            values[r] = [float(row[i]) for i in index]
        except (ValueError, IndexError) as err:
            # Row numbers are 1-based file lines counting the header, as an editor shows them.
            raise TrajectoryError(
                f'{path}: row {r + 2} is not numeric in columns {",".join(wanted)}: '
                f'{",".join(row)!r}') from err
    cols = dict(zip(wanted, values.T, strict=True))
    t = cols['t'] if 't' in cols else np.arange(len(values)) * CSV_DEFAULT_PERIOD_S
    try:
        return Trajectory(
            t=t, xy=np.column_stack([cols['x'], cols['y']]),
            yaw=cols.get('yaw'), pitch=cols.get('pitch'))
    except TrajectoryError as err:
        raise TrajectoryError(f'{path}: {err}') from err


# ---------------------------------------------------------------------------------------------
# Bags

def _load_bag(path: Path, topic: str | None, warn: Callable[[str], None]) -> Trajectory:
    try:
        with open_bag(path) as source:
            for line in source.warnings:
                warn(line)
            name = _odometry_topic(path, source.topics, topic)
            stamps, record_ns, poses = _read_odometry(source, name, warn)
    except BAG_READ_ERRORS as err:
        raise BagError(f'{path}: cannot read bag: {one_line(err)}') from err
    if not record_ns:
        raise BagError(f'{path}: topic {name} has no messages')

    header_ns = np.asarray(stamps, dtype=np.int64)
    rec_ns = np.asarray(record_ns, dtype=np.int64)
    # Simulators often leave header stamps at 0 (Behavior Metrics' perfect laps do), and some
    # publishers stamp out of order; record times are the fallback that is always ordered.
    use_header = bool(
        (header_ns > 0).all()
        and (np.diff(header_ns) >= 0).all()
        and (header_ns.size == 1 or header_ns[-1] > header_ns[0]))
    ns = header_ns if use_header else rec_ns
    # Subtract in integers first: float64 cannot hold epoch nanoseconds exactly.
    t = (ns - ns[0]).astype(np.float64) / 1e9
    pose = np.asarray(poses, dtype=np.float64)
    quat = pose[:, 2:6]
    if np.any(quat != 0.0):
        yaw, pitch = quaternion_to_yaw_pitch(quat)
    else:  # no orientation was recorded: report none rather than a made-up 0
        yaw = pitch = None
    try:
        return Trajectory(t=t, xy=pose[:, :2], yaw=yaw, pitch=pitch)
    except TrajectoryError as err:
        raise BagError(f'{path}: {err}') from err


def _odometry_topic(path: Path, topics: dict[str, str], topic: str | None) -> str:
    listing = ', '.join(sorted(topics)) if topics else 'none'
    if topic is not None:
        if topic not in topics:
            raise BagError(f'{path}: no topic {topic} (topics: {listing})')
        if topics[topic] != ODOMETRY_TYPE:
            raise BagError(f'{path}: topic {topic} is {topics[topic]}, not {ODOMETRY_TYPE}')
        return topic
    names = sorted(t for t, kind in topics.items() if kind == ODOMETRY_TYPE)
    if not names:
        raise BagError(f'{path}: no {ODOMETRY_TYPE} topic (topics: {listing})')
    return next((p for p in PREFERRED_ODOMETRY_TOPICS if p in names), names[0])


_PoseFields = tuple[int, float, float, float, float, float, float]


def _read_odometry(
    source: BagSource, topic: str, warn: Callable[[str], None],
) -> tuple[list[int], list[int], list[tuple[float, ...]]]:
    """
    Header stamps (ns), record times (ns) and ``x, y, qx, qy, qz, qw`` of each message.

    A bag that is cut off (a killed recorder's) gives the messages before the cut, with a warning.
    """
    stamps: list[int] = []
    record_ns: list[int] = []
    poses: list[tuple[float, ...]] = []
    fast: Callable[[bytes], _PoseFields] | None = (
        _parse_ros1_odometry if source.ros1 else _parse_cdr_odometry
    )
    messages = source.messages({topic})
    while True:
        try:
            message = next(messages)
        except StopIteration:
            break
        except BAG_READ_ERRORS as err:
            if not stamps:
                raise
            warn(
                f'{source.path}: the bag is cut off after {len(stamps)} {topic} message(s)'
                f' ({one_line(err)}): using those'
            )
            break
        raw = bytes(message.raw)
        if fast is not None and not stamps:
            # Check the hand parser against rosbags on the first message; any disagreement
            # (an unusual layout) means the slow, general path for the whole topic.
            try:
                ok = fast(raw) == _deserialized_fields(message.decode())
            except struct.error:
                ok = False
            fast = fast if ok else None
        fields = fast(raw) if fast is not None else _deserialized_fields(message.decode())
        stamps.append(fields[0])
        record_ns.append(message.record_ns)
        poses.append(fields[1:])
    return stamps, record_ns, poses


def _deserialized_fields(msg: Any) -> _PoseFields:
    stamp = msg.header.stamp
    p = msg.pose.pose.position
    q = msg.pose.pose.orientation
    ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    return (ns, float(p.x), float(p.y), float(q.x), float(q.y), float(q.z), float(q.w))


# Deserialising full Odometry messages (two 36-element covariances each) costs ~20 us; these
# read just the stamp and pose, ~1 us, which matters for runs of 10^5 messages.

_U32_LE = struct.Struct('<I')
_ROS1_HEAD = struct.Struct('<4I')
_POSE_LE = struct.Struct('<7d')
_POSE_BE = struct.Struct('>7d')


def _parse_ros1_odometry(raw: bytes) -> _PoseFields:
    # ROS 1: packed little-endian; header = seq, sec, nsec, frame_id; then child_frame_id.
    _seq, sec, nsec, n = _ROS1_HEAD.unpack_from(raw, 0)
    off = 16 + n
    off += 4 + _U32_LE.unpack_from(raw, off)[0]
    x, y, _z, qx, qy, qz, qw = _POSE_LE.unpack_from(raw, off)
    return (sec * 1_000_000_000 + nsec, x, y, qx, qy, qz, qw)


def _parse_cdr_odometry(raw: bytes) -> _PoseFields:
    # CDR (XCDR1): 4-byte encapsulation header, then fields aligned to their size relative to
    # the end of that header. Only plain CDR_BE (0x0000) / CDR_LE (0x0001) are handled.
    if raw[0] != 0 or raw[1] not in (0, 1):
        raise struct.error('unsupported CDR encapsulation')
    end = '<' if raw[1] == 1 else '>'
    sec, nsec, n = struct.unpack_from(end + 'iII', raw, 4)
    rel = 12 + n                      # past frame_id (length includes the NUL)
    rel = (rel + 3) & ~3
    rel += 4 + struct.unpack_from(end + 'I', raw, 4 + rel)[0]   # past child_frame_id
    rel = (rel + 7) & ~7
    pose = (_POSE_LE if end == '<' else _POSE_BE).unpack_from(raw, 4 + rel)
    x, y, _z, qx, qy, qz, qw = pose
    return (sec * 1_000_000_000 + nsec, x, y, qx, qy, qz, qw)
