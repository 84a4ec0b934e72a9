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
Where a run starts: Behavior Metrics' world spawn poses, and ``--start x,y,yaw``.

A perfect-lap bag's first point is not where Behavior Metrics puts its car (nurburgring's is at a
hairpin apex, heading 0.65 rad off the road after it); the world's spawn pose is, on a straight.
A circuit read from a bag named like Behavior Metrics' (``lap-montreal.bag``) therefore starts at
that world's spawn pose, and any circuit can be started elsewhere with an explicit pose.

Starting at a pose re-indexes the centre line so that its first sample is the one nearest the pose
(the lap, the progress and the lap metrics all count from there) and places the car exactly at the
pose, off the line by however far the pose is.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.sim.circuit import Circuit

__all__ = ['SPAWN_POSES', 'Pose', 'spawn_pose_for', 'parse_start', 'starting_at']

Pose = tuple[float, float, float]

#: Behavior Metrics' world spawn poses (x, y, yaw), by the name of the world's perfect-lap bag
#: (its stem). From the ROS 1 Noetic worlds, which recorded the perfect laps; the ROS 2 Humble
#: montmelo world spawns elsewhere (27.18, -31.55, -3.12), also on the lap.
SPAWN_POSES: dict[str, Pose] = {
    'lap-simple-circuit': (53.462, -10.734, -1.57),
    'lap-many-curves': (0.01, -0.02, -1.73),
    'lap-montmelo': (93.71, 22.43, -0.35),
    'lap-montreal': (-200.88, -90.72, -2.83),
    'lap-nurburgring': (-74.29, 37.74, -0.51),
}

#: How far a pose may lie from the centre line and still start a run on it (m): further than a
#: road's half width plus its kerb and the car starts on the grass.
MAX_START_OFFSET_M = 4.0


def spawn_pose_for(source: str | Path) -> Pose | None:
    """
    Return the Behavior Metrics spawn pose for a circuit file, by its name.

    ``None`` for a file that is not named like one of Behavior Metrics' perfect laps.
    """
    name = Path(str(source).rstrip('/')).name
    for suffix in ('.bag', '.mcap', '.db3', '.csv'):
        name = name.removesuffix(suffix)
    return SPAWN_POSES.get(name)


def parse_start(text: str | None) -> Pose | None:
    """
    Return the pose of a ``--start`` value, ``x,y,yaw`` (m, m, rad).

    ``None`` or an empty text means the circuit's own start.

    :raises PilotnetError: for text that is not three finite numbers.
    """
    if text is None or not str(text).strip():
        return None
    parts = [p.strip() for p in str(text).split(',')]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or not all(np.isfinite(values)):
        raise PilotnetError(f'start {text!r}: give x,y,yaw (metres, metres, radians)')
    return values[0], values[1], values[2]


def starting_at(circuit: Circuit, pose: Pose) -> Circuit:
    """
    Return ``circuit`` re-indexed to start at the centre-line sample nearest ``pose``.

    The car starts exactly at ``pose``.

    :raises PilotnetError: when the pose is further than :data:`MAX_START_OFFSET_M` from the line.
    """
    x, y, yaw = (float(v) for v in pose)
    proj = circuit.project(x, y)
    if abs(proj.lateral) > MAX_START_OFFSET_M:
        raise PilotnetError(
            f'start ({x:g}, {y:g}) is {abs(proj.lateral):.1f} m from the centre line of '
            f'{circuit.name} (at most {MAX_START_OFFSET_M:g} m): not on this circuit')
    line = np.roll(circuit.centreline, -proj.index, axis=0)
    return replace(circuit, centreline=line, start=(x, y, yaw))
