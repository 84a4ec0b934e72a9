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
Behavior Metrics' script mode: repetitions, their reports and summary, the episode node.

The episode node is driven over the built-in simulator's Gazebo services in a real graph.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from pilotnet_optimized.laps.report import summarise_runs
from pilotnet_optimized.sim import get_circuit
from pilotnet_optimized.sim.episodes import episode_timeout_s, perfect_lap_of, Repetition
import pytest


def test_repetition_applies_the_end_rules_and_carries_bm_keys():
    circuit = get_circuit('simple')
    perfect = perfect_lap_of(circuit)
    rep = Repetition(1, perfect, timeout_s=5.0)
    x, y, yaw = circuit.start_pose
    reason = None
    for k in range(200):
        t = 0.05 * k
        reason = rep.add_pose(t, x + 0.5 * k * math.cos(yaw), y + 0.5 * k * math.sin(yaw), yaw,
                              v=10.0, w=0.0)
        if reason:
            break
    assert reason == 'timeout' and t == pytest.approx(5.0)
    report = rep.end('interrupted')      # the rule that fired wins
    assert report['end_reason'] == 'timeout' and report['repetition'] == 1
    bm = report['behavior_metrics']
    assert bm['completed_distance'] == pytest.approx(report['completed_distance'])
    assert bm['experiment_total_simulated_time'] == pytest.approx(5.0)
    assert bm['suddenness_distance'] == 0.0 and bm['lap_seconds'] is None
    assert bm['target_brain_iterations_real_time'] == 20.0


def test_timeouts_are_behavior_metrics_per_world():
    assert episode_timeout_s(get_circuit('simple'), laps=2) == 150.0
    bags = Path(os.environ.get('PILOTNET_PERFECT_BAGS', '../shared/behavior_metrics/perfect_bags'))
    bag = bags / 'lap-nurburgring.bag'
    if bag.exists():
        assert episode_timeout_s(get_circuit(str(bag))) == pytest.approx(88 * 1.1)


def test_summary_gives_mean_and_spread():
    reports = [{'end_reason': 'laps_done', 'percentage_completed': p, 'lap_seconds': s,
                'behavior_metrics': {'mean_inference_time': 0.001}}
               for p, s in ((100.0, 26.0), (100.2, 28.0))]
    reports.append({'end_reason': 'off_track', 'percentage_completed': 40.0, 'lap_seconds': None})
    summary = summarise_runs(reports)
    pct = summary['figures']['percentage_completed']
    assert summary['repetitions'] == 3 and summary['completed'] == 2
    assert summary['end_reasons'] == {'laps_done': 2, 'off_track': 1}
    assert pct['n'] == 3 and pct['mean'] == pytest.approx(80.0667, abs=1e-3)
    assert pct['min'] == 40.0 and pct['std'] > 30
    assert summary['figures']['lap_seconds'] == {'n': 2, 'mean': 27.0, 'std': pytest.approx(
        math.sqrt(2)), 'min': 26.0, 'max': 28.0}


# -- a real graph ---------------------------------------------------------------------------------
def test_run_with_episodes_drives_three_repetitions(tiny_driver, ros_env, tmp_path):
    """``pilotnet run episodes:=3``: three resets over /reset_world, three reports, a summary."""
    out_dir = tmp_path / 'run'
    proc = subprocess.run(
        [sys.executable, '-m', 'pilotnet_optimized.nodes.runner', f"model:={tiny_driver['float']}",
         'circuit:=simple', 'episodes:=3', f'output_dir:={out_dir}'],
        capture_output=True, text=True, timeout=240, env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    out = proc.stdout + proc.stderr
    print(out)
    assert 'episode_node ended the run (exit code 3)' in out, out[-3000:]
    # The runner exits with the episode node's code: 3, some repetitions did not complete.
    assert proc.returncode == 3 and 'done (exit code 3)' in out, out[-3000:]
    assert out.count('world reset: the car at the start pose') >= 3
    summary = json.loads((out_dir / 'summary.json').read_text())
    assert summary['repetitions'] == 3 and summary['completed'] == 0   # the tiny model crashes
    # The node states go into the summary; no run-wide metrics.json is made up beside it.
    assert not (out_dir / 'metrics.json').exists()
    assert summary['nodes']['/episode_node']['process']['exit_code'] == 3
    reports = [json.loads((out_dir / f'repetition-{i}' / 'metrics.json').read_text())
               for i in (1, 2, 3)]
    start = get_circuit('simple').start_pose
    for i, report in enumerate(reports, 1):
        assert report['repetition'] == i and report['frames'] >= 5
        # The simulator's own end event ended it (the tiny model leaves the road).
        assert report['simulator']['end_reason'] == report['end_reason']
        assert report['behavior_metrics']['experiment_total_simulated_time'] > 0
        # Each repetition starts at the spawn pose: its distance is its own, not the last one's.
        assert report['completed_distance'] == pytest.approx(
            report['simulator']['completed_distance'], abs=1.5)
    assert summary['figures']['completed_distance']['n'] == 3
    assert start


DRIVER = Path(__file__).resolve().parents[1] / 'models' / 'default' / 'pilotnet_nvidia.keras'


@pytest.mark.skipif(not DRIVER.is_file(), reason='the shipped default model is missing')
def test_completed_episodes_end_the_runner_with_exit_code_0(ros_env, tmp_path):
    """The shipped model completes its lap: the episode node exits 0, and so does the runner."""
    out_dir = tmp_path / 'run'
    proc = subprocess.run(
        [sys.executable, '-m', 'pilotnet_optimized.nodes.runner', f'model:={DRIVER}',
         'circuit:=simple', 'episodes:=1', f'output_dir:={out_dir}'],
        capture_output=True, text=True, timeout=300, env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    out = proc.stdout + proc.stderr
    print(out[-6000:])
    summary = json.loads((out_dir / 'summary.json').read_text())
    assert summary['completed'] == 1, out[-3000:]
    assert 'episode_node ended the run (exit code 0)' in out
    assert proc.returncode == 0 and 'done (exit code 0)' in out, out[-3000:]
    assert not (out_dir / 'metrics.json').exists() and summary['cause'] is None
    assert summary['nodes']['/episode_node']['process'].get('died_during_run') is None
    # the car is over the line before the pause (the lap rule fires 1 m short of it)
    rep = json.loads((out_dir / 'repetition-1' / 'metrics.json').read_text())
    assert rep['percentage_completed'] >= 100.0 and rep['lap_seconds'] is not None, rep


def test_a_missing_service_is_one_line_and_a_zero_command(ros_env, tmp_path):
    """No simulator: the services never appear; one line, exit 1, a zero Twist on /cmd_vel."""
    import rclpy
    from geometry_msgs.msg import Twist
    from pilotnet_optimized.nodes import qos
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    context = Context()
    rclpy.init(context=context)
    probe = rclpy.create_node('probe', context=context)
    got: list[Twist] = []
    probe.create_subscription(Twist, '/cmd_vel', got.append, qos.COMMAND)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    proc = subprocess.Popen(
        [sys.executable, '-m', 'pilotnet_optimized.nodes.episode_node', '--ros-args',
         '-p', 'service_timeout:=2.0', '-p', f'output_dir:={tmp_path}'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        end = time.monotonic() + 2
        while not got and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        executor.shutdown()
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
    assert proc.returncode == 1
    lines = [line for line in err.splitlines() if 'error' in line]
    assert len(lines) == 1 and '/reset_world' in lines[0] and 'not available' in lines[0]
    assert 'Traceback' not in err
    assert got and got[-1].linear.x == 0.0 and got[-1].angular.z == 0.0
