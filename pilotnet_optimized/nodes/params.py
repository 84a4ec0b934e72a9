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
Node parameters as plain data, declared and checked in one place.

Each node lists its parameters as :class:`ParamSpec` rows (``PARAMETERS``);
:func:`declare_parameters` declares them with ROS descriptors (description, ranges, read-only,
which rclpy enforces) and enforces what descriptors cannot say, the allowed string values
(``choices``): a start value outside them stops the node with one clear line, a live one
(``ros2 param set``) is refused with the same text. The node's own reaction to a live change runs
after that check, so it only ever sees allowed values. :func:`param` reads a value.

The rclpy imports are inside the functions: the specs are read without ROS (``test/test_graph.py``
checks ``config/*.yaml`` against them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pilotnet_optimized.errors import PilotnetError

__all__ = ['ParamSpec', 'declare_parameters', 'param', 'choice_error']


@dataclass(frozen=True)
class ParamSpec:
    """
    One node parameter as plain data.

    Declared by :func:`declare_parameters`, checked against ``config/*.yaml``.

    :param choices: allowed string values (ROS descriptors have no such field:
        :func:`declare_parameters` checks them, at start and when set).
    :param int_range: ``(low, high)`` inclusive, enforced by rclpy.
    :param float_range: ``(low, high)`` inclusive, enforced by rclpy.
    :param read_only: fixed after start (topics and the simulated world: changing them live would
        mean rebuilding subscriptions or the run). Every other parameter takes effect when set.
    """

    name: str
    default: Any
    description: str
    choices: tuple[str, ...] | None = None
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    read_only: bool = False


def choice_error(spec: ParamSpec, value: Any) -> str | None:
    """
    Return why ``value`` is not allowed for ``spec``, or ``None``.

    The reason reads like ``"backend 'x': choose one of auto, litert, ..."``.
    """
    if spec.choices is None or value in spec.choices:
        return None
    return f"{spec.name} '{value}': choose one of {', '.join(spec.choices)}"


def declare_parameters(node: Any, specs: tuple[ParamSpec, ...],
                       on_set: Callable[[list[Any]], Any] | None = None) -> None:
    """
    Declare ``specs`` on an rclpy ``node`` with descriptors (description, ranges, read-only).

    Check the start values against their choices, and install the one on-set-parameters callback
    that refuses a value outside them.

    :param on_set: the node's own reaction to a change (rclpy's on-set-parameters signature: a list
        of ``Parameter``, returning ``SetParametersResult``), called only when every value is
        allowed. Give it here rather than with ``add_on_set_parameters_callback``: rclpy calls the
        callback added last first, so one added later would see a value before it is checked.
    :raises PilotnetError: when a start value (a default, a parameter file, a ``-p`` override) is
        not one of its choices.
    """
    from rcl_interfaces.msg import (
        FloatingPointRange,
        IntegerRange,
        ParameterDescriptor,
        SetParametersResult,
    )

    for spec in specs:
        text = spec.description + (f" (one of: {', '.join(spec.choices)})" if spec.choices else '')
        descriptor = ParameterDescriptor(description=text, read_only=spec.read_only)
        if spec.int_range is not None:
            descriptor.integer_range = [
                IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=1)
            ]
        if spec.float_range is not None:
            descriptor.floating_point_range = [
                FloatingPointRange(
                    from_value=float(spec.float_range[0]),
                    to_value=float(spec.float_range[1]),
                    step=0.0,
                )
            ]
        node.declare_parameter(spec.name, spec.default, descriptor)
    by_name: Mapping[str, ParamSpec] = {spec.name: spec for spec in specs}
    for spec in specs:
        reason = choice_error(spec, param(node, spec.name))
        if reason is not None:
            raise PilotnetError(reason)

    def check(params: list[Any]) -> Any:
        for p in params:
            reason = choice_error(by_name[p.name], p.value) if p.name in by_name else None
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        return on_set(params) if on_set is not None else SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(check)


def param(node: Any, name: str) -> Any:
    """Return the current value of the node's parameter ``name``."""
    return node.get_parameter(name).value
