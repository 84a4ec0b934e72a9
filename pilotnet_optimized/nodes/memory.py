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
Keep camera-frame-sized memory in the process instead of handing it back to the kernel.

Every 640x480 rgb8 message is about 900 KB, and each one passes through several fresh buffers on
its way to a callback: Fast DDS's reader copy of the payload, the C message rmw deserialises it
into, the ``array.array`` rclpy builds for ``Image.data`` (and, on the writer side, the serialised
bytes). glibc's malloc serves blocks that large with ``mmap`` and returns them with ``munmap`` (or
trims the heap top above 128 KB free), so each frame pays for new pages: system calls and about
220 page faults, a millisecond or more per message here. With the mmap threshold above any frame
and the trim threshold above a few frames, freed frame buffers stay in the heap and the next frame
reuses them.

:func:`keep_heap` sets both through ``mallopt`` (ctypes) in the running process: every node's main
(:func:`~.spin.spin_node`) calls it first, so ``ros2 run``, the launch file and ``pilotnet run``
all get it without any environment. :data:`MALLOC_ENV` is the same setting as glibc's environment
variables, for processes this project does not start in Python (a user's C++ camera driver).

No ROS import here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ['MMAP_THRESHOLD', 'TRIM_THRESHOLD', 'MALLOC_ENV', 'keep_heap']

#: Blocks up to this size come from the heap, not ``mmap`` (16 MiB: far above a 1920x1080 rgb8
#: frame; glibc refuses more than 32 MiB, half its largest thread-arena heap, on 64-bit builds).
MMAP_THRESHOLD = 16 * 2**20
#: Free memory at the heap top kept up to this size before it is trimmed back to the kernel.
TRIM_THRESHOLD = 256 * 2**20
#: The same as glibc environment variables (read once, at process start).
MALLOC_ENV = {
    'MALLOC_MMAP_THRESHOLD_': str(MMAP_THRESHOLD),
    'MALLOC_TRIM_THRESHOLD_': str(TRIM_THRESHOLD),
}
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: ``PILOTNET_KEEP_HEAP=0`` turns :func:`keep_heap` off (to measure what it is worth).
DISABLE_VAR = 'PILOTNET_KEEP_HEAP'


def keep_heap() -> bool:
    """
    Tell glibc's malloc to keep frame-sized blocks in the heap (see the module documentation).

    A no-op where the C library is not glibc (musl, macOS) or ``PILOTNET_KEEP_HEAP=0``.

    :returns: whether both settings were applied.
    """
    if os.environ.get(DISABLE_VAR, '1').strip() == '0':
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
