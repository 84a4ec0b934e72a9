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
Keep TensorFlow's native start-up noise off the user's terminal.

``import tensorflow`` on a machine without a GPU writes, from C++ and before any logging
setting applies (``TF_CPP_MIN_LOG_LEVEL`` does not stop them): ``All log messages before
absl::InitializeLog() ...``, ``Could not find cuda drivers ...``, ``oneDNN custom operations are
on ...`` and, at the first model, ``failed call to cuInit: ... (303)``. None of it is about the
user's command.

:func:`filter_native_stderr` points file descriptor 2 at a pipe whose reader thread passes on
every line but those (matched narrowly, by their source files and texts, :data:`NOISE`); Python's
own ``sys.stderr`` (errors, warnings, progress bars) is moved to a copy of the real stderr first,
so it never goes through the filter. The CLI (every ``pilotnet`` command) and every node's main
call it first. ``PILOTNET_TF_NOISE=1`` leaves stderr alone.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

__all__ = ['NOISE', 'filter_native_stderr', 'is_noise']

#: Lines of TensorFlow's (absl's) native start-up and CUDA probing output, dropped.
NOISE = re.compile(
    r'All log messages before absl::InitializeLog\(\) is called are written to STDERR'
    r'|^[IWE]\d{4} [\d:. ]+\d+ (cudart_stub|cuda_platform|cuda_executor|cuda_diagnostics|'
    r'cuda_dnn|cuda_fft|cuda_blas|port|cpu_feature_guard|gpu_device|computation_placer)\.cc:\d+\]'
    r'|failed call to cuInit'
)
_installed = False


def is_noise(line: str) -> bool:
    """Return whether a line of native stderr is TensorFlow start-up noise."""
    return NOISE.search(line) is not None


def filter_native_stderr() -> bool:
    """
    Filter TensorFlow's native noise out of this process's stderr (see the module documentation).

    Once per process; a no-op with ``PILOTNET_TF_NOISE=1`` or where stderr has no file descriptor.

    :returns: whether the filter is in place.
    """
    global _installed
    if _installed:
        return True
    if os.environ.get('PILOTNET_TF_NOISE', '').strip() == '1':
        return False
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, AttributeError, ValueError):
        return False
    read_end, write_end = os.pipe()
    # Python's own writes go straight to the real stderr, never through the filter.
    sys.stderr = open(real, 'w', buffering=1, encoding=getattr(sys.stderr, 'encoding', None),
                      errors='backslashreplace', closefd=False)
    os.dup2(write_end, 2)
    os.close(write_end)
    thread = threading.Thread(target=_forward, args=(read_end, real), name='stderr-filter',
                              daemon=True)
    thread.start()

    def _close() -> None:
        # Let the last native lines through before the process ends.
        try:
            os.dup2(real, 2)
        except OSError:
            return
        thread.join(timeout=0.5)

    atexit.register(_close)
    _installed = True
    return True


def _forward(read_end: int, real: int) -> None:
    with open(read_end, 'rb', buffering=0) as pipe:
        pending = b''
        while True:
            chunk = pipe.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b'\n')
            out = b''.join(
                line + b'\n' for line in lines
                if not is_noise(line.decode('utf-8', 'replace'))
            )
            if out:
                os.write(real, out)
        if pending and not is_noise(pending.decode('utf-8', 'replace')):
            os.write(real, pending)
