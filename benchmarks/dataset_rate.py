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
Frames per second of ``pilotnet dataset`` (sim/dataset.py write_dataset), variants in one run.

``shipped``: the module's settings (PNG level 1 with the SUB filter, one encoder thread per core);
``serial-adaptive``: what it did before (level 1, libpng's adaptive filters, one encoder thread).
Alternated, ``--rounds`` times; prints JSON (medians) and a line per variant.

Usage: .venv/bin/python benchmarks/dataset_rate.py [--frames 400] [--rounds 3]
"""

import argparse
import json
import os
import tempfile
import time

import cv2
import numpy as np
from pilotnet_optimized.sim import dataset
from pilotnet_optimized.sim import get_circuit

parser = argparse.ArgumentParser()
parser.add_argument('--frames', type=int, default=400)
parser.add_argument('--rounds', type=int, default=3)
args = parser.parse_args()
VARIANTS = {
    'shipped': (dataset.PNG_PARAMS, dataset.ENCODER_THREADS),
    'serial-adaptive': ([cv2.IMWRITE_PNG_COMPRESSION, 1], 1),
}
circuit = get_circuit('simple')
rates: dict[str, list[float]] = {k: [] for k in VARIANTS}
with tempfile.TemporaryDirectory() as tmp:
    dataset.write_dataset(circuit, 20, f'{tmp}/warm', seed=1, progress=False)
    for r in range(args.rounds):
        for name, (params, threads) in VARIANTS.items():
            dataset.PNG_PARAMS, dataset.ENCODER_THREADS = params, threads
            t = time.perf_counter()
            dataset.write_dataset(circuit, args.frames, f'{tmp}/{name}{r}', seed=1,
                                  progress=False)
            rates[name].append(args.frames / (time.perf_counter() - t))
result = {
    'benchmark': 'dataset_rate', 'frames': args.frames, 'rounds': args.rounds,
    'cores': len(os.sched_getaffinity(0)), 'load_average': [round(x, 2) for x in os.getloadavg()],
    'frames_per_s_median': {k: round(float(np.median(v)), 1) for k, v in rates.items()},
}
base = result['frames_per_s_median']['serial-adaptive']
print(json.dumps(result))
for name, fps in result['frames_per_s_median'].items():
    print(f'{name}: {fps} frames/s ({fps / base:.2f}x serial-adaptive)')
