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
Procedural circuits, ``gen:<seed>``: the bends real circuits have, in a closed loop.

The built-in circuits have gentle bends; Behavior Metrics' circuits have centre-line radii down to
2.4 m and 9 to 31 % of their length under 15 m radius. A generated circuit is a cyclic sequence of
track elements, each a curvature-versus-arc-length profile (plateaus of constant curvature joined
by linear ramps, i.e. clothoid transitions):

- hairpin: 140 to 190 degrees, a tight apex (2.5 to 6 m; every circuit has one under 3 m) between
  wider flanks, so that its legs part fast enough for the road not to overlap itself;
- corner (4 to 15 m radius, up to 150 degrees), bend (15 to 40 m) and sweeper (40 to 120 m);
- chicane (left-right-left or the mirror, no net turn) and S-bend (two opposite bends);
- straights between all of them, one or two of them long.

How twisty a circuit is, is drawn too: from a fast bend every 140 m (Montreal-like) to a corner
every 30 to 45 m (Nurburgring-like): over 200 seeds, 5 to 48 % of a lap (median 16 %) is under
15 m radius.

The loop closes exactly by construction: the bend angles are chosen to sum to one full turn
(clockwise or counter-clockwise), and then the straight lengths, the only free quantities left,
solve the two closure equations and the length target as a least-squares problem (each straight
as close as it can stay to the length it was drawn with). A candidate whose road would overlap
itself (:meth:`Circuit.min_clearance` under the road width, two kerbs and a margin) is rejected
and the next sub-seed tried, so the same seed always gives the same circuit, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
import math
from pathlib import Path
import re

import numpy as np
from pilotnet_optimized.sim.circuit import Circuit, resample_closed

__all__ = [
    'GENERATED_PREFIX',
    'SAMPLE_SPACING_M',
    'Element',
    'GeneratorConfig',
    'GeneratedLayout',
    'generate_layout',
    'generate_circuit',
    'parse_generated_name',
    'plot_layout',
]

#: Distance between centre-line samples of every circuit, built in, read or generated (m).
SAMPLE_SPACING_M = 0.1
#: A circuit name ``gen:<seed>`` names the generated circuit of that seed.
GENERATED_PREFIX = 'gen:'
#: Step of the curvature integration (m): fine enough that the 0.1 m samples inherit no error.
_TRACE_STEP_M = 0.05
#: Curvature radius under which a part of the line counts as tight (Behavior Metrics' measure).
TIGHT_RADIUS_M = 15.0
#: A straight at least this long counts in the element counts (shorter ones just join bends).
STRAIGHT_MIN_M = 20.0

# Every element kind, in the order the figures list them.
KINDS = ('hairpin', 'corner', 'bend', 'sweeper', 'chicane', 's_bend', 'straight')


@dataclass(frozen=True)
class GeneratorConfig:
    """What a generated circuit may be: the ranges its figures are drawn from."""

    length_m: tuple[float, float] = (400.0, 1500.0)
    road_width_m: tuple[float, float] = (6.0, 9.0)
    line_width_m: tuple[float, float] = (0.2, 0.4)
    kerb_width_m: float = 0.8
    #: Apex radius of the circuit's tightest hairpin; the others' apexes are up to 6 m.
    tightest_radius_m: tuple[float, float] = (2.5, 3.0)
    #: Clearance over road width plus both kerbs that parts of the road far apart along the line
    #: keep between their centre lines (m).
    clearance_margin_m: float = 0.5
    #: Candidates tried before giving up (about every other one is accepted).
    max_attempts: int = 400


@dataclass(frozen=True)
class Element:
    """One piece of a generated circuit, where it lies on the final centre line."""

    kind: str
    start_m: float
    length_m: float
    #: Signed heading change, degrees, positive to the left.
    turn_deg: float
    #: Tightest radius of the piece (m), ``inf`` for a straight.
    min_radius_m: float


@dataclass(frozen=True)
class GeneratedLayout:
    """A generated circuit and the elements it was built from."""

    seed: int
    circuit: Circuit
    elements: tuple[Element, ...]
    #: Sub-seeds tried before this one was accepted (1: the first).
    attempts: int
    #: :meth:`Circuit.min_clearance` of the circuit, measured when it was accepted (m).
    clearance_m: float

    @property
    def clockwise(self) -> bool:
        """Return whether the lap turns clockwise overall."""
        return sum(e.turn_deg for e in self.elements) < 0

    def kind_counts(self) -> dict[str, int]:
        """Return how many elements of each kind (straights of at least ``STRAIGHT_MIN_M``)."""
        return _kind_counts(self.elements)

    def figures(self) -> dict:
        """Return the circuit's figures, as ``pilotnet circuits --generate`` prints them."""
        c = self.circuit
        return {
            'name': c.name,
            'length_m': round(c.length, 1),
            'min_radius_m': round(c.min_radius(), 2),
            'tight_share': round(tight_share(c), 3),
            'longest_straight_m': round(max(_straights(self.elements)), 1),
            **{f'{kind}s': n for kind, n in self.kind_counts().items()},
            'left_bends': sum(1 for e in self.elements if _is_bend(e) and e.turn_deg > 0),
            'right_bends': sum(1 for e in self.elements if _is_bend(e) and e.turn_deg < 0),
            'clockwise': self.clockwise,
            'road_width_m': c.road_width,
            'line_width_m': c.line_width,
            'min_clearance_m': round(self.clearance_m, 2),
            'timeout_s': round(c.timeout_s, 1),
            'attempts': self.attempts,
        }


def _is_bend(e: Element) -> bool:
    return e.kind in ('hairpin', 'corner', 'bend', 'sweeper')


def _straights(elements: tuple[Element, ...]) -> list[float]:
    """Return the straights' lengths, the one the start cuts in two counted whole."""
    lengths = [e.length_m for e in elements if e.kind == 'straight']
    if len(elements) > 1 and elements[0].kind == elements[-1].kind == 'straight':
        lengths = [lengths[0] + lengths[-1], *lengths[1:-1]]
    return lengths


def _kind_counts(elements: tuple[Element, ...]) -> dict[str, int]:
    counts = dict.fromkeys(KINDS, 0)
    for e in elements:
        if e.kind != 'straight':
            counts[e.kind] += 1
    counts['straight'] = sum(1 for length in _straights(elements) if length >= STRAIGHT_MIN_M)
    return counts


def tight_share(circuit: Circuit, radius_m: float = TIGHT_RADIUS_M) -> float:
    """Return the share of the lap's length whose curvature radius is under ``radius_m``."""
    return float(np.mean(np.abs(circuit.curvature) > 1.0 / radius_m))


def parse_generated_name(name: str) -> int | None:
    """
    Return the seed of a ``gen:<seed>`` name, ``None`` for a name without the prefix.

    :raises ValueError: for the prefix followed by anything but a non-negative integer.
    """
    if not name.startswith(GENERATED_PREFIX):
        return None
    text = name[len(GENERATED_PREFIX):]
    if not re.fullmatch('[0-9]+', text):
        raise ValueError(f"'{name}': a generated circuit is gen:SEED, SEED a non-negative integer")
    return int(text)


def generate_circuit(seed: int, config: GeneratorConfig | None = None) -> Circuit:
    """
    Return the generated circuit of ``seed``, named ``gen:<seed>``.

    See :func:`generate_layout`.
    """
    return generate_layout(seed, config).circuit


def generate_layout(seed: int, config: GeneratorConfig | None = None) -> GeneratedLayout:
    """
    Generate the circuit of ``seed`` and the elements it is made of.

    The same seed (and config) gives the same circuit, bit for bit: candidate ``k`` draws from
    ``numpy.random.default_rng([seed, k])`` and the first that closes without overlapping itself
    is kept. The car starts on the longest straight, at the origin, heading along +x.

    :raises ValueError: for a negative seed.
    :raises RuntimeError: when no candidate of ``config.max_attempts`` is accepted (not seen with
        the default config).
    """
    if seed < 0:
        raise ValueError(f'seed must be non-negative, got {seed}')
    cfg = config or GeneratorConfig()
    for attempt in range(cfg.max_attempts):
        layout = _candidate(int(seed), attempt, cfg)
        if layout is not None:
            return layout
    raise RuntimeError(f'no circuit for seed {seed} in {cfg.max_attempts} attempts')


# -- elements as curvature profiles ---------------------------------------------------------------
@dataclass
class _Piece:
    """A bend or straight before it is placed: curvature knots along its own arc length."""

    kind: str
    #: Knots of a piecewise-linear curvature profile: arc length (m) and curvature (1/m).
    s: np.ndarray = field(default_factory=lambda: np.zeros(1))
    k: np.ndarray = field(default_factory=lambda: np.zeros(1))
    turn: float = 0.0
    min_radius: float = math.inf

    @property
    def length(self) -> float:
        return float(self.s[-1])

    @cached_property
    def shape(self) -> tuple[np.ndarray, float]:
        """
        Points of the piece from the origin heading +x, and its heading at the end.

        Heading is the exact integral of the piecewise-linear curvature; each step of about
        ``_TRACE_STEP_M`` moves along the chord of its arc, so constant-curvature stretches are
        exact.
        """
        length = self.length
        step = _TRACE_STEP_M if self.kind != 'straight' else 0.5
        count = max(int(math.ceil(length / step)), 1)
        # The knots among the steps keep the trapezoid sum of the linear curvature exact.
        s = np.union1d(np.linspace(0.0, length, count + 1), self.s)
        k = np.interp(s, self.s, self.k)
        h = np.concatenate([[0.0], np.cumsum((k[1:] + k[:-1]) / 2 * np.diff(s))])
        dh = np.diff(h)
        chord = np.diff(s) * np.sinc(dh / (2 * np.pi))
        mid = h[:-1] + dh / 2
        x = np.concatenate([[0.0], np.cumsum(chord * np.cos(mid))])
        y = np.concatenate([[0.0], np.cumsum(chord * np.sin(mid))])
        return np.column_stack([x, y]), float(h[-1])


def _profile(kind: str, levels: list[tuple[float, float]], ramps: list[float]) -> _Piece:
    """
    Return a piece whose curvature holds each level in turn.

    :param levels: (curvature 1/m, signed turn rad) of each plateau; each plateau turns exactly
        its turn, counting half of each ramp beside it.
    :param ramps: lengths of the linear ramps (clothoids) from 0 to the first level, between the
        levels, and from the last back to 0: ``len(levels) + 1`` of them.
    """
    s, k = [0.0], [0.0]
    for i, (curvature, turn) in enumerate(levels):
        before, after = ramps[i], ramps[i + 1]
        plateau = turn / curvature - (before + after) / 2
        if plateau < 0:
            raise ValueError('ramps longer than the turn allows')
        s += [s[-1] + before, s[-1] + before + plateau]
        k += [curvature, curvature]
    s.append(s[-1] + ramps[-1])
    k.append(0.0)
    radius = 1.0 / max(abs(float(c)) for c, _ in levels)
    return _Piece(kind, np.array(s), np.array(k), float(sum(t for _, t in levels)), radius)


def _straight(length: float) -> _Piece:
    return _Piece('straight', np.array([0.0, length]), np.zeros(2))


def _trace(piece: _Piece, x: float, y: float, heading: float) -> tuple[np.ndarray, float]:
    """Return the points of ``piece`` placed at (x, y, heading), and the heading at its end."""
    points, end = piece.shape
    c, s = math.cos(heading), math.sin(heading)
    return points @ np.array([[c, s], [-s, c]]) + (x, y), heading + end


def _arc(kind: str, turn: float, radius: float, ramp_share: float) -> _Piece:
    """Return a single bend: one plateau, clothoid ramps of ``ramp_share`` of it each side."""
    ramp = ramp_share * abs(turn) * radius
    return _profile(kind, [(math.copysign(1.0 / radius, turn), turn)], [ramp, ramp])


def _hairpin(turn: float, apex_radius: float, flank_radius: float, flank_share: float,
             rng: np.random.Generator) -> _Piece:
    """Return a hairpin: ``flank_share`` of the turn on wider flanks, the rest round the apex."""
    sign = math.copysign(1.0, turn)
    flank = flank_share * abs(turn) / 2
    apex = abs(turn) - 2 * flank
    k_apex, k_flank = sign / apex_radius, sign / flank_radius
    if flank_share <= 0:
        return _arc('hairpin', turn, apex_radius, 0.25)
    # Ramps short enough that every plateau keeps at least half its length.
    ramp_out = min(rng.uniform(2.0, 5.0), 0.8 * flank * flank_radius)
    ramp_in = min(rng.uniform(1.0, 2.5), 0.5 * apex * apex_radius, 0.2 * flank * flank_radius)
    return _profile(
        'hairpin',
        [(k_flank, sign * flank), (k_apex, sign * apex), (k_flank, sign * flank)],
        [ramp_out, ramp_in, ramp_in, ramp_out],
    )


def _chicane(rng: np.random.Generator) -> _Piece:
    """Return a left-right-left (or its mirror) at 5 to 12 m: no net turn, no sideways step."""
    sign = rng.choice([-1.0, 1.0])
    radius = rng.uniform(5.0, 12.0)
    angle = math.radians(rng.uniform(20.0, 45.0))
    k = sign / radius
    ramp = rng.uniform(0.15, 0.4) * angle * radius
    return _profile('chicane', [(k, sign * angle), (-k, -2 * sign * angle), (k, sign * angle)],
                    [ramp, 2 * ramp, 2 * ramp, ramp])


def _s_bend(rng: np.random.Generator) -> _Piece:
    """Return two opposite bends of 10 to 30 m back to back: no net turn, a sideways step."""
    sign = rng.choice([-1.0, 1.0])
    r1, r2 = rng.uniform(10.0, 30.0, size=2)
    angle = math.radians(rng.uniform(25.0, 60.0))
    ramp = rng.uniform(0.15, 0.35) * angle * min(r1, r2)
    return _profile('s_bend', [(sign / r1, sign * angle), (-sign / r2, -sign * angle)],
                    [ramp, 2 * ramp, ramp])


# Ranges of |turn| (degrees) and radius (m) of the single bends; the hairpin's in _bend_plan.
_BEND_KINDS = {
    'corner': ((45.0, 150.0), (4.0, 15.0)),
    'bend': ((25.0, 90.0), (15.0, 40.0)),
    'sweeper': ((30.0, 100.0), (40.0, 120.0)),
}
_HAIRPIN_TURN_DEG = (140.0, 190.0)
_HAIRPIN_APEX_M = (2.5, 6.0)


# -- one candidate --------------------------------------------------------------------------------
def _candidate(seed: int, attempt: int, cfg: GeneratorConfig) -> GeneratedLayout | None:
    rng = np.random.default_rng([seed, attempt])
    length = rng.uniform(*cfg.length_m)
    road_width = round(float(rng.uniform(*cfg.road_width_m)), 2)
    line_width = round(float(rng.uniform(*cfg.line_width_m)), 2)
    need = road_width + 2 * cfg.kerb_width_m + cfg.clearance_margin_m
    bends = _bend_plan(rng, length, cfg, road_width, need)
    if bends is None:
        return None
    pieces = _interleave(rng, bends, length)
    lengths = _straight_lengths(rng, pieces, length)
    if lengths is None:
        return None
    points, placed = _assemble(pieces, lengths)
    if np.hypot(*(points[-1] - points[0])) > 1e-6:  # the closure solve was ill-conditioned
        return None
    # A coarse look first (2 m samples only ever see a clearance a few cm wider than it is),
    # then the circuit's own measure on the few candidates left.
    if _clearance(points, road_width, spacing=2.0) < need - 0.1:
        return None
    centreline, offset = _start_on_longest_straight(points, placed)
    circuit = Circuit(
        name=f'{GENERATED_PREFIX}{seed}',
        centreline=resample_closed(centreline, SAMPLE_SPACING_M),
        road_width=road_width,
        kerb_width=cfg.kerb_width_m,
        line_width=line_width,
        source='generated',
    )
    clearance = circuit.min_clearance()
    if clearance < need:
        return None
    elements = _elements(placed, offset, circuit.length)
    circuit = _described(circuit, elements)
    return GeneratedLayout(seed, circuit, elements, attempt + 1, clearance)


def _bend_plan(rng: np.random.Generator, length: float, cfg: GeneratorConfig,
               road_width: float, need: float) -> list[_Piece] | None:
    """
    Draw the bends and their directions so that they turn one full turn in all.

    Which way the lap turns overall is drawn; the bends that turn against it are picked so that
    the rest overshoot by as little as possible, and the overshoot is then spread over the bends'
    angles within their ranges.
    """
    hairpins = 1 + int(rng.integers(0, 1 + int(length // 450)))
    # How twisty the circuit is: from mostly fast bends (Montreal-like) to mostly tight corners.
    twisty = rng.uniform()
    others = max(3, int(round(length / rng.uniform(100.0 - 70.0 * twisty, 140.0 - 95 * twisty))))
    corner = 0.45 + 0.5 * twisty
    kinds = ['hairpin'] * hairpins + list(rng.choice(
        list(_BEND_KINDS), size=others, p=[corner, 0.75 * (1 - corner), 0.25 * (1 - corner)]))
    ranges = [_HAIRPIN_TURN_DEG if kind == 'hairpin' else _BEND_KINDS[kind][0] for kind in kinds]
    turns = np.array([rng.uniform(*r) for r in ranges])
    lo = np.array([r[0] for r in ranges])
    hi = np.array([r[1] for r in ranges])
    # Not enough turning for a lap: the widest-ranging bends take more.
    if turns.sum() < 400.0:
        turns = np.minimum(turns * 400.0 / turns.sum(), hi)
        if turns.sum() < 360.0:
            return None
    # Against the lap's direction: random bends while they fit into half the overshoot.
    overshoot = (turns.sum() - 360.0) / 2
    against = np.zeros(len(turns), bool)
    taken = 0.0
    for i in rng.permutation(len(turns)):
        if taken + turns[i] <= overshoot:
            against[i] = True
            taken += turns[i]
    # What is left over (in degrees of the lap's direction) comes off the bends that turn with
    # the lap and goes onto those against it, each in proportion to the room its range leaves.
    excess = turns[~against].sum() - turns[against].sum() - 360.0
    room = np.where(against, hi - turns, turns - lo)
    if room.sum() < excess:
        return None
    turns = turns + np.where(against, 1.0, -1.0) * room * (excess / max(room.sum(), 1e-9))
    direction = rng.choice([-1.0, 1.0])
    signs = np.where(against, -direction, direction)
    tightest = int(rng.integers(hairpins))
    bends = []
    for i, kind in enumerate(kinds):
        turn = math.radians(signs[i] * turns[i])
        if kind == 'hairpin':
            apex = rng.uniform(*(cfg.tightest_radius_m if i == tightest else _HAIRPIN_APEX_M))
            piece = _open_hairpin(rng, turn, apex, road_width, need)
            if piece is None:
                return None
        else:
            radius = rng.uniform(*_BEND_KINDS[kind][1])
            piece = _arc(kind, turn, radius, rng.uniform(0.1, 0.4))
        bends.append(piece)
    return bends


def _open_hairpin(rng: np.random.Generator, turn: float, apex: float, road_width: float,
                  need: float) -> _Piece | None:
    """
    Return a hairpin whose legs part fast enough that the road does not overlap itself.

    With a 2.5 m apex the legs of a constant-radius hairpin of more than about 130 degrees stay
    closer than a road width: more of the turn goes onto wider flanks until they part enough.
    """
    share = rng.uniform(0.0, 0.35)
    flank_radius = rng.uniform(12.0, 22.0)
    while share <= 0.75:
        piece = _hairpin(turn, apex, flank_radius, share, rng)
        if _leg_clearance(piece, road_width) >= need:
            return piece
        share += 0.05
        flank_radius = min(flank_radius + 1.0, 30.0)
    return None


def _leg_clearance(piece: _Piece, road_width: float) -> float:
    """Clearance of a piece between two 40 m straights, by the rule of min_clearance."""
    line = [_straight(40.0), piece, _straight(40.0)]
    points, _ = _assemble(line, None)
    return _clearance(points, road_width, closed=False)


def _interleave(rng: np.random.Generator, bends: list[_Piece], length: float) -> list[_Piece]:
    """
    Put the bends in order, with the chicanes and S-bends between them.

    The order keeps the heading near an even progress round the lap: each next bend is drawn
    from those that keep it within 40 degrees of the best, so the bends against the lap's
    direction come between those with it (esses, not a loop that wanders across itself). Two
    hairpins never follow each other directly; every piece is followed by a straight (of a length
    still to solve).
    """
    total = sum(b.turn for b in bends)
    left, sequence, heading = list(range(len(bends))), [], 0.0
    for i in range(len(bends)):
        ideal = total * (i + 1) / len(bends)
        options = [j for j in left if not (sequence and sequence[-1].kind == 'hairpin'
                                           and bends[j].kind == 'hairpin')] or left
        miss = np.array([abs(heading + bends[j].turn - ideal) for j in options])
        near = [j for j, m in zip(options, miss) if m <= miss.min() + math.radians(40.0)]
        pick = near[int(rng.integers(len(near)))]
        left.remove(pick)
        sequence.append(bends[pick])
        heading += bends[pick].turn
    inserts = [_chicane(rng) for _ in range(1 + int(rng.integers(0, 1 + int(length // 700))))]
    inserts += [_s_bend(rng) for _ in range(1 + int(rng.integers(0, 1 + int(length // 600))))]
    for piece in inserts:
        sequence.insert(int(rng.integers(len(sequence) + 1)), piece)
    pieces = []
    for piece in sequence:
        pieces += [piece, _straight(0.0)]
    return pieces


def _straight_lengths(rng: np.random.Generator, pieces: list[_Piece],
                      length: float) -> np.ndarray | None:
    """
    Return the straights' lengths that close the loop at the wanted length.

    Each straight is drawn a length (most of them short, one or two long) and the loop then closes
    with the least change, weighted by length (long straights give most): the end must meet the
    start (two equations, linear in the lengths since the headings are fixed) and the lengths must
    sum to what the bends leave of ``length``. A straight pushed under its minimum is held there
    and the rest solved again.
    """
    heading, headings, gap = 0.0, [], np.zeros(2)
    for piece in pieces:
        if piece.kind == 'straight':
            headings.append(heading)
            continue
        points, end = _trace(piece, 0.0, 0.0, heading)
        gap += points[-1]
        heading = end
    headings = np.array(headings)
    bends_length = sum(p.length for p in pieces)
    n = len(headings)
    wanted = np.exp(rng.uniform(math.log(8.0), math.log(80.0), size=n))
    long = rng.choice(n, size=1 + int(length > 900), replace=False)
    wanted[long] = np.minimum(40.0 + rng.uniform(0.1, 0.22, size=len(long)) * length, 300.0)
    budget = length - bends_length
    # Hairpins sit between long enough straights for the road's far edges to stay apart.
    minimum = np.full(n, 3.0)
    kinds = [p.kind for p in pieces]
    for j in range(n):
        before, after = kinds[2 * j], kinds[(2 * j + 2) % len(kinds)]
        if 'hairpin' in (before, after):
            minimum[j] = 15.0
    if budget < minimum.sum() + 20.0:
        return None
    wanted *= budget / wanted.sum()
    a = np.vstack([np.cos(headings), np.sin(headings), np.ones(n)])
    b = np.array([-gap[0], -gap[1], budget])
    fixed = np.zeros(n, bool)
    lengths = wanted.copy()
    for _ in range(n):
        free = ~fixed
        if free.sum() < 3:
            return None
        rest = b - a[:, fixed] @ minimum[fixed]
        weight = wanted[free]
        af = a[:, free]
        normal = (af * weight) @ af.T
        if np.linalg.cond(normal) > 1e8:
            return None
        lam = np.linalg.solve(normal, rest - af @ wanted[free])
        lengths = minimum.copy()
        lengths[free] = wanted[free] + weight * (af.T @ lam)
        low = free & (lengths < minimum - 1e-9)
        if not low.any():
            break
        fixed |= low
    else:
        return None
    if lengths.max() > 450.0:
        return None
    return lengths


@dataclass(frozen=True)
class _Placed:
    kind: str
    start: float
    length: float
    turn: float
    min_radius: float


def _assemble(pieces: list[_Piece], lengths: np.ndarray | None
              ) -> tuple[np.ndarray, list[_Placed]]:
    """Place the pieces end to end from the origin heading +x; straights take ``lengths``."""
    x = y = heading = s = 0.0
    chunks, placed, j = [], [], 0
    for piece in pieces:
        if piece.kind == 'straight' and lengths is not None:
            piece = _straight(float(lengths[j]))
            j += 1
        if piece.length <= 0:
            continue
        points, end = _trace(piece, x, y, heading)
        chunks.append(points[:-1])
        placed.append(_Placed(piece.kind, s, piece.length, piece.turn, piece.min_radius))
        x, y = points[-1]
        heading, s = end, s + piece.length
    chunks.append(np.array([[x, y]]))
    return np.vstack(chunks), placed


def _clearance(points: np.ndarray, road_width: float, closed: bool = True,
               spacing: float = 1.0) -> float:
    """
    Closest approach of two parts of a line more than 3 road widths apart along it.

    :meth:`Circuit.min_clearance`'s rule, on samples ``spacing`` apart: cheap enough to reject
    candidates before a circuit is built.
    """
    step = np.hypot(*np.diff(points, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(step)])
    sample = np.arange(0.0, arc[-1], spacing)
    pts = np.column_stack([np.interp(sample, arc, points[:, k]) for k in range(2)])
    d = np.hypot(pts[:, None, 0] - pts[None, :, 0], pts[:, None, 1] - pts[None, :, 1])
    ds = np.abs(sample[:, None] - sample[None, :])
    if closed:
        ds = np.minimum(ds, arc[-1] - ds)
    d[ds < 3 * road_width] = np.inf
    return float(d.min())


def _start_on_longest_straight(points: np.ndarray, placed: list[_Placed]
                               ) -> tuple[np.ndarray, float]:
    """
    Return the loop rolled and moved so that it starts on its longest straight, at the origin.

    A third of the way along it, heading +x; and the arc length the start was moved by.
    """
    longest = max((p for p in placed if p.kind == 'straight'), key=lambda p: p.length)
    offset = longest.start + longest.length / 3
    step = np.hypot(*np.diff(points, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(step)])
    loop = points[:-1]
    i = int(np.searchsorted(arc, offset))
    loop = np.roll(loop, -i, axis=0)
    direction = loop[1] - loop[0]
    yaw = math.atan2(direction[1], direction[0])
    c, s = math.cos(-yaw), math.sin(-yaw)
    moved = (loop - loop[0]) @ np.array([[c, s], [-s, c]])
    return moved, float(arc[i])


def _elements(placed: list[_Placed], offset: float, total: float) -> tuple[Element, ...]:
    """Return the placed pieces, each starting where it does on the final line."""
    length = sum(p.length for p in placed)
    scale = total / length
    elements = []
    for p in placed:
        start = (p.start - offset) % length
        if p.kind == 'straight' and p.start <= offset < p.start + p.length:
            before = offset - p.start
            elements.append(Element('straight', 0.0, (p.length - before) * scale, 0.0, math.inf))
            if before > 0:
                elements.append(Element('straight', (length - before) * scale, before * scale,
                                        0.0, math.inf))
            continue
        elements.append(Element(p.kind, start * scale, p.length * scale,
                                math.degrees(p.turn), p.min_radius))
    return tuple(sorted(elements, key=lambda e: e.start_m))


def _described(circuit: Circuit, elements: tuple[Element, ...]) -> Circuit:
    """Return the circuit with its description and the timeout rule of circuits read from files."""
    counts = _kind_counts(elements)
    listed = ', '.join(f"{n} {kind.replace('_', '-')}{'s' if n != 1 else ''}"
                       for kind, n in counts.items() if n)
    description = (f'generated: {circuit.length:.0f} m, tightest radius '
                   f'{circuit.min_radius():.1f} m, {listed}')
    return replace(circuit, description=description,
                   timeout_s=max(60.0, circuit.length / 6.5 * 1.5))


# -- preview --------------------------------------------------------------------------------------
def plot_layout(layout: GeneratedLayout, path: str | Path) -> Path:
    """
    Write a PNG of the layout and its curvature profile.

    Left: the road drawn to its width with its kerbs, the centre line, the start and its
    direction. Right: curvature radius against arc length, the element kinds marked.
    """
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib.collections import PolyCollection
    import matplotlib.pyplot as plt

    c = layout.circuit
    path = Path(path)
    fig, (ax, prof) = plt.subplots(1, 2, figsize=(15, 6.5),
                                   gridspec_kw={'width_ratios': [1.1, 1.0]})
    step = max(1, int(round(0.5 / c.spacing)))
    line = np.vstack([c.centreline, c.centreline[:1]])[::step]
    if not np.array_equal(line[-1], c.centreline[0]):
        line = np.vstack([line, c.centreline[:1]])
    tangent = np.gradient(line, axis=0)
    tangent /= np.maximum(np.hypot(*tangent.T), 1e-12)[:, None]
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    # Quads between consecutive cross-sections: exact where the road overlaps itself at a tight
    # apex, where filling between the two edges would not be.
    for half, colour in ((c.road_width / 2 + c.kerb_width, 'tab:blue'),
                         (c.road_width / 2, '0.6')):
        left, right = line + half * normal, line - half * normal
        quads = np.stack([left[:-1], left[1:], right[1:], right[:-1]], axis=1)
        ax.add_collection(PolyCollection(quads, facecolors=colour, edgecolors=colour,
                                         linewidths=0.3, zorder=1))
    ax.plot(line[:, 0], line[:, 1], color='tab:red', lw=0.8, zorder=2, label='centre line')
    x0, y0, yaw0 = c.start_pose
    arrow = max(np.ptp(c.centreline, axis=0).max() / 15, 10.0)
    ax.plot(x0, y0, marker='o', ms=8, color='k', zorder=4, label='start')
    ax.annotate('', xy=(x0 + arrow * math.cos(yaw0), y0 + arrow * math.sin(yaw0)),
                xytext=(x0, y0), arrowprops={'arrowstyle': '-|>', 'color': 'k', 'lw': 2},
                zorder=4)
    ax.set_aspect('equal')
    ax.autoscale_view()
    ax.set_xlabel('x (m)')
    ax.set_ylabel('y (m)')
    ax.grid(True, alpha=0.25)
    ax.legend(loc='upper right', fontsize=8)
    turn = 'clockwise' if layout.clockwise else 'counter-clockwise'
    ax.set_title(f'{c.name}: {c.length:.0f} m, {turn}, road {c.road_width:g} m, '
                 f'line {c.line_width:g} m')

    s = c.arc[:-1]
    radius = 1.0 / np.maximum(np.abs(c.curvature), 1e-6)
    prof.semilogy(s, np.minimum(radius, 1000.0), color='k', lw=0.8)
    prof.axhline(TIGHT_RADIUS_M, color='tab:orange', ls='--', lw=1,
                 label=f'{TIGHT_RADIUS_M:g} m ({100 * tight_share(c):.0f} % of the lap under)')
    colours = {'hairpin': 'tab:red', 'corner': 'tab:orange', 'bend': 'tab:olive',
               'sweeper': 'tab:green', 'chicane': 'tab:purple', 's_bend': 'tab:cyan'}
    shown = set()
    for e in layout.elements:
        if e.kind in colours:
            prof.axvspan(e.start_m, e.start_m + e.length_m, color=colours[e.kind], alpha=0.2,
                         label=None if e.kind in shown else e.kind.replace('_', '-'))
            shown.add(e.kind)
    prof.set_ylim(1.0, 1000.0)
    prof.set_xlim(0.0, c.length)
    prof.set_xlabel('arc length from the start (m)')
    prof.set_ylabel('curvature radius (m, 1000 = straight)')
    prof.set_title(f'tightest radius {c.min_radius():.1f} m')
    prof.grid(True, which='both', alpha=0.25)
    prof.legend(loc='lower right', fontsize=8, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
