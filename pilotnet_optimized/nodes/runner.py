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
- any other node exits: the simulator, if it runs, gets :data:`END_GRACE_S` seconds to notice and
  end the run itself (``brain_lost``, ``observer_lost``: the report then names the cause), then the
  rest are stopped; exit code the node's (128 + N when signal N killed it), or 1 if it exited 0;
- Ctrl-C or SIGTERM: every node is stopped; exit code 0 when all stop cleanly.

At the end the runner adds each node's process state (``running``, ``exited``, ``killed``, how, and
whether the runner stopped it) to ``metrics.json`` under ``nodes``, with the cause when a node
died, and writes a minimal report if the metrics node could not (see
:func:`~pilotnet_optimized.laps.report.complete_report`).

Stopping is :func:`~.process.stop_processes` in reverse start order (the brain before the
simulator, so its final zero command reaches the car): SIGINT, a wait of ``--stop-timeout``
seconds, then SIGTERM, and SIGKILL for anything still running after two more seconds. Each node
runs in its own process group (:class:`~.process.NodeProcess`), so a terminal's Ctrl-C reaches it
once, from here.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
from pathlib import Path
import re
import shlex
import signal
import sys
import threading
import time
from typing import Any, IO

from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.laps.report import complete_report
from pilotnet_optimized.nodes.graph import (ARGUMENTS, describe_graph, NodeSpec, output_dir_of,
                                            parse_arguments)
from pilotnet_optimized.nodes.process import (describe_exit, exit_status, NodeProcess,
                                              stop_processes)
from pilotnet_optimized.store import DEFAULT_MODELS_DIR, resolve_model

__all__ = ['EXAMPLE', 'add_arguments', 'run', 'parse_assignments', 'GraphRunner', 'main']

# a node that imports TensorFlow (.keras models) takes ~10 s on a loaded machine
NODE_UP_TIMEOUT_S = 30.0
#: Seconds the simulator gets to end the run itself after another node died (it notices a lost
#: brain within brain_timeout, a lost observer within observer_timeout).
END_GRACE_S = 20.0
# The simulator's last log line of a run: 'run ended: <reason>; <the end event as JSON>'.
_END_LINE = re.compile(r'run ended: \w+; (\{.*\})\s*$')
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
    if graph_args.gazebo_launch:
        raise PilotnetError(
            'gazebo_launch:= needs ros2 launch (pilotnet run cannot include a launch file): start'
            ' Gazebo first, or use ros2 launch pilotnet_optimized sim.launch.py gazebo_launch:=...'
        )
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
        #: The simulator's end event, read from its log line.
        self.end_event: dict[str, Any] | None = None
        self._stopped_by_us: set[str] = set()
        self._died: dict[str, int] = {}

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
        grace_until: float | None = None
        while code is None:
            if self._stop.wait(0.1):
                self.say('runner', 'stopping every node')
                code = 0
                break
            # Deaths first: a simulator that ended the run because of one exits at the same time.
            for spec in sorted(self.specs, key=lambda s: s.ends_run):
                proc = self.procs.get(spec.name)
                rc = proc.poll() if proc is not None else None
                if rc is None or spec.name in self._died:
                    continue
                if spec.ends_run:
                    self.say('runner',
                             f'{spec.name} ended the run ({describe_exit(rc)}): stopping the rest')
                    if rc not in (0, *spec.end_codes) or (rc == 0 and self.end_event is None):
                        self._died[spec.name] = rc   # killed, or stopped before its run ended
                    code = exit_status(rc) if not self._died else self._failure_code()
                    if rc == 0 and spec.name in self._died:
                        code = 1
                    break
                self._died[spec.name] = rc
                ender = self._running_ender()
                if ender is None:
                    self.say('runner', f'{spec.name} exited ({describe_exit(rc)}): stopping the '
                                       'graph')
                    code = self._failure_code()
                    break
                self.say('runner', f'{spec.name} exited ({describe_exit(rc)}): waiting up to '
                                   f'{END_GRACE_S:g} s for {ender} to end the run')
                grace_until = time.monotonic() + END_GRACE_S
            if code is None and grace_until is not None and time.monotonic() > grace_until:
                self.say('runner', 'the run did not end by itself: stopping the graph')
                code = self._failure_code()
        failed = self._stop_all()
        if code == 0 and failed:
            code = 1
        outputs = output_dir_of(self.specs)
        if outputs and Path(outputs).is_dir():
            self._complete_report(Path(outputs))
        else:
            outputs = None
        self.say(
            'runner', f'done (exit code {code})' + (f'; outputs in {outputs}' if outputs else '')
        )
        return code

    def _running_ender(self) -> str | None:
        for spec in self.specs:
            proc = self.procs.get(spec.name)
            if spec.ends_run and proc is not None and proc.poll() is None:
                return spec.name
        return None

    def _failure_code(self) -> int:
        """Return the exit code for a node that died: its own (128 + N for signal N), else 1."""
        rc = next(iter(self._died.values()), 1)
        return exit_status(rc) if rc != 0 else 1

    def node_states(self) -> dict[str, dict[str, Any]]:
        """Return each started node's process state, as the report's ``nodes`` keeps it."""
        states: dict[str, dict[str, Any]] = {}
        for name, proc in self.procs.items():
            rc = proc.poll()
            state: dict[str, Any] = {'pid': proc.pid, 'exit_code': rc,
                                     'stopped_by_runner': name in self._stopped_by_us}
            if rc is None:
                state['state'] = 'running'
            else:
                state['state'] = 'killed' if rc < 0 else 'exited'
                state['how'] = describe_exit(rc)
                if name in self._died:
                    state['died_during_run'] = True
            last = next((line.strip() for line in reversed(proc.lines) if line.strip()), '')
            state['last_line'] = last[-300:]
            states[name] = state
        return states

    def _complete_report(self, folder: Path) -> None:
        cause = None
        if self._died:
            cause = '; '.join(f'{name} {describe_exit(rc)} during the run'
                              for name, rc in self._died.items())
        try:
            complete_report(folder, self.node_states(), cause, self.end_event)
        except OSError as err:
            self.say('runner', f'cannot add the node states to the report in {folder}: {err}')

    def _start(self, spec: NodeSpec) -> None:
        up = self._up[spec.name] = threading.Event()
        logger_tag = f'[{spec.name}]:'  # rclpy's console format: [LEVEL] [time] [logger]: message

        def relay(line: str) -> None:
            if logger_tag in line:
                up.set()
            if spec.ends_run and 'run ended: ' in line:
                match = _END_LINE.search(line)
                if match:
                    try:
                        self.end_event = json.loads(match.group(1))
                    except ValueError:
                        pass
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
        self._stopped_by_us.update(p.name for p in running)
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
                self.say('runner', f'{proc.name} stopped with {describe_exit(rc)}')
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
