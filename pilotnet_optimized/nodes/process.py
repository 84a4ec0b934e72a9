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
A node of the graph as a process of its own.

Start it from its :class:`~.graph.NodeSpec`, follow its output, stop it. ``pilotnet run``
(:mod:`.runner`) and ``pilotnet bench-latency`` (:mod:`.bench_latency`) both start and stop their
nodes through here, so that a node is stopped the same way everywhere.

Each node runs in its own process group (a terminal's Ctrl-C reaches it once, from its starter, and
a signal reaches anything it started). Stopping is SIGINT (the node's own clean stop: a final zero
command, a closed bag, a written report), a wait, then SIGTERM, and SIGKILL for anything still
running :data:`KILL_AFTER_TERM_S` later.

A node that died leaves its Fast DDS shared-memory files in ``/dev/shm`` (an 8 MiB segment, a
port and their lock files): :func:`clean_dead_shm` removes those whose owner is gone, as ``fastdds
shm clean`` does, and every node start runs it (:func:`~.spin.spin_node`).

No ROS import here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import contextlib
import fcntl
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

from pilotnet_optimized.nodes.graph import NodeSpec

__all__ = ['KILL_AFTER_TERM_S', 'NodeProcess', 'stop_processes', 'describe_exit', 'exit_status',
           'clean_dead_shm', 'SHM_DIR']

#: Seconds between SIGTERM and SIGKILL.
KILL_AFTER_TERM_S = 2.0
#: Seconds to wait for a process after SIGKILL.
KILL_WAIT_S = 5.0
#: Where Fast DDS keeps its shared-memory segments and ports, and their name prefixes (Fast DDS 3,
#: Fast DDS 2 / Humble).
SHM_DIR = Path('/dev/shm')
SHM_PREFIXES = ('fastdds_', 'fastrtps_')
#: Lock files younger than this are left alone (their owner may be creating them right now).
SHM_MIN_AGE_S = 2.0


def exit_status(rc: int) -> int:
    """Return a child's exit code as a shell reports it (killed by signal N: 128 + N)."""
    return 128 - rc if rc < 0 else rc


def describe_exit(rc: int | None) -> str:
    """Say how a process ended: ``exit code 3``, ``killed by SIGKILL (exit status 137)``."""
    if rc is None:
        return 'still running'
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f'signal {-rc}'
        return f'killed by {name} (exit status {exit_status(rc)})'
    return f'exit code {rc}'


def clean_dead_shm(folder: Path = SHM_DIR, min_age_s: float = SHM_MIN_AGE_S) -> list[str]:
    """
    Remove the Fast DDS shared-memory files of participants that are gone.

    As ``fastdds shm clean``: each segment or port ``<name>`` has a lock file ``<name>_el`` that
    its living owner holds locked; one that can be locked now has no owner, so ``<name>``, its
    lock file and its ``sem.<name>_mutex`` go. Files of living processes (this machine's other
    graphs too) are never touched. Returns the names removed.
    """
    removed: list[str] = []
    try:
        locks = sorted(folder.glob('*_el'))
    except OSError:
        return removed
    now = time.time()
    for lock in locks:
        name = lock.name[:-len('_el')]
        if not name.startswith(SHM_PREFIXES):
            continue
        try:
            if now - lock.stat().st_mtime < min_age_s:
                continue
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue   # locked: its owner is alive
            for path in (folder / name, folder / f'sem.{name}_mutex', lock):
                with contextlib.suppress(OSError):
                    path.unlink()
            removed.append(name)
        finally:
            os.close(fd)
    return removed


class NodeProcess:
    """
    One node started as ``python -m <module> --ros-args ...``.

    Its output read line by line in the background.

    :param spec: the node.
    :param python: interpreter that runs it (default: this one, so the same venv).
    :param env: the environment to start from (default: this process's); the spec's
        :meth:`~.graph.NodeSpec. env_additions` are added to it, and ``PYTHONUNBUFFERED`` so that
        its prints arrive as they happen.
    :param on_line: called with each output line (stdout and stderr together), on the reader
        thread.
    """

    def __init__(
        self,
        spec: NodeSpec,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        base = dict(os.environ if env is None else env)
        self.spec = spec
        self.name = spec.name
        self.command = spec.command(python)
        full_env = {**base, **spec.env_additions(base), 'PYTHONUNBUFFERED': '1'}
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
            text=True,
            errors='replace',
        )
        self.lines: list[str] = []
        self._on_line = on_line
        self._reader = threading.Thread(target=self._read, name=f'out-{spec.name}', daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        """Return the exit code, or ``None`` while it runs."""
        return self.proc.poll()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip('\n'))
            if self._on_line is not None:
                self._on_line(line)

    def join_output(self, timeout: float = 2.0) -> None:
        """Wait (at most ``timeout``) until its output has been read to the end."""
        self._reader.join(timeout=timeout)

    def send(self, sig: int) -> None:
        """
        Send ``sig`` to its process group (the node and anything it started).

        Nothing if it is gone.
        """
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def error_line(self) -> str:
        """
        Return why the node stopped.

        Its one-line startup error (``<name>: error: ...``), else its last line, else the exit
        code.
        """
        self.join_output()
        prefix = f'{self.name}: error: '
        for line in reversed(self.lines):
            if line.startswith(prefix):
                return line[len(prefix):]
        last = next((line.strip() for line in reversed(self.lines) if line.strip()), '')
        return f'{self.name} exited with code {self.poll()}' + (f': {last}' if last else '')

    def stop(self, timeout: float = 5.0) -> int | None:
        """
        Stop it (see :func:`stop_processes`) and read its output to the end.

        Returns the exit code.
        """
        stop_processes([self], timeout)
        self.join_output()
        return self.poll()


def stop_processes(procs: Sequence[NodeProcess], timeout: float = 5.0,
                   say: Callable[[str], None] | None = None) -> list[NodeProcess]:
    """
    Stop ``procs`` together.

    SIGINT to each in the order given, a wait of ``timeout`` seconds for all, then SIGTERM to those
    still running, :data:`KILL_AFTER_TERM_S` seconds, then SIGKILL.

    :param say: told about each process that needed SIGTERM or SIGKILL.
    :returns: the processes that needed SIGKILL.
    """
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        proc.send(signal.SIGINT)
    _wait(running, timeout)
    killed: list[NodeProcess] = []
    for sig, wait_s in ((signal.SIGTERM, KILL_AFTER_TERM_S), (signal.SIGKILL, KILL_WAIT_S)):
        left = [p for p in running if p.poll() is None]
        for proc in left:
            if say is not None:
                say(f'{proc.name} still running: sending {signal.Signals(sig).name}')
            proc.send(sig)
            if sig == signal.SIGKILL:
                killed.append(proc)
        _wait(left, wait_s)
    return killed


def _wait(procs: Sequence[NodeProcess], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
