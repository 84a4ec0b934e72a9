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
How every node of the suite starts, spins and stops.

One place for the signal handling that the car's safety depends on.
"""

from __future__ import annotations

from collections.abc import Callable
import gc
import signal
import sys
import threading
import time
from typing import Any, TypeVar

from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.nodes.memory import keep_heap
from pilotnet_optimized.quiet import filter_native_stderr
import rclpy
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

__all__ = ['STARTUP_ERRORS', 'spin_node', 'drain_node']

# What a bad model, circuit or parameter raises while a node is built: one line and exit code 2, no
# traceback.
STARTUP_ERRORS = (PilotnetError, ParameterException, NameValidationException)

NodeT = TypeVar('NodeT', bound=Node)
_stop = threading.Event()


def _request_stop(signum: int, frame: object) -> None:
    # Only a flag. Raising KeyboardInterrupt from here (Python's default) can land inside rclpy's
    # C++ message conversion, which then surfaces as a RuntimeError instead, and the node dies
    # without its final words.
    _stop.set()


def spin_node(executable: str, make_node: Callable[[], NodeT], args: list[str] | None = None,
              finished: Callable[[NodeT], bool] = lambda node: False,
              on_finished: Callable[[NodeT], int] = lambda node: 0,
              on_stop: Callable[[NodeT], None] | None = None) -> int:
    """
    Build a node and spin it until SIGINT/SIGTERM or until ``finished(node)``.

    :param executable: name for the one-line startup error.
    :param on_finished: run when the node finished by itself; its result is the exit code.
    :param on_stop: run last while the context is still up, whatever ended the spin (the final zero
        Twist).
    :returns: 0 after a signal, ``on_finished``'s code, or 2 when the node cannot start.
    """
    # Camera frames reuse heap memory instead of fresh pages per message (the camera hop: .memory).
    keep_heap()
    if args is None:
        # A node's own process (not a test): a Keras model's TensorFlow start-up noise stays off.
        filter_native_stderr()
    # rclpy's own SIGINT handler would shut the context down before a final message can go out
    # (rclpy#1287).
    # What SIGKILLed nodes left in /dev/shm (only files no living process holds).
    from pilotnet_optimized.nodes.process import clean_dead_shm
    cleaned = clean_dead_shm()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    # SIGTERM too: launch and the runner send it when SIGINT was not enough, and a service manager
    # sends only it.
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        node = make_node()
    except STARTUP_ERRORS as err:
        print(f'{executable}: error: {err}', file=sys.stderr, flush=True)
        # The half-made node (its publishers, its DDS participant) is held by the traceback's
        # frames: let it go while the context is alive. Left to the interpreter's exit, after the
        # shutdown, it crashed the process now and then (SIGSEGV instead of exit 2, under load).
        err.__traceback__ = None
        del err
        gc.collect()
        rclpy.try_shutdown()
        return 2
    if cleaned:
        node.get_logger().info(f'removed the shared memory of {len(cleaned)} dead Fast DDS '
                               'participant file(s) in /dev/shm')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    code = 0
    try:
        # The nodes' timers wake the executor at least every 0.1 s, so a stop request is seen
        # within that.
        while rclpy.ok() and not finished(node) and not _stop.is_set():
            executor.spin_once(timeout_sec=0.1)
        if finished(node):
            code = on_finished(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # Nothing may cut the last message short now.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if on_stop is not None and rclpy.ok():
            on_stop(node)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


def drain_node(node: Any, seconds: float = 0.5, idle_s: float = 0.1) -> None:
    """
    Run the callbacks of messages that have arrived but not been taken yet.

    On the node's executor: at most ``seconds``, and stop once nothing came for ``idle_s`` (a
    node's last words before it stops: the end event that arrived with the SIGINT, the last frames
    for a bag).
    """
    executor = getattr(node, 'executor', None)
    if executor is None:
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.monotonic()
        executor.spin_once(timeout_sec=idle_s)
        if time.monotonic() - start >= idle_s * 0.9:
            return   # nothing was waiting
