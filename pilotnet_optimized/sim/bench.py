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
Simulator throughput.

Camera frames per second and kinematics steps per second, on a fixed path (``pilotnet bench-sim``).
"""

from __future__ import annotations

from dataclasses import replace
import json
import platform
import time
from typing import TYPE_CHECKING

import cv2
import numpy as np

from pilotnet_optimized.argtypes import positive_int
from pilotnet_optimized.backends.timing import percentiles, time_calls, time_each
from pilotnet_optimized.evaluate.report import machine_description, text_table
from pilotnet_optimized.sim.camera import Appearance, CameraRenderer, CircuitTexture
from pilotnet_optimized.sim.car import PlanarCar
from pilotnet_optimized.sim.circuits import get_circuit

if TYPE_CHECKING:
    import argparse

__all__ = ['bench_sim', 'add_arguments', 'run']

COLUMNS = ('what', 'count', 'per_second', 'p50_us', 'p90_us', 'p99_us')


def _row(what: str, ms: np.ndarray) -> dict:
    us = ms * 1e3
    return {'what': what, 'count': int(len(ms)), 'per_second': round(float(1e3 / np.mean(ms)), 1),
            **percentiles(us, unit='us', digits=2)}


def bench_sim(
    circuit_name: str = 'simple',
    frames: int = 2000,
    steps: int = 100_000,
    threads: int = 1,
    warmup: int = 50,
) -> dict:
    """
    Time the renderer (one frame per 0.25 m along the lap) and the car's kinematics step.

    The renderer twice: clean, and with the random looks of training frames (eight looks, each
    for an eighth of the frames; the painted part costs nothing per frame, so they share the
    clean texture).

    :param threads: OpenCV threads; 1 measures one core, the issue's bar (300 frames/s).
    """
    previous_threads = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        circuit = get_circuit(circuit_name)
        t0 = time.perf_counter()
        texture = CircuitTexture(circuit)
        texture_s = time.perf_counter() - t0
        renderer = CameraRenderer(circuit, texture=texture)
        out = np.empty((renderer.camera.height_px, renderer.camera.width, 3), np.uint8)
        poses = [circuit.pose_at(0.25 * i) for i in range(frames + warmup)]
        render_ms = time_each(
            lambda pose: renderer.render(*pose, out=out), poses[warmup:], warmup=poses[:warmup]
        )
        rng = np.random.default_rng(0)
        looks = [CameraRenderer(circuit, texture=texture,
                                appearance=replace(Appearance.random(rng), painted=texture.look))
                 for _ in range(8)]

        def render_random(i: int) -> None:
            looks[i * len(looks) // (frames + warmup)].render(*poses[i], out=out)

        random_ms = time_each(render_random, range(warmup, frames + warmup),
                              warmup=range(warmup))
        car = PlanarCar(*circuit.start_pose, dt=0.01)
        # Kinematics is microseconds a step: time it in blocks so the clock's overhead does not
        # dominate.
        block = 1000

        def steps_block() -> None:
            for _ in range(block):
                car.step(10.0, 0.3)

        step_ms = time_calls(steps_block, max(1, steps // block)) / block
        hint = 0

        def project(i: int) -> None:
            nonlocal hint
            x, y, _ = poses[i % len(poses)]
            hint = circuit.project(x, y, hint=hint).index

        proj_ms = time_each(project, range(2000))
    finally:
        cv2.setNumThreads(previous_threads)
    return {
        'benchmark': 'bench-sim',
        'circuit': circuit.name,
        'image': f'{renderer.camera.width}x{renderer.camera.height_px} rgb8',
        'threads': threads,
        'machine': machine_description(),
        'python': platform.python_version(),
        'opencv': cv2.__version__,
        'texture_build_s': round(texture_s, 3),
        'texture_px': list(texture.image.shape[:2]),
        'rows': [_row('render frame', render_ms), _row('render frame, random look', random_ms),
                 _row('kinematics step', step_ms),
                 _row('centre-line projection', proj_ms)],
    }


# -- the command ----------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    """``pilotnet bench-sim``'s options."""
    p.add_argument('--circuit', default='simple', help='circuit to render (default: simple)')
    p.add_argument(
        '--frames', type=positive_int, default=2000, help='frames to render (default: 2000)'
    )
    p.add_argument('--steps', type=int, default=100000, help='kinematics steps (default: 100000)')
    p.add_argument('--threads', type=int, default=1, help='OpenCV threads (default: 1, one core)')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its rows (or JSON)."""
    result = bench_sim(
        circuit_name=args.circuit, frames=args.frames, steps=args.steps, threads=args.threads
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"machine: {result['machine']}  opencv {result['opencv']}  threads {result['threads']}"
        )
        print(text_table(result['rows'], COLUMNS))
    return 0
