"""Simulator throughput: camera frames per second and kinematics steps per second, on a fixed path."""

from __future__ import annotations

import os
import platform
import time

import cv2
import numpy as np

from pilotnet_optimized.sim.camera import CameraRenderer, CircuitTexture
from pilotnet_optimized.sim.car import PlanarCar
from pilotnet_optimized.sim.circuits import get_circuit

__all__ = ['bench_sim']


def machine_description() -> str:
    """CPU model and core count, for benchmark headers (platform.processor() is empty on Linux)."""
    model = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            model = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), model)
    except OSError:
        pass
    return f'{model}, {os.cpu_count()} cores'


def _row(what: str, seconds: np.ndarray) -> dict:
    us = seconds * 1e6
    return {'what': what, 'count': int(len(seconds)), 'per_second': round(float(1.0 / np.mean(seconds)), 1),
            'p50_us': round(float(np.percentile(us, 50)), 2), 'p90_us': round(float(np.percentile(us, 90)), 2),
            'p99_us': round(float(np.percentile(us, 99)), 2)}


def bench_sim(circuit_name: str = 'simple', frames: int = 2000, steps: int = 100_000, threads: int = 1,
              warmup: int = 50) -> dict:
    """Time the renderer (one frame per 0.25 m along the lap) and the car's kinematics step.

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
        for pose in poses[:warmup]:
            renderer.render(*pose, out=out)
        render_times = np.empty(frames)
        for i, pose in enumerate(poses[warmup:]):
            t = time.perf_counter()
            renderer.render(*pose, out=out)
            render_times[i] = time.perf_counter() - t
        car = PlanarCar(*circuit.start_pose, dt=0.01)
        # Kinematics is microseconds a step: time it in blocks so the clock's overhead does not dominate.
        block = 1000
        step_times = np.empty(max(1, steps // block))
        for b in range(len(step_times)):
            t = time.perf_counter()
            for _ in range(block):
                car.step(10.0, 0.3)
            step_times[b] = (time.perf_counter() - t) / block
        proj_times = np.empty(2000)
        hint = 0
        for i in range(len(proj_times)):
            x, y, _ = poses[i % len(poses)]
            t = time.perf_counter()
            hint = circuit.project(x, y, hint=hint).index
            proj_times[i] = time.perf_counter() - t
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
        'rows': [_row('render frame', render_times), _row('kinematics step', step_times),
                 _row('centre-line projection', proj_times)],
    }
