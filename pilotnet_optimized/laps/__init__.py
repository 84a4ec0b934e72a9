"""Lap figures of JdeRobot Behavior Metrics, without ROS.

- :mod:`.trajectory`: timed poses from CSV files and bags (read through :mod:`pilotnet_optimized.bags.read`).
- :mod:`.metrics`: percentage completed, lap time, position deviation, ... against a perfect lap.
- :mod:`.tracker`: online end-of-run conditions (timeout, trapped, back at start, flipped, ...).
- :mod:`.geometry`: exact point-to-polyline distances, vectorised.
- :mod:`.report`: the report of a run (lap figures plus the brain's timing) as metrics.json and metrics.md.
"""

from __future__ import annotations

from pilotnet_optimized.laps.geometry import point_polyline_distance
from pilotnet_optimized.laps.metrics import (
    CHECKPOINT_RADIUS_M,
    CheckpointProgress,
    LapMetrics,
    PerfectLap,
    checkpoint_progress,
    circuit_diameter,
    compute_lap_metrics,
    load_perfect_lap,
)
from pilotnet_optimized.laps.report import RunReport, report_markdown, write_report
from pilotnet_optimized.laps.tracker import EndReason, RunMonitor
from pilotnet_optimized.laps.trajectory import (
    Trajectory,
    load_trajectory,
    quaternion_to_yaw_pitch,
    save_trajectory_csv,
)

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
