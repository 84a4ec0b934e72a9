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
Procedural circuits (``gen:SEED``): the geometry over many seeds, the expert on them, the preview.

Also the ``x,y`` CSV circuit without a time column.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
import subprocess
import sys

import cv2
from helpers import assert_one_line_error
import numpy as np
from pilotnet_optimized.errors import UnknownCircuitError
from pilotnet_optimized.laps import EndReason, load_trajectory
from pilotnet_optimized.sim.car import V_RANGE
from pilotnet_optimized.sim.circuits import get_circuit
from pilotnet_optimized.sim.episodes import drive_expert
from pilotnet_optimized.sim.generated import (generate_circuit, generate_layout, GeneratedLayout,
                                              SAMPLE_SPACING_M, tight_share)
import pytest

SEEDS = range(30)
#: Seeds the expert drives (a lap takes about 0.4 s).
DRIVEN = range(8)


@pytest.fixture(scope='module')
def layouts() -> dict[int, GeneratedLayout]:
    return {seed: generate_layout(seed) for seed in SEEDS}


def _runs(mask: np.ndarray) -> np.ndarray:
    """Return the lengths (in samples) of the runs of True in a cyclic mask."""
    if mask.all():
        return np.array([len(mask)])
    start = int(np.argmin(mask))  # begin on a False so that no run wraps round
    rolled = np.concatenate([[0], np.roll(mask, -start).astype(int), [0]])
    edges = np.flatnonzero(np.diff(rolled))
    return edges[1::2] - edges[::2]


def _crossings(points: np.ndarray) -> int:
    """Count the pairs of non-adjacent segments of a closed polyline that cross."""
    a, b = points, np.roll(points, -1, axis=0)

    def side(p, q, r):   # sign of the turn p -> q -> r, every pair at once
        return np.sign((q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1])
                       - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0]))

    a1, b1, a2, b2 = a[:, None], b[:, None], a[None, :], b[None, :]
    cross = ((side(a1, b1, a2) * side(a1, b1, b2) < 0)
             & (side(a2, b2, a1) * side(a2, b2, b1) < 0))
    n = len(points)
    i, j = np.triu_indices(n, k=2)
    keep = ~((i == 0) & (j == n - 1))   # the closing segment touches the first
    return int(cross[i[keep], j[keep]].sum())


def test_crossing_check_sees_a_figure_eight():
    t = np.linspace(0, 2 * np.pi, 400, endpoint=False) + 0.004   # no sample on the crossing
    eight = np.column_stack([np.sin(t), np.sin(t) * np.cos(t)])
    circle = np.column_stack([np.cos(t), np.sin(t)])
    assert _crossings(eight) == 1 and _crossings(circle) == 0


def test_each_circuit_is_a_closed_evenly_sampled_loop(layouts):
    for seed, layout in layouts.items():
        c = layout.circuit
        steps = np.hypot(*np.diff(np.vstack([c.centreline, c.centreline[:1]]), axis=0).T)
        # The closing step (last sample back to the first) is one more step like the others.
        assert steps[-1] == pytest.approx(SAMPLE_SPACING_M, rel=0.01), seed
        assert steps.min() > 0.99 * SAMPLE_SPACING_M and steps.max() < 1.01 * SAMPLE_SPACING_M
        # It closes smoothly: the start is on a straight, heading along +x from the origin.
        assert np.allclose(c.centreline[0], 0.0) and abs(c.heading[0]) < 1e-6, seed
        assert np.abs(c.curvature[:20]).max() < 1e-6 and np.abs(c.curvature[-20:]).max() < 1e-6
        assert np.abs(np.diff(np.unwrap(c.heading))).max() < 0.06, seed


def test_no_circuit_crosses_or_overlaps_itself(layouts):
    for seed, layout in layouts.items():
        c = layout.circuit
        assert _crossings(c.centreline[::20]) == 0, seed   # 2 m segments
        need = c.road_width + 2 * c.kerb_width
        assert layout.clearance_m > need, seed
    # The clearance the generator kept is the circuit's own measure.
    for seed in list(SEEDS)[:3]:
        assert layouts[seed].clearance_m == layouts[seed].circuit.min_clearance()


def test_curvature_covers_hairpins_to_sweepers(layouts):
    radii = np.array([lay.circuit.min_radius() for lay in layouts.values()])
    shares = np.array([tight_share(lay.circuit) for lay in layouts.values()])
    assert radii.min() >= 2.3
    assert np.mean(radii <= 3.05) >= 0.9      # a hairpin down to about 2.5 m on (nearly) every lap
    assert shares.min() > 0.05                 # Behavior Metrics': 9 to 31 % under 15 m
    assert shares.max() > 0.25 and np.median(shares) > 0.1
    for seed, layout in layouts.items():
        c = layout.circuit
        straight = _runs(np.abs(c.curvature) < 1e-3).max() * c.spacing
        sweeping = _runs(np.abs(c.curvature) > 1 / 15).max() * c.spacing
        assert straight > 25.0, seed
        assert sweeping > 5.0, seed
        counts = layout.kind_counts()
        assert counts['hairpin'] >= 1 and counts['chicane'] >= 1 and counts['s_bend'] >= 1
    longest = [_runs(np.abs(lay.circuit.curvature) < 1e-3).max() * lay.circuit.spacing
               for lay in layouts.values()]
    assert max(longest) > 200.0 and np.mean(np.array(longest) > 90.0) > 0.4


def test_lengths_widths_and_directions(layouts):
    lengths, road, line, clockwise = [], set(), set(), set()
    for seed, layout in layouts.items():
        c = layout.circuit
        assert 400.0 <= c.length <= 1500.0, seed
        assert 6.0 <= c.road_width <= 9.0 and 0.2 <= c.line_width <= 0.4, seed
        # Bends both ways on every lap, and one full turn in all.
        left = np.sum(c.curvature > 1 / 30) * c.spacing
        right = np.sum(c.curvature < -1 / 30) * c.spacing
        assert left > 10.0 and right > 10.0, seed
        turns = np.sum(c.curvature) * c.spacing / (2 * np.pi)
        assert abs(abs(turns) - 1.0) < 0.01, seed
        assert layout.clockwise == (turns < 0)
        lengths.append(c.length)
        road.add(c.road_width)
        line.add(c.line_width)
        clockwise.add(layout.clockwise)
    assert clockwise == {True, False}
    assert len(road) > 10 and len(line) > 5
    assert min(lengths) < 600.0 and max(lengths) > 1300.0


def test_names_description_and_timeout(layouts):
    for seed, layout in layouts.items():
        c = layout.circuit
        assert c.name == f'gen:{seed}' and c.source == 'generated'
        assert c.timeout_s == pytest.approx(max(60.0, c.length / 6.5 * 1.5))
        assert f'{c.length:.0f} m' in c.description and 'hairpin' in c.description
        kinds = {e.kind for e in layout.elements}
        assert {'hairpin', 'chicane', 's_bend', 'straight'} <= kinds
        assert sum(e.length_m for e in layout.elements) == pytest.approx(c.length, rel=1e-6)


def test_same_seed_same_circuit_bit_for_bit(layouts):
    again = generate_circuit(5)
    first = layouts[5].circuit
    assert np.array_equal(again.centreline, first.centreline)
    assert (again.road_width, again.line_width) == (first.road_width, first.line_width)
    other = layouts[6].circuit
    assert len(other.centreline) != len(first.centreline) or not np.array_equal(
        other.centreline, first.centreline)
    assert len({round(lay.circuit.length, 3) for lay in layouts.values()}) == len(SEEDS)


def test_gen_names_work_wherever_circuit_names_do(layouts):
    c = get_circuit('gen:17')
    assert np.array_equal(c.centreline, layouts[17].circuit.centreline)
    assert get_circuit('gen:17') is c   # generated once, then cached
    for bad in ('gen:x', 'gen:-1', 'gen:', 'gen:1.5'):
        with pytest.raises(UnknownCircuitError) as err:
            get_circuit(bad)
        msg = str(err.value)
        assert f"'{bad}'" in msg and 'gen:SEED' in msg and '\n' not in msg
    with pytest.raises(UnknownCircuitError, match='gen:SEED'):
        get_circuit('monza')


@pytest.mark.parametrize('seed', DRIVEN)
def test_expert_laps_generated_circuits(layouts, seed):
    c = layouts[seed].circuit
    result = drive_expert(c, laps=1)
    assert result.end_reason is EndReason.LAPS_DONE
    assert result.max_abs_lateral_m < c.road_width / 2
    assert result.metrics.lap_seconds is not None and result.metrics.lap_seconds < c.timeout_s
    assert V_RANGE[0] <= result.metrics.average_speed <= V_RANGE[1]


@pytest.mark.parametrize('seed', DRIVEN[:2])
def test_expert_recovers_from_disturbances_on_generated_circuits(layouts, seed):
    c = layouts[seed].circuit
    result = drive_expert(c, laps=1, seed=seed, perturb=True)
    assert result.end_reason is EndReason.LAPS_DONE
    assert result.max_abs_lateral_m < c.road_width / 2 + c.kerb_width


def _pilotnet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'pilotnet_optimized', *args],
                          capture_output=True, text=True, timeout=120)


def test_circuits_generate_writes_its_figures_and_a_png(tmp_path, layouts):
    png = tmp_path / 'x.png'
    proc = _pilotnet('circuits', '--generate', '3', '--out', str(png), '--json')
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    c = layouts[3].circuit
    assert figures['name'] == 'gen:3' and figures['png'] == str(png)
    assert figures['length_m'] == round(c.length, 1)
    assert figures['min_radius_m'] == round(c.min_radius(), 2)
    assert figures['road_width_m'] == c.road_width and figures['line_width_m'] == c.line_width
    assert figures['clockwise'] is layouts[3].clockwise
    assert 0 < figures['tight_share'] < 1 and figures['hairpins'] >= 1
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] > 400 and image.shape[1] > 800
    # Not a blank canvas: the road (grey), the centre line (red) and the kerbs (blue) are drawn.
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50


def test_circuits_generate_refuses_bad_arguments():
    assert_one_line_error(_pilotnet('circuits', '--out', 'x.png'), '--generate')
    proc = _pilotnet('circuits', '--generate', 'x')
    assert proc.returncode == 2 and 'non-negative integer seed' in proc.stderr


def test_an_xy_csv_without_time_is_a_circuit(tmp_path):
    t = np.linspace(0, 2 * np.pi, 600, endpoint=False)
    radius = 60.0
    path = tmp_path / 'ring.csv'
    np.savetxt(path, np.column_stack([radius * np.cos(t), radius * np.sin(t)]), delimiter=',',
               header='x,y', comments='')
    traj = load_trajectory(path)
    assert np.array_equal(traj.t, np.arange(600) * 0.05)
    c = get_circuit(str(path))
    assert c.length == pytest.approx(2 * math.pi * radius, rel=0.01)
    assert c.min_radius() == pytest.approx(radius, rel=0.05)
    no_y = tmp_path / 'no_y.csv'
    no_y.write_text('x,t\n0,0\n1,1\n')
    with pytest.raises(UnknownCircuitError, match=r'missing CSV column\(s\) y'):
        get_circuit(str(no_y))


def test_readme_shows_the_preview_command():
    readme = (Path(__file__).resolve().parents[1] / 'README.md').read_text()
    assert 'pilotnet circuits --generate 17 --out gen17.png' in readme and 'gen:SEED' in readme
