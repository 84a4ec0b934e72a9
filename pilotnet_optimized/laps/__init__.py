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
Lap figures of JdeRobot Behavior Metrics, without ROS.

- :mod:`.trajectory`: timed poses from CSV files and bags (read through
  :mod:`pilotnet_optimized.bags.read`).
- :mod:`.metrics`: percentage completed, lap time, position deviation, ... against a perfect lap.
- :mod:`.tracker`: online end-of-run conditions (timeout, trapped, back at start, flipped, ...).
- :mod:`.geometry`: exact point-to-polyline distances, vectorised.
- :mod:`.report`: the report of a run (lap figures plus the brain's timing) as metrics.json and
  metrics.md.
"""

from __future__ import annotations

from pilotnet_optimized.laps.geometry import point_polyline_distance
from pilotnet_optimized.laps.metrics import (checkpoint_progress, CHECKPOINT_RADIUS_M,
                                             CheckpointProgress, circuit_diameter,
                                             compute_lap_metrics, LapMetrics, load_perfect_lap,
                                             PerfectLap)
from pilotnet_optimized.laps.report import report_markdown, RunReport, write_report
from pilotnet_optimized.laps.tracker import EndReason, RunMonitor
from pilotnet_optimized.laps.trajectory import (load_trajectory, quaternion_to_yaw_pitch,
                                                save_trajectory_csv, Trajectory)

__all__ = [
    'CHECKPOINT_RADIUS_M',
    'CheckpointProgress',
    'EndReason',
    'LapMetrics',
    'PerfectLap',
    'RunMonitor',
    'RunReport',
    'Trajectory',
    'checkpoint_progress',
    'circuit_diameter',
    'compute_lap_metrics',
    'load_perfect_lap',
    'load_trajectory',
    'point_polyline_distance',
    'quaternion_to_yaw_pitch',
    'report_markdown',
    'save_trajectory_csv',
    'write_report',
]
