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
Start the ROS 1 half (:mod:`.relay` in the system Python) and talk to it: for the bridge and car.

Imports neither rclpy nor rospy: the bridge node (rclpy) and the ROS 1 car (no ROS at all in its
own process) both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import os
from pathlib import Path
import socket
import subprocess

from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.nodes.ros1.wire import Channel, ClosedError

__all__ = ['RELAY', 'ROS1_PYTHON', 'RelayProcess', 'ros1_env', 'start_relay']

RELAY = Path(__file__).resolve().parent / 'relay.py'
ROS1_PYTHON = '/usr/bin/python3'
#: What a virtual environment sets that would make the system Python load the venv's packages.
_VENV_VARS = ('PYTHONPATH', 'PYTHONHOME', 'LD_LIBRARY_PATH', 'VIRTUAL_ENV')


def ros1_env(env: Mapping[str, str], **extra: str) -> dict[str, str]:
    """Return ``env`` without the variables that point a Python at this venv, plus ``extra``."""
    out = {k: v for k, v in env.items() if k not in _VENV_VARS}
    out.update(extra)
    return out


@dataclass
class RelayProcess:
    """A running ROS 1 half: its process, the socket to it and the master it registered with."""

    proc: subprocess.Popen
    channel: Channel
    master: str
    node: str

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the relay to exit (its node leaves the master), then close the socket."""
        try:
            self.channel.send({'op': 'shutdown'})
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.channel.close()


def start_relay(python: str, name: str) -> RelayProcess:
    """
    Start :mod:`.relay` in ``python`` as the ROS 1 node ``name`` and wait for its ``ready``.

    :raises PilotnetError: one line: the Python cannot run, has no rospy, or no master answers
        at ``ROS_MASTER_URI``.
    """
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(
            [python, str(RELAY), '--fd', str(theirs.fileno()), '--name', name],
            pass_fds=(theirs.fileno(),), env=ros1_env(os.environ), stdin=subprocess.DEVNULL,
            start_new_session=True)
    except OSError as err:
        ours.close()
        raise PilotnetError(f'cannot start the ROS 1 half with {python}: {err}') from None
    finally:
        theirs.close()
    channel = Channel(ours)
    try:
        header, _ = channel.recv()
    except ClosedError:
        proc.wait()
        channel.close()
        raise PilotnetError(
            f'the ROS 1 half ({python} {RELAY.name}) exited with code {proc.returncode}'
        ) from None
    if header.get('op') == 'error':
        proc.wait()
        channel.close()
        raise PilotnetError(header['message'])
    return RelayProcess(proc, channel, header.get('master', ''), header.get('node', name))
