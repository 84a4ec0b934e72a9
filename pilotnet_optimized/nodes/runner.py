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
``pilotnet run``: start the graph of :mod:`.graph` as subprocesses.

It is for where ``ros2 launch`` is not available.

``pilotnet run model:=drq circuit:=simple laps:=1`` takes the launch file's arguments
(``name:=value``), asks :func:`~.graph.describe_graph` for the nodes, and starts each as
``python -m <module> --ros-args`` followed by ``-r __node:=<name> --params-file
config/<name>.yaml -p key:=value ...``, with the graph's environment (the Fast DDS large-data
transport): the same executables, parameters and environment as ``ros2 launch pilotnet_optimized
sim.launch.py``. Each node's output is streamed with a ``[name]`` prefix.

The run ends when:

- a node marked ``ends_run`` exits (the simulator, when its run is over): the rest are stopped and
  ``pilotnet run`` exits with its code (0: laps done, 3: the run ended early);
- any other node exits: the rest are stopped; exit code the node's, or 1 if it exited 0;
- Ctrl-C or SIGTERM: every node is stopped; exit code 0 when all stop cleanly.

Stopping is :func:`~.process.stop_processes` in reverse start order (the brain before the
simulator, so its final zero command reaches the car): SIGINT, a wait of ``--stop-timeout``
seconds, then SIGTERM, and SIGKILL for anything still running after two more seconds. Each node
runs in its own process group (:class:`~.process.NodeProcess`), so a terminal's Ctrl-C reaches it
once, from here.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import shlex
import signal
import sys
import threading
import time
from typing import IO

from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.nodes.graph import (ARGUMENTS, describe_graph, NodeSpec, output_dir_of,
                                            parse_arguments)
from pilotnet_optimized.nodes.process import NodeProcess, stop_processes
from pilotnet_optimized.store import DEFAULT_MODELS_DIR, resolve_model

__all__ = ['EXAMPLE', 'add_arguments', 'run', 'parse_assignments', 'GraphRunner', 'main']

# a node that imports TensorFlow (.keras models) takes ~10 s on a loaded machine
NODE_UP_TIMEOUT_S = 30.0
EXAMPLE = f'pilotnet run model:={DEFAULT_MODELS_DIR}/drq.tflite circuit:=simple laps:=1'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    Add the ``pilotnet run`` arguments.

    ``NAME:=VALUE`` assignments (the launch file's), ``--dry-run``, ``--stop-timeout``.
    """
    lines = [
        f"  {a.name}:={'<required>' if a.required else a.default}  {a.description}"
        for a in ARGUMENTS.values()
    ]
    parser.add_argument(
        'assignments',
        nargs='*',
        metavar='NAME:=VALUE',
        help='launch arguments, as for ros2 launch pilotnet_optimized sim.launch.py:\n'
        + '\n'.join(lines),
    )
    parser.add_argument(
        '--dry-run', action='store_true', help="print each node's command line and exit"
    )
    parser.add_argument(
        '--stop-timeout',
        type=float,
        default=5.0,
        metavar='S',
        help='seconds a node gets to stop after SIGINT before SIGTERM (default: 5)',
    )


def parse_assignments(items: Sequence[str]) -> dict[str, str]:
    """
    Parse ``name:=value`` items.

    ``['model:=drq', 'laps:=2']`` -> ``{'model': 'drq', 'laps': '2'}``.

    :raises PilotnetError: for an item without ``:=`` or an empty name.
    """
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(':=')
        if not sep or not name.strip():
            raise PilotnetError(
                f"expected NAME:=VALUE (as in ros2 launch), got '{item}'; e.g. {EXAMPLE}"
            )
        values[name.strip()] = value
    return values


def run(args: argparse.Namespace) -> int:
    """
    Run the graph the assignments describe; see the module documentation for the exit codes.

    :raises PilotnetError: for bad arguments or a model that cannot be found (before anything
        starts).
    """
    values = parse_assignments(args.assignments)
    graph_args = parse_arguments(values)
    # fail here with one line, not in a node's log
    resolve_model(graph_args.model, graph_args.models_dir)
    specs = describe_graph(values)
    if args.dry_run:
        for spec in specs:
            words = [f'{k}={v}' for k, v in spec.env.items()] + spec.command(sys.executable)
            print(f'{spec.name}: {shlex.join(words)}')
        return 0
    return GraphRunner(specs, stop_timeout=args.stop_timeout).run()


class GraphRunner:
    """
    Start nodes as subprocesses, relay their output, and stop them all together.

    :param specs: the nodes, in start order.
    :param python: interpreter that runs ``python -m <module>`` (default: this one, so the same
        venv).
    :param stop_timeout: seconds between SIGINT and SIGTERM when stopping.
    :param out: where the prefixed output goes.
    """

    def __init__(
        self,
        specs: Sequence[NodeSpec],
        python: str = sys.executable,
        stop_timeout: float = 5.0,
        out: IO[str] | None = None,
    ) -> None:
        self.specs = list(specs)
        self.python = python
        self.stop_timeout = stop_timeout
        self.out = out or sys.stdout
        self.procs: dict[str, NodeProcess] = {}
        self._print_lock = threading.Lock()
        self._stop = threading.Event()
        self._up: dict[str, threading.Event] = {}

    def say(self, name: str, text: str) -> None:
        with self._print_lock:
            self.out.write(f'[{name}] {text.rstrip()}\n')
            self.out.flush()

    def request_stop(self, *_: object) -> None:
        """Ask the run to stop (signal handler; also callable from another thread)."""
        self._stop.set()

    def run(self) -> int:
        """Start every node, wait for the end of the run, stop the rest; return the exit code."""
        in_main = threading.current_thread() is threading.main_thread()
        old = (
            {s: signal.signal(s, self.request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
            if in_main
            else {}
        )
        try:
            code = self._run()
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
        for proc in self.procs.values():
            proc.join_output()
        return code

    def _run(self) -> int:
        for spec in self.specs:
            if self._stop.is_set():
                break
            self._start(spec)
            self._wait_until_up(spec.name)
        code: int | None = None
        while code is None:
            if self._stop.wait(0.1):
                self.say('runner', 'stopping every node')
                code = 0
                break
            for spec in self.specs:
                proc = self.procs.get(spec.name)
                rc = proc.poll() if proc is not None else None
                if rc is None:
                    continue
                if spec.ends_run:
                    self.say(
                        'runner', f'{spec.name} ended the run (exit code {rc}): stopping the rest'
                    )
                    code = rc
                else:
                    self.say('runner', f'{spec.name} exited (code {rc}): stopping the graph')
                    code = rc if rc != 0 else 1
                break
        failed = self._stop_all()
        if code == 0 and failed:
            code = 1
        outputs = output_dir_of(self.specs)
        self.say(
            'runner', f'done (exit code {code})' + (f'; outputs in {outputs}' if outputs else '')
        )
        return code

    def _start(self, spec: NodeSpec) -> None:
        up = self._up[spec.name] = threading.Event()
        logger_tag = f'[{spec.name}]:'  # rclpy's console format: [LEVEL] [time] [logger]: message

        def relay(line: str) -> None:
            if logger_tag in line:
                up.set()
            self.say(spec.name, line)

        proc = NodeProcess(spec, self.python, on_line=relay)
        self.procs[spec.name] = proc
        self.say('runner', f'started {spec.name} (pid {proc.pid}): {shlex.join(proc.command)}')

    def _wait_until_up(self, name: str) -> None:
        """
        Wait until the node has logged its first line or exited.

        Its DDS participant exists by the time it logs.

        One node at a time, each then discovers the others already there: with Fast DDS's
        LARGE_DATA transports, two participants created at the same instant now and then never
        discovered each other (seen here: a simulator and an inference node started together waited
        for each other for minutes, while a third participant saw both). The graph now uses a
        shared-memory profile; starting in order costs under a second per node and keeps discovery
        simple whatever the transport.
        """
        deadline = time.monotonic() + NODE_UP_TIMEOUT_S
        while not self._up[name].wait(0.05):
            if self._stop.is_set() or self.procs[name].poll() is not None:
                return
            if time.monotonic() > deadline:
                self.say(
                    'runner',
                    f'{name} has not logged anything after {NODE_UP_TIMEOUT_S:g} s: starting the '
                    'next node anyway',
                )
                return

    def _stop_all(self) -> list[str]:
        """
        Stop every node still running, in reverse start order.

        Returns the nodes that did not stop cleanly: a non-zero exit after our SIGINT, or one that
        needed SIGKILL.
        """
        running = [p for p in reversed(list(self.procs.values())) if p.poll() is None]
        killed = stop_processes(
            running, self.stop_timeout, say=lambda text: self.say('runner', text)
        )
        failed = [p.name for p in killed]
        end_codes = {spec.name: spec.end_codes for spec in self.specs}
        for proc in running:
            rc = proc.poll()
            # A simulator may end its run (code 3: ended early) just as we stop it: that is a
            # result, not a failure.
            if rc != 0 and rc not in end_codes.get(proc.name, ()) and proc.name not in failed:
                self.say('runner', f'{proc.name} stopped with exit code {rc}')
                failed.append(proc.name)
        return failed


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run ``python -m pilotnet_optimized.nodes.runner model:=... circuit:=...``.

    This is what ``pilotnet run`` calls.
    """
    parser = argparse.ArgumentParser(
        prog='pilotnet run',
        description='Start the node graph (simulator and inference node) without ros2 launch.',
        epilog=f'example:\n  {EXAMPLE}',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except PilotnetError as err:
        print(f'pilotnet run: error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
