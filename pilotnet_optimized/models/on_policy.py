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
Frames from the states a learned driver reaches itself.

DAgger: Ross, Gordon and Bagnell, AISTATS 2011. A model trained (or distilled) on the expert's
frames is only ever corrected near the expert's path. Offline MSE rewards that; driving does not:
a student that drifts a little at a bend sees frames no training set contained, drifts further,
and leaves the road (the 1.47 MB ``slim`` model, better than the baseline offline, left ``simple``
at 51.6 % at the same tight bend as ``pcqat``). Here the student drives the training circuits in
the simulator, and every frame it sees is kept with the expert's command for the car's true pose
(the label of a recovery). Fine-tuning on these frames together with the original ones teaches it
to come back: with distillation (``slim``'s default) the targets are the full model's predictions
on those frames, and the expert's labels decide which frames are oversampled as sharp turns.

A share of the episodes (``focus``) starts a short run-up before one of the circuit's tight bends
(under :data:`FOCUS_RADIUS_M`), because that is where a model fails: a bend under 3 m radius is a
second of a lap, so random starts reach few of its apexes, and at an apex the road fills the view
while the line swings out of it (the shipped model, after one round of random starts, straightened
up at the apex of a 2.5 m validation hairpin). Any circuit's tight bends are found from its
curvature, so nothing here knows a particular circuit.

Only training circuits are driven (the caller passes them), so validation and test circuits stay
unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from pilotnet_optimized.models.preprocess import Preprocessing, resize_frame

if TYPE_CHECKING:  # pragma: no cover
    from pilotnet_optimized.models.data import Frames
    from pilotnet_optimized.sim.circuit import Circuit

__all__ = ['collect_on_policy', 'FOCUS_RADIUS_M', 'focus_start', 'keras_policy']

#: A bend is tight (a focused episode's target) under this curvature radius (m).
FOCUS_RADIUS_M = 6.0
#: A focused episode starts this far (m) before a point of a tight bend: a few seconds of
#: run-up at racing speed, so the model brakes and turns in itself.
FOCUS_RUN_UP_M = (15.0, 60.0)
#: A focused episode lasts this long (s): the run-up, the bend and its exit, then the next bend.
FOCUS_EPISODE_S = 5.0

#: Physical (v, w) command for a batch of one resized uint8 frame.
Policy = Callable[[np.ndarray], tuple[float, float]]


def keras_policy(model: object, preprocessing: Preprocessing) -> Policy:
    """Return a tf_keras model as a driver of resized frames (batch of one, inference mode)."""
    from pilotnet_optimized.models.preprocess import denormalise_labels, normalise_input

    def drive(small: np.ndarray) -> tuple[float, float]:
        out = np.asarray(model(normalise_input(small[None], preprocessing), training=False))
        v, w = denormalise_labels(out)[0]
        return float(v), float(w)
    return drive


def focus_start(circuit: Circuit, rng: np.random.Generator) -> float | None:
    """
    Return an arc position (m) a random run-up before a random point of a tight bend.

    ``None`` for a circuit without a bend under :data:`FOCUS_RADIUS_M`.
    """
    tight = np.flatnonzero(np.abs(circuit.curvature) > 1.0 / FOCUS_RADIUS_M)
    if len(tight) == 0:
        return None
    apex_s = float(circuit.arc[int(rng.choice(tight))])
    return (apex_s - float(rng.uniform(*FOCUS_RUN_UP_M))) % circuit.length


def collect_on_policy(
    policy: Policy,
    circuits: Sequence[Circuit],
    frames_per_circuit: int,
    preprocessing: Preprocessing = Preprocessing(),
    seed: int = 0,
    episode_seconds: float = 15.0,
    lighting: bool = True,
    focus: float = 0.0,
) -> Frames:
    """
    Let ``policy`` drive each circuit for ``frames_per_circuit`` frames, and label the frames.

    Every frame is labelled with the expert's command for the car's pose. An episode starts at a
    random point of the lap (with probability ``focus``, a run-up before a tight bend: see
    :func:`focus_start`), up to 1 m off the centre line, with a random lighting, and ends when
    the car leaves the road or after ``episode_seconds``; the frames up to leaving the road are the
    ones that matter most.
    """
    if not 0.0 <= focus <= 1.0:
        raise ValueError(f'focus must be between 0 and 1, not {focus}')
    from pilotnet_optimized.models.data import Frames
    from pilotnet_optimized.sim.camera import Lighting
    from pilotnet_optimized.sim.expert import ExpertDriver
    from pilotnet_optimized.sim.simulation import Simulator

    rng = np.random.default_rng(seed)
    h, w = preprocessing.input_shape[:2]
    images = np.empty((frames_per_circuit * len(circuits), h, w, 3), np.uint8)
    labels = np.empty((len(images), 2), np.float32)
    n = 0
    for circuit in circuits:
        sim = Simulator(circuit)
        expert = ExpertDriver(circuit)
        frame = np.empty((sim.config.camera.height_px, sim.config.camera.width, 3), np.uint8)
        episode_steps = max(1, int(episode_seconds / sim.config.control_period))
        focus_steps = max(1, int(min(episode_seconds, FOCUS_EPISODE_S)
                                 / sim.config.control_period))
        steps_left = 0
        light = None
        for _ in range(frames_per_circuit):
            if steps_left <= 0 or not sim.on_road:
                # (no draw without focus: the unfocused rounds' starts stay what they were)
                focused = focus > 0 and rng.random() < focus
                start = focus_start(circuit, rng) if focused else None
                sim.reset(
                    s=float(rng.uniform(0, circuit.length)) if start is None else start,
                    lateral=float(rng.uniform(-1.0, 1.0)),
                    yaw_offset=float(rng.uniform(-0.05, 0.05)),
                )
                expert.reset()
                light = Lighting.random(rng) if lighting else None
                steps_left = focus_steps if focused else episode_steps
            sim.frame(light, out=frame)
            images[n] = resize_frame(frame, preprocessing)
            labels[n] = expert.command(sim.state)
            sim.step(*policy(images[n]))
            steps_left -= 1
            n += 1
    return Frames(images, labels, tuple(f'on-policy:{c.name}' for c in circuits))
