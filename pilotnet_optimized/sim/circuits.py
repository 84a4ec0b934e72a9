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
The project's own circuits, and circuits read from a perfect-lap bag or a CSV of points.

The built-in circuits are drawn for this project (control polygons smoothed by a periodic cubic
B-spline and scaled to a target length); each stands in for a Behavior Metrics world of the same
character. The splits keep training, validation and test circuits apart, so a model is always
judged on a circuit it never saw.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import difflib
from functools import lru_cache
from pathlib import Path

import numpy as np
from pilotnet_optimized.errors import PilotnetError, TrajectoryError, UnknownCircuitError
from pilotnet_optimized.sim.circuit import bspline_closed, Circuit, resample_closed
from pilotnet_optimized.sim.generated import (generate_circuit, generate_layout,
                                              parse_generated_name, plot_layout,
                                              SAMPLE_SPACING_M)
from pilotnet_optimized.sim.spawn import parse_start, Pose, spawn_pose_for, starting_at

__all__ = [
    'BUILTIN_CIRCUITS',
    'SPLITS',
    'CircuitSpec',
    'get_circuit',
    'circuit_names',
    'add_arguments',
    'run',
]


@dataclass(frozen=True)
class CircuitSpec:
    """How a built-in circuit is drawn."""

    length_m: float
    control: tuple[tuple[float, float], ...]
    timeout_s: float
    stands_in_for: str
    description: str
    road_width: float = 7.0


BUILTIN_CIRCUITS: dict[str, CircuitSpec] = {
    'simple': CircuitSpec(
        460.0,
        (
            (0, 50), (25, 50), (30, 58), (40, 63), (50, 58), (56, 51), (64, 52), (69, 44),
            (69, 30), (68, -45), (62, -54), (50, -54), (44, -45), (44, -32), (38, -25), (5, -25),
            (-1, -32), (-2, -45), (-12, -54), (-30, -52), (-45, -38), (-50, -10), (-45, 15),
            (-30, 32), (-10, 42),
        ),
        timeout_s=75.0,
        stands_in_for='simple_circuit',
        description='one big sweeping bend, long straights, three tight bends',
    ),
    'many_curves': CircuitSpec(
        620.0,
        (
            (0, 0), (30, 0), (40, 8), (40, 20), (30, 28), (22, 36), (28, 46), (42, 48), (55, 40),
            (62, 25), (75, 20), (88, 28), (92, 45), (85, 60), (65, 68), (40, 66), (20, 70),
            (0, 72), (-15, 62), (-12, 48), (-22, 38), (-35, 40), (-45, 30), (-40, 15), (-25, 10),
            (-15, 0),
        ),
        timeout_s=151.0,
        stands_in_for='many_curves',
        description='curves in both directions, hardly a straight',
    ),
    'long_fast': CircuitSpec(
        1500.0,
        (
            (0, 0), (150, 0), (300, 10), (400, 35), (430, 50), (435, 65), (420, 75), (395, 65),
            (330, 50), (250, 62), (200, 90), (120, 95), (40, 85), (-60, 90), (-120, 72),
            (-160, 45), (-185, 15), (-175, -8), (-155, -4), (-140, 16), (-110, 15), (-60, -3),
        ),
        timeout_s=248.0,
        stands_in_for='montreal_line',
        description='long fast straights joined by hairpins',
    ),
    'hairpins': CircuitSpec(
        600.0,
        (
            (0, 0), (60, 0), (95, -6), (104, -18), (96, -28), (75, -24), (58, -32), (62, -45),
            (82, -50), (97, -60), (84, -74), (40, -72), (10, -58), (-10, -42), (-40, -48),
            (-58, -46), (-66, -36), (-58, -28), (-36, -24), (-28, -16), (-34, -6), (-46, -4),
            (-64, -2), (-62, 14), (-40, 16), (-20, 6),
        ),
        timeout_s=120.0,
        stands_in_for='nurburgring_line',
        description='a short lap of tight hairpins and esses',
    ),
}

# Kept apart so that a model is validated and tested on circuits it was not trained on.
SPLITS: dict[str, tuple[str, ...]] = {
    'train': ('simple', 'many_curves'),
    'val': ('hairpins',),
    'test': ('long_fast',),
}


def circuit_names() -> list[str]:
    """Names of the built-in circuits (``gen:SEED`` names a generated one besides)."""
    return list(BUILTIN_CIRCUITS)


@lru_cache(maxsize=16)
def _builtin(name: str) -> Circuit:
    spec = BUILTIN_CIRCUITS[name]
    dense = resample_closed(
        bspline_closed(np.array(spec.control, dtype=float)), SAMPLE_SPACING_M / 2
    )
    closed = np.vstack([dense, dense[:1]])
    scale = spec.length_m / float(np.hypot(*np.diff(closed, axis=0).T).sum())
    return Circuit(name=name, centreline=resample_closed(dense * scale, SAMPLE_SPACING_M),
                   road_width=spec.road_width, timeout_s=spec.timeout_s,
                   description=f'{spec.description} (stands in for {spec.stands_in_for})')


@lru_cache(maxsize=64)
def _generated(seed: int) -> Circuit:
    return generate_circuit(seed)


def _from_points(name: str, points: np.ndarray, source: str, road_width: float) -> Circuit:
    pts = np.asarray(points, dtype=float)
    # A perfect lap ends where it started: drop the overlap past the start so the loop closes once.
    if len(pts) > 200:
        d = np.hypot(*(pts[100:] - pts[0]).T)
        close = np.flatnonzero(d < 1.0)
        if close.size:
            pts = pts[: 100 + int(close[0])]
    length = float(np.hypot(*np.diff(pts, axis=0).T).sum())
    return Circuit(
        name=name,
        centreline=_smooth_closed(resample_closed(pts, SAMPLE_SPACING_M)),
        road_width=road_width,
        timeout_s=max(60.0, length / 6.5 * 1.5),
        description=f'centre line read from {source}',
        source=source,
    )


def _smooth_closed(pts: np.ndarray, sigma_m: float = 1.0) -> np.ndarray:
    """
    Gaussian smoothing round the loop.

    Recorded odometry is jagged at the centimetre scale, and that jitter would read as sharp
    curvature (and a crawling expert) although the road itself is smooth.
    """
    sigma = sigma_m / SAMPLE_SPACING_M
    half = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.vstack([pts[-half:], pts, pts[:half]])
    return np.column_stack([np.convolve(padded[:, k], kernel, mode='valid') for k in range(2)])


def get_circuit(name: str, road_width: float = 7.0, start: str | Pose | None = None) -> Circuit:
    """
    Return a built-in circuit by name, or a circuit whose centre line is read from a file.

    A perfect-lap bag named like one of Behavior Metrics' (``lap-montreal.bag``) starts at that
    world's spawn pose (:data:`~pilotnet_optimized.sim.spawn.SPAWN_POSES`); ``start`` overrides
    where any circuit starts.

    :param name: a built-in name (``pilotnet circuits``), ``gen:SEED`` (a generated circuit, see
        :mod:`pilotnet_optimized.sim.generated`), a Behavior Metrics perfect-lap bag (``.bag``, a
        rosbag2 folder, ``.mcap`` or ``.db3``; its odometry is the centre line), or a CSV with
        ``x,y`` columns.
    :param road_width: road width for circuits read from files (m); a generated circuit has its
        own.
    :param start: ``x,y,yaw`` text or an ``(x, y, yaw)`` pose; ``None`` or ``''``: the circuit's
        own start.
    :raises UnknownCircuitError: for a name that is none of these.
    :raises PilotnetError: for a start that is not a pose on the circuit.
    """
    circuit = _circuit(name, road_width)
    pose = parse_start(start) if isinstance(start, str) or start is None else start
    if pose is None and circuit.source != 'builtin':
        pose = spawn_pose_for(circuit.source)
    return circuit if pose is None else starting_at(circuit, pose)


def _circuit(name: str, road_width: float) -> Circuit:
    if name in BUILTIN_CIRCUITS:
        return _builtin(name)
    try:
        seed = parse_generated_name(name)
    except ValueError as err:
        raise UnknownCircuitError(f'unknown circuit {err}') from err
    if seed is not None:
        return _generated(seed)
    path = Path(name)
    if path.suffix in {'.bag', '.mcap', '.db3', '.csv'} or path.is_dir():
        if not path.exists():
            raise UnknownCircuitError(f'circuit file not found: {path}')
        # Imported here so the simulator does not pull in rosbags unless a bag is asked for.
        from pilotnet_optimized.laps import load_trajectory
        try:
            traj = load_trajectory(path)
        except TrajectoryError as err:
            raise UnknownCircuitError(f'cannot read a circuit from {path}: {err}') from err
        if len(traj.xy) < 10:
            raise UnknownCircuitError(f'{path}: only {len(traj.xy)} points, too few for a circuit')
        return _from_points(path.stem, traj.xy, str(path), road_width)
    close = difflib.get_close_matches(name, circuit_names(), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ''
    raise UnknownCircuitError(
        f"unknown circuit '{name}': choose one of {', '.join(circuit_names())}, "
        f'gen:SEED (a generated circuit), or give a perfect-lap bag or an x,y CSV{hint}')


# -- command line ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pilotnet circuits`` arguments."""
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')
    parser.add_argument(
        '--generate', type=_seed, metavar='SEED',
        help='preview the generated circuit gen:SEED instead: its figures (length, tightest'
             ' radius, share under 15 m radius, element counts, widths, direction)')
    parser.add_argument(
        '--out', type=Path, metavar='PNG',
        help='with --generate: write its layout and curvature profile to this PNG')


def _seed(text: str) -> int:
    try:
        return parse_generated_name(f'gen:{text}')
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a non-negative integer seed') from None


def run(args: argparse.Namespace) -> int:
    """
    ``pilotnet circuits``.

    Every built-in circuit with its length, tightest radius, width and split; with ``--generate``,
    the figures of one generated circuit (and ``--out``, its picture).
    """
    from pilotnet_optimized.evaluate.report import print_mapping, print_rows
    if args.generate is not None:
        layout = generate_layout(args.generate)
        figures = layout.figures()
        if args.out is not None:
            figures['png'] = str(plot_layout(layout, args.out))
        print_mapping(figures, args.json)
        return 0
    if args.out is not None:
        raise PilotnetError('--out needs --generate SEED')
    rows = []
    for name in BUILTIN_CIRCUITS:
        c = get_circuit(name)
        rows.append(
            {
                'name': name,
                'length_m': round(c.length, 1),
                'min_radius_m': round(c.min_radius(), 1),
                'road_width_m': c.road_width,
                'timeout_s': c.timeout_s,
                # (splits.split_of_circuit reads SPLITS from here: the table itself, no cycle)
                'split': next((split for split, names in SPLITS.items() if name in names), None),
                'description': c.description,
            }
        )
    print_rows(rows, args.json)
    return 0
