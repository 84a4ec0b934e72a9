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
The DDS side of the graph.

Which Fast DDS transport its nodes use, where the package's ``config/`` is, and a free ROS domain
for private graphs (benchmarks, tests).

No ROS import here (the launch file's tests and the runner's argument parsing must work without
rclpy).
"""

from __future__ import annotations

from collections.abc import MutableMapping
import os
from pathlib import Path
import random
import re
import sys
import time

from pilotnet_optimized.errors import PilotnetError

__all__ = [
    'PACKAGE',
    'DDS_VARS',
    'BUILTIN_TRANSPORTS_VAR',
    'PROJECT_TRANSPORT',
    'dds_env',
    'graph_env',
    'apply_env',
    'free_ros_domain',
    'config_dir',
]

#: The ROS package name: the ament index key of the installed share folder, and the launch file's
#: package.
PACKAGE = 'pilotnet_optimized'

#: Fast DDS's builtin transport mode variable (``LARGE_DATA``, ``SHM``, ``UDPv4``...).
BUILTIN_TRANSPORTS_VAR = 'FASTDDS_BUILTIN_TRANSPORTS'
#: The environment variables that choose Fast DDS's transports: a builtin mode, or an XML profile
#: (Fast DDS 3 reads the first profile variable, Fast DDS 2 / Humble the second). If a user sets
#: any of them, theirs win, all of them.
DDS_VARS = (
    BUILTIN_TRANSPORTS_VAR,
    'FASTDDS_DEFAULT_PROFILES_FILE',
    'FASTRTPS_DEFAULT_PROFILES_FILE',
)
#: The transport setting of the nodes this project starts: ``config/fastdds_shm.xml``, shared
#: memory with segments that hold whole camera frames, and UDP for discovery. Fast DDS's default
#: shared-memory segment (512 KB) is smaller than one 640x480 frame (fragmented, and best effort
#: loses many); the LARGE_DATA builtin mode (TCP and shared memory) is as fast, but two of its
#: participants now and then never matched (2 pairs in 108 here, none in 40 with the profile),
#: which left a simulator waiting for a brain that was running.
PROJECT_TRANSPORT = 'SHM_LARGE'


def config_dir() -> Path:
    """
    Return the ``config/`` folder of the package in use.

    The ament share folder of a colcon install (or a sourced distro install), else the source
    tree's (a checkout, editable installs), else the one ``pip install .`` put in
    ``<prefix>/share/pilotnet_optimized``.

    The ament index comes first: a workspace that is sourced is the one the user means, and a stale
    ``pip install`` in the interpreter's prefix must not shadow it.

    :raises PilotnetError: when none of them has the folder.
    """
    candidates: list[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
    except ImportError:
        pass
    else:
        try:
            candidates.append(Path(get_package_share_directory(PACKAGE)) / 'config')
        except (PackageNotFoundError, OSError, ValueError):
            pass   # not in the index, or no AMENT_PREFIX_PATH at all (OSError): nothing sourced
    candidates += [
        Path(__file__).resolve().parents[2] / 'config',
        Path(sys.prefix) / 'share' / PACKAGE / 'config',
    ]
    for here in candidates:
        if here.is_dir():
            return here
    raise PilotnetError(
        f'cannot find the config folder of {PACKAGE} (not in the source tree, and the package is'
        ' not installed in an ament prefix: source install/setup.bash)'
    )


def dds_env(transport: str = PROJECT_TRANSPORT) -> dict[str, str | None]:
    """
    Return the :data:`DDS_VARS` for a transport setting (``None``: unset).

    ``'SHM_LARGE'`` (the project's profile), ``'DEFAULT'`` (Fast DDS's own default), or a
    ``FASTDDS_BUILTIN_TRANSPORTS`` mode (``'LARGE_DATA'``, ``'SHM'``, ``'UDPv4'``...).
    """
    unset: dict[str, str | None] = dict.fromkeys(DDS_VARS)
    if transport == 'DEFAULT':
        return unset
    if transport == PROJECT_TRANSPORT:
        profile = str(config_dir() / 'fastdds_shm.xml')
        # Fast DDS 3 (Jazzy, Kilted) reads this one; Humble's Fast DDS 2 reads
        # FASTRTPS_DEFAULT_PROFILES_FILE, which Kilted's rmw warns about on every start: Humble
        # users set that one to the same file (README).
        return {**unset, 'FASTDDS_DEFAULT_PROFILES_FILE': profile}
    return {**unset, BUILTIN_TRANSPORTS_VAR: transport}


def graph_env() -> dict[str, str]:
    """
    Return the environment every node of the graph gets.

    A node gets it unless the user has a DDS setting of their own.
    """
    return {k: v for k, v in dds_env().items() if v is not None}


def apply_env(environ: MutableMapping[str, str], values: dict[str, str | None]) -> None:
    """
    Set ``values`` in ``environ`` (``os.environ`` or a copy of it).

    A ``None`` value unsets its variable.
    """
    for key, value in values.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value


def free_ros_domain() -> int:
    """
    Return a random ROS domain that no Fast DDS shared-memory port file in /dev/shm belongs to.

    The domain is in 1..101, the range whose ports are safe on Linux. A process killed on a domain
    leaves its ports behind, and their ghost slows down or blocks discovery there for seconds (seen
    here). For private graphs: benchmarks and tests.

    ``PILOTNET_ROS_DOMAIN`` forces one (to rerun a failure on the domain it happened on).
    """
    if os.environ.get('PILOTNET_ROS_DOMAIN'):
        return int(os.environ['PILOTNET_ROS_DOMAIN'])
    used = set()
    for path in Path('/dev/shm').glob('fastdds_port*'):
        match = re.match(r'fastdds_port(\d+)', path.name)
        if match:
            # port = 7400 + 250 * domain + offset (< 250)
            used.add((int(match.group(1)) - 7400) // 250)
    free = [d for d in range(1, 102) if d not in used] or list(range(1, 102))
    return random.Random(os.getpid() ^ time.time_ns()).choice(free)
