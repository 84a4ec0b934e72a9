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
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import asdict, dataclass
import json
from pathlib import Path

import cv2
import numpy as np
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.sim.camera import Lighting
from pilotnet_optimized.sim.circuit import Circuit
from pilotnet_optimized.sim.circuits import split_of
from pilotnet_optimized.sim.expert import ExpertDriver, Perturbation
from pilotnet_optimized.sim.simulation import SimConfig, Simulator
from tqdm import tqdm

__all__ = ['DatasetInfo', 'write_dataset', 'read_labels', 'add_arguments', 'run']

LABELS_FILE = 'data.csv'
POSES_FILE = 'poses.csv'
META_FILE = 'meta.json'
EPISODE_SECONDS = 20.0  # a new start pose and lighting this often, for variety


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
    circuit_length_m: float
    w_abs_mean: float
    v_mean: float


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
) -> DatasetInfo:
    """
    Drive the expert on ``circuit`` and write ``frames`` labelled camera frames to ``out``.

    :param perturb: disturb the steering now and then (the label stays the expert's clean command).
    :param lighting: vary brightness, tint and fog per episode.
    :param overwrite: replace an existing dataset in ``out``.
    :param episode_seconds: a new random start pose and lighting this often.
    :raises PilotnetError: if ``out`` already holds a dataset and ``overwrite`` is false.
    """
    if frames < 1:
        raise PilotnetError('frames must be at least 1')
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
    frame = np.empty((sim.config.camera.height_px, sim.config.camera.width, 3), np.uint8)
    episode_steps = max(1, int(episode_seconds / sim.config.control_period))
    episodes = 0
    steps_left = 0
    light: Lighting | None = None
    v_sum = w_abs_sum = 0.0
    png = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # fast to write; the frames are still lossless
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
                light = Lighting.random(rng) if lighting else None
                episodes += 1
                steps_left = episode_steps
            st = sim.state
            v, w = expert.command(st)
            sim.frame(light, out=frame)
            cv2.imwrite(str(out / f'{i}.png'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), png)
            labels.writerow([f'{v:.6f}', f'{w:.6f}'])
            offset = disturb.offset(st.t) if disturb is not None else 0.0
            poses.writerow([f'{st.t:.3f}', f'{st.x:.4f}', f'{st.y:.4f}', f'{st.yaw:.5f}',
                            f'{sim.projection.lateral:.4f}', episodes - 1, f'{offset:.4f}'])
            v_sum += v
            w_abs_sum += abs(w)
            sim.step(v, w + offset)
            steps_left -= 1
    info = DatasetInfo(
        path=str(out),
        circuit=circuit.name,
        split=split_of(circuit.name),
        frames=frames,
        episodes=episodes,
        seed=seed,
        perturb=perturb,
        lighting=lighting,
        circuit_length_m=round(circuit.length, 2),
        w_abs_mean=round(w_abs_sum / frames, 4),
        v_mean=round(v_sum / frames, 4),
    )
    meta = {
        **asdict(info),
        'camera': asdict(sim.config.camera),
        'control_period_s': sim.config.control_period,
        'layout': 'DeepLearningStudio: N.png + data.csv (v, w)',
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + '\n')
    return info


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
    parser.add_argument('--frames', type=int, required=True, help='frames per circuit')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument('--no-perturb', action='store_true', help='no steering disturbances')
    parser.add_argument('--no-lighting', action='store_true', help='no lighting/fog variation')
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
        info = write_dataset(get_circuit(name), args.frames, folder, seed=args.seed + k,
                             perturb=not args.no_perturb, lighting=not args.no_lighting,
                             overwrite=args.overwrite, progress=not args.json)
        infos.append(info.__dict__)
    columns = (
        'path',
        'circuit',
        'split',
        'frames',
        'episodes',
        'v_mean',
        Column('|w|_mean', 'w_abs_mean'),
    )
    print_rows(infos, args.json, columns)
    return 0
