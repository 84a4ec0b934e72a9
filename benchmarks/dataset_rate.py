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

``shipped``: the module as it is (ISA-L deflate of SUB-filtered rows, sim/png.py, on one encoder
thread per core; the road blended into the painted texture only in the tiles it touches);
``zlib-whole-blend``: what it did before (OpenCV's PNG writer, zlib level 1 with the SUB filter;
the road blended over the whole texture in float32). Both finish the frames' lens effects on the
encoder threads (sim/dataset.py).
Per circuit (``--circuits``: a training circuit gets randomised frames, a validation or test
circuit clean ones, as ``pilotnet dataset`` chooses), the variants alternated ``--rounds`` times;
each rate is the whole ``write_dataset`` call, painting the circuit included. Prints JSON (medians)
and a table.

Usage: .venv/bin/python benchmarks/dataset_rate.py [--frames 1000] [--rounds 3]
       [--circuits simple long_fast]
"""

import argparse
import json
import os
import tempfile
import time

import cv2
import numpy as np
from pilotnet_optimized.sim import camera, dataset, get_circuit
from pilotnet_optimized.sim.splits import split_of_circuit

OLD_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1,
                  cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


def _old_blend(image, asphalt, road):
    weight = road.astype(np.float32) * (1.0 / 255.0)
    image[:] = cv2.blendLinear(asphalt, image, weight, 1.0 - weight)


def _old_encode(rgb):
    ok, data = cv2.imencode('.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), OLD_PNG_PARAMS)
    return data.tobytes()


SHIPPED = (dataset._encode_frame, camera._blend_road)
VARIANTS = {'shipped': SHIPPED, 'zlib-whole-blend': (_old_encode, _old_blend)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--frames', type=int, default=1000)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--circuits', nargs='+', default=['simple', 'long_fast'])
    args = parser.parse_args()
    rates = {c: {k: [] for k in VARIANTS} for c in args.circuits}
    with tempfile.TemporaryDirectory() as tmp:
        dataset.write_dataset(get_circuit('simple'), 20, f'{tmp}/warm', seed=1, progress=False)
        for r in range(args.rounds):
            for name in args.circuits:
                circuit = get_circuit(name)
                for variant, (encode, blend) in VARIANTS.items():
                    dataset._encode_frame, camera._blend_road = encode, blend
                    t = time.perf_counter()
                    dataset.write_dataset(circuit, args.frames, f'{tmp}/{name}-{variant}{r}',
                                          seed=1, progress=False, overwrite=True)
                    rates[name][variant].append(args.frames / (time.perf_counter() - t))
                    dataset._encode_frame, camera._blend_road = SHIPPED
    result = {
        'benchmark': 'dataset_rate', 'frames': args.frames, 'rounds': args.rounds,
        'cores': len(os.sched_getaffinity(0)), 'encoder_threads': dataset.ENCODER_THREADS,
        'load_average': [round(x, 2) for x in os.getloadavg()],
        'frames_per_s_median': {c: {k: round(float(np.median(v)), 1) for k, v in per.items()}
                                for c, per in rates.items()},
    }
    print(json.dumps(result))
    print('| circuit | split | frames | ' + ' | '.join(f'{v} frames/s' for v in VARIANTS)
          + ' | shipped / before |')
    print('|---|---|---|' + '---|' * len(VARIANTS) + '---|')
    for name, per in result['frames_per_s_median'].items():
        ratio = per['shipped'] / per['zlib-whole-blend']
        print(f'| {name} | {split_of_circuit(name)} | {args.frames} | '
              + ' | '.join(str(per[v]) for v in VARIANTS) + f' | {ratio:.2f}x |')


if __name__ == '__main__':
    main()
