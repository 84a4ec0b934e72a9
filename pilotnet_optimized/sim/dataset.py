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
Dataset writer in DeepLearningStudio's layout.

A folder of ``N.png`` camera frames and ``data.csv`` (v, w).

Frames come from the expert driving with steering disturbances and random lighting, so a learned
driver sees off-centre positions together with the command that brings the car back. ``poses.csv``
and ``meta.json`` beside them say where each frame was taken and how the set was made;
DeepLearningStudio's readers ignore both.

For training circuits the look of the world is randomised too by default
(:class:`~pilotnet_optimized.sim.camera.Appearance`): a newly painted circuit (asphalt, kerbs,
grass, the line's red and width) every ``texture_frames`` frames, and per episode a sky, frame
effects (shadows, vignette, blur, noise, JPEG) and a camera mount a little off. Validation and
test circuits keep the clean look of the simulator they are compared with, unless asked. The
look has a random stream of its own, so the drive (poses, labels) is the same with or without
it; ``meta.json`` records every look used.
"""

from __future__ import annotations

import argparse
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
import csv
from dataclasses import asdict, dataclass, replace
import json
import os
from pathlib import Path
import time

import numpy as np
from pilotnet_optimized.argtypes import output_folder, positive_int
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.sim.camera import (Appearance, CameraRenderer, CircuitTexture, Lighting,
                                           PaintedLook)
from pilotnet_optimized.sim.circuit import Circuit
from pilotnet_optimized.sim.expert import ExpertDriver, Perturbation
from pilotnet_optimized.sim.png import encode_rgb_png
from pilotnet_optimized.sim.simulation import SimConfig, Simulator
from pilotnet_optimized.sim.splits import split_of_circuit
from tqdm import tqdm

__all__ = [
    'DatasetInfo', 'circuit_reference', 'write_dataset', 'read_labels', 'add_arguments', 'run'
]

LABELS_FILE = 'data.csv'
POSES_FILE = 'poses.csv'
META_FILE = 'meta.json'
EPISODE_SECONDS = 20.0  # a new start pose and lighting this often, for variety
#: Lossless PNG, fast: ISA-L's deflate at this level over SUB-filtered rows (:mod:`.png`; OpenCV's
#: zlib level 1 with the same filter took 2.8 ms for a clean 640x480 frame and 6 ms for a noisy
#: randomised one, ISA-L 0.5 and 1.4 ms, at the same or a smaller size).
PNG_LEVEL = 1
#: PNG encoder threads (deflate releases the GIL): one per core, at most 4.
ENCODER_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
                             else (os.cpu_count() or 1)))
#: A newly painted look this often (three whole episodes): painting one costs a second or two.
TEXTURE_FRAMES = 1200
#: Second entropy word of the look's random stream, so that it never draws the drive's numbers.
LOOK_STREAM = 0x100C


@dataclass(frozen=True)
class DatasetInfo:
    """What was written."""

    path: str
    circuit: str
    split: str | None
    frames: int
    episodes: int
    seed: int
    perturb: bool
    lighting: bool
    randomise: bool
    strength: float
    circuit_length_m: float
    w_abs_mean: float
    v_mean: float


def circuit_reference(circuit: Circuit) -> str:
    """Return what :func:`~pilotnet_optimized.sim.get_circuit` reads ``circuit`` from again."""
    return circuit.name if circuit.source in ('builtin', 'generated') else circuit.source


def write_dataset(
    circuit: Circuit,
    frames: int,
    out: str | Path,
    seed: int = 0,
    perturb: bool = True,
    lighting: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    sim_config: SimConfig | None = None,
    episode_seconds: float = EPISODE_SECONDS,
    randomise: bool | None = None,
    strength: float = 1.0,
    texture_frames: int = TEXTURE_FRAMES,
) -> DatasetInfo:
    """
    Drive the expert on ``circuit`` and write ``frames`` labelled camera frames to ``out``.

    :param perturb: disturb the steering now and then (the label stays the expert's clean command).
    :param lighting: vary brightness, tint and fog per episode (with ``randomise``, also colour
        temperature and contrast).
    :param overwrite: replace an existing dataset in ``out``.
    :param episode_seconds: a new random start pose and lighting this often.
    :param randomise: randomise the look of the world (:class:`Appearance`); ``None``: on,
        except for a validation or test circuit. Without it and without ``lighting``, frames are
        the clean ones the simulator shows in evaluation.
    :param strength: how far every variation goes, lighting included: 0 (none) to 1 (the full,
        realistic ranges).
    :param texture_frames: with ``randomise``, paint a new look after this many frames (at the
        next episode).
    :raises PilotnetError: if ``out`` already holds a dataset and ``overwrite`` is false.
    """
    if frames < 1:
        raise PilotnetError('frames must be at least 1')
    if not 0.0 <= strength <= 1.0:
        raise PilotnetError(f'strength must be between 0 and 1, not {strength}')
    if randomise is None:
        randomise = split_of_circuit(circuit_reference(circuit)) not in ('val', 'test')
    out = Path(out)
    if (out / LABELS_FILE).exists() and not overwrite:
        raise PilotnetError(
            f'{out} already holds a dataset ({LABELS_FILE}); pass --overwrite to replace it'
        )
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob('*.png'):
        old.unlink()
    rng = np.random.default_rng(seed)
    sim = Simulator(circuit, sim_config)
    expert = ExpertDriver(circuit)
    disturb = Perturbation(rng) if perturb else None
    frame_shape = (sim.config.camera.height_px, sim.config.camera.width, 3)
    episode_steps = max(1, int(episode_seconds / sim.config.control_period))
    episodes = 0
    steps_left = 0
    light: Lighting | None = None
    look_rng = np.random.default_rng([seed, LOOK_STREAM])
    texture: CircuitTexture | None = None
    renderer: CameraRenderer | None = None
    texture_frames_left = 0
    painted: list[dict] = []        # every painted look, in order
    episode_looks: list[dict] = []  # what each episode looked like
    v_sum = w_abs_sum = 0.0
    # Lens effects and PNG encoding are most of a frame's cost and release the GIL: encoder
    # threads finish and write frame i while the main thread draws frame i + 1 (bounded, so
    # memory stays a few frames).
    encoders = ThreadPoolExecutor(max_workers=ENCODER_THREADS, thread_name_prefix='png')
    pending: deque[Future] = deque()
    # Rows are flushed as they are written, so an interrupted run leaves a consistent prefix.
    with open(out / LABELS_FILE, 'w', newline='') as labels_f, open(
        out / POSES_FILE, 'w', newline=''
    ) as poses_f:
        labels = csv.writer(labels_f)
        poses = csv.writer(poses_f)
        labels.writerow(['v', 'w'])
        poses.writerow(['t', 'x', 'y', 'yaw', 'lateral', 'episode', 'w_disturbance'])
        for i in tqdm(
            range(frames), desc=f'dataset {circuit.name}', unit='frame', disable=not progress
        ):
            if steps_left <= 0 or not sim.on_road:
                sim.reset(
                    s=float(rng.uniform(0, circuit.length)),
                    lateral=float(rng.uniform(-1.5, 1.5)),
                    yaw_offset=float(rng.uniform(-0.1, 0.1)),
                )
                expert.reset()
                if disturb is not None:
                    disturb.reset(sim.state.t)  # the new car's clock starts at zero
                light = Lighting.random(rng, strength) if lighting else None
                if randomise:
                    if texture_frames_left <= 0:
                        renderer = texture = None  # one texture in memory at a time
                        look = PaintedLook.random(look_rng, strength)
                        texture = CircuitTexture(circuit, look=look)
                        painted.append(asdict(texture.look))
                        texture_frames_left = texture_frames
                    appearance = _episode_appearance(look_rng, strength, texture.look, light)
                    renderer = CameraRenderer(circuit, sim.config.camera, texture, appearance)
                    seen = asdict(appearance)
                    del seen['painted']  # recorded once per texture, in 'painted'
                    episode_looks.append({'painted': len(painted) - 1, **seen})
                else:
                    episode_looks.append({'lighting': None if light is None else asdict(light)})
                episodes += 1
                steps_left = episode_steps
            st = sim.state
            v, w = expert.command(st)
            # A new buffer each frame: the encoder threads own it from here on.
            frame = np.empty(frame_shape, np.uint8)
            finish = None
            if renderer is None:
                sim.frame(light, out=frame)
            else:
                frame, finish = renderer.render_staged(st.x, st.y, st.yaw, out=frame)
            texture_frames_left -= 1
            pending.append(encoders.submit(_finish_and_write, out / f'{i}.png', frame, finish))
            while len(pending) > 2 * ENCODER_THREADS:
                pending.popleft().result()
            labels.writerow([f'{v:.6f}', f'{w:.6f}'])
            offset = disturb.offset(st.t) if disturb is not None else 0.0
            poses.writerow([f'{st.t:.3f}', f'{st.x:.4f}', f'{st.y:.4f}', f'{st.yaw:.5f}',
                            f'{sim.projection.lateral:.4f}', episodes - 1, f'{offset:.4f}'])
            v_sum += v
            w_abs_sum += abs(w)
            sim.step(v, w + offset)
            steps_left -= 1
        try:
            for job in pending:
                job.result()   # an encoder's error (a full disk) surfaces here
        finally:
            encoders.shutdown(wait=True, cancel_futures=True)
    info = DatasetInfo(
        path=str(out),
        circuit=circuit.name,
        split=split_of_circuit(circuit_reference(circuit)),
        frames=frames,
        episodes=episodes,
        seed=seed,
        perturb=perturb,
        lighting=lighting,
        randomise=randomise,
        strength=strength,
        circuit_length_m=round(circuit.length, 2),
        w_abs_mean=round(w_abs_sum / frames, 4),
        v_mean=round(v_sum / frames, 4),
    )
    meta = {
        **asdict(info),
        # What get_circuit reads it from again (on-policy rounds drive it; splits judge it).
        'circuit_source': circuit_reference(circuit),
        'camera': asdict(sim.config.camera),
        'control_period_s': sim.config.control_period,
        'layout': 'DeepLearningStudio: N.png + data.csv (v, w)',
        'appearance': {
            'randomise': randomise,
            'lighting': lighting,
            'strength': strength,
            'texture_frames': texture_frames if randomise else None,
            'painted': painted,
            'episodes': episode_looks,
        },
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + '\n')
    return info


def _episode_appearance(rng: np.random.Generator, strength: float, look: PaintedLook,
                        light: Lighting | None) -> Appearance:
    """
    Return an episode's appearance on a texture painted with ``look``.

    The lighting is the one drawn from the drive's stream (as without randomisation); ``None``
    (``--no-lighting``) also leaves colour temperature and contrast alone.
    """
    appearance = Appearance.random(rng, strength)
    if light is None:
        effects = replace(appearance.effects, lighting=Lighting(), temperature=0.0, contrast=1.0)
    else:
        effects = replace(appearance.effects, lighting=light)
    return replace(appearance, painted=look, effects=effects)


def _finish_and_write(path: Path, frame: np.ndarray,
                      finish: Callable[[np.ndarray], None] | None) -> None:
    """
    Finish a frame's lens effects (if any), then write its PNG file: an encoder thread's job.

    :meth:`~.camera.CameraRenderer.render_staged` leaves the lens effects (blur, noise, JPEG),
    which draw no random numbers, to here: they run beside the next frame's drawing.
    """
    if finish is not None:
        finish(frame)
    path.write_bytes(_encode_frame(frame))


def _encode_frame(rgb: np.ndarray) -> bytes:
    return encode_rgb_png(rgb, PNG_LEVEL)


def read_labels(path: str | Path) -> np.ndarray:
    """
    Return the (N, 2) array of (v, w) labels of a dataset folder.

    Row i belonging to ``i.png``.
    """
    path = Path(path)
    labels = path / LABELS_FILE
    if not labels.exists():
        raise PilotnetError(f'{path}: not a dataset (no {LABELS_FILE})')
    with open(labels, newline='') as f:
        reader = csv.DictReader(f)
        missing = {'v', 'w'} - set(reader.fieldnames or [])
        if missing:
            raise PilotnetError(f'{labels}: missing column(s) {", ".join(sorted(missing))}')
        rows = [(float(r['v']), float(r['w'])) for r in reader]
    return np.array(rows, dtype=float).reshape(-1, 2)


# -- command line ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pilotnet dataset`` arguments."""
    parser.add_argument('--circuit', help='one circuit, written straight into --out')
    parser.add_argument('--split', choices=['train', 'val', 'test', 'all'],
                        help='every circuit of a split, into OUT/<split>/<circuit>/')
    parser.add_argument('--frames', type=positive_int, required=True, help='frames per circuit')
    parser.add_argument('--out', type=output_folder, required=True, help='output folder')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument('--no-perturb', action='store_true', help='no steering disturbances')
    parser.add_argument(
        '--no-lighting', action='store_true',
        help='no brightness, tint, contrast or fog variation (with --no-randomise: clean frames)'
    )
    parser.add_argument(
        '--randomise', action=argparse.BooleanOptionalAction, default=None,
        help='randomise the look of the world: painted circuit, sky, shadows, blur, noise, camera'
        ' mount (default: on, except for val and test circuits; --no-randomise keeps the look'
        ' evaluation sees)'
    )
    parser.add_argument(
        '--strength', type=float, default=1.0,
        help='how far the look and lighting vary, 0 (none) to 1 (full ranges, the default)'
    )
    parser.add_argument('--overwrite', action='store_true', help='replace an existing dataset')
    parser.add_argument(
        '--json', action='store_true', help='print JSON instead of a table (and no progress bar)'
    )


def run(args: argparse.Namespace) -> int:
    """``pilotnet dataset``: one circuit's dataset, or one per circuit of a split."""
    from pilotnet_optimized.evaluate.report import Column, print_rows
    from pilotnet_optimized.sim.circuits import get_circuit, SPLITS
    if (args.circuit is None) == (args.split is None):
        raise PilotnetError('give exactly one of --circuit NAME or --split train|val|test|all')
    out = Path(args.out)
    if args.circuit is not None:
        jobs = [(args.circuit, out)]
    else:
        splits = list(SPLITS) if args.split == 'all' else [args.split]
        jobs = [(name, out / split / name) for split in splits for name in SPLITS[split]]
    infos = []
    for k, (name, folder) in enumerate(jobs):
        started = time.perf_counter()
        info = write_dataset(get_circuit(name), args.frames, folder, seed=args.seed + k,
                             perturb=not args.no_perturb, lighting=not args.no_lighting,
                             overwrite=args.overwrite, progress=not args.json,
                             randomise=args.randomise, strength=args.strength)
        seconds = time.perf_counter() - started   # painting the circuit and every frame
        infos.append({**info.__dict__, 'seconds': round(seconds, 2),
                      'frames_per_s': round(args.frames / seconds, 1)})
    columns = (
        'path',
        'circuit',
        'split',
        'frames',
        'episodes',
        'v_mean',
        Column('|w|_mean', 'w_abs_mean'),
        Column('frames/s', 'frames_per_s'),
    )
    print_rows(infos, args.json, columns)
    return 0
