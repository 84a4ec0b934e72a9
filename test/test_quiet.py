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

"""TensorFlow's native start-up noise is filtered from stderr; everything else passes."""

from __future__ import annotations

import subprocess
import sys

from pilotnet_optimized.quiet import is_noise

NOISE_LINES = (
    'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR',
    'I0000 00:00:1796242924.932855   14949 cudart_stub.cc:31] Could not find cuda drivers on your'
    ' machine, GPU will not be used.',
    'E0000 00:00:1796242928.413169   14949 cuda_platform.cc:52] failed call to cuInit: INTERNAL:'
    ' CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)',
    'I0000 00:00:1796242924.932518   14949 port.cc:153] oneDNN custom operations are on.',
)


def test_noise_lines_are_recognised_and_others_are_not():
    assert all(is_noise(line) for line in NOISE_LINES)
    for line in ('pilotnet optimize: error: x.keras: model not found',
                 'Traceback (most recent call last):',
                 'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.',
                 'E0000 00:00:1.0 1 my_node.cc:3] a real error'):
        assert not is_noise(line)


NOISE = ''.join(line + '\n' for line in NOISE_LINES).encode()


def test_a_process_keeps_its_own_stderr_and_loses_only_the_noise():
    code = (
        'import os, sys\n'
        'from pilotnet_optimized.quiet import filter_native_stderr\n'
        'assert filter_native_stderr()\n'
        f'os.write(2, {NOISE!r})\n'
        "os.write(2, b'native line kept\\n')\n"
        "print('python line kept', file=sys.stderr)\n"
        "raise SystemExit('exit message kept')\n"
    )
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert 'native line kept' in lines and 'python line kept' in lines
    assert 'exit message kept' in lines
    assert not any(is_noise(line) for line in lines), lines
