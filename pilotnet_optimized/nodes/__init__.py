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
The rclpy node suite: thin adapters between ROS 2 topics and the ROS-free core.

- :mod:`.inference_node`: camera ``Image`` in, ``Twist`` out, through a
  :mod:`~pilotnet_optimized.backends` model.
- :mod:`.simulator_node`: the built-in simulator on the topics of Behavior Metrics' Formula-1 car.
- :mod:`.metrics_node`, :mod:`.recorder_node`: the run's report and its bag.
- :mod:`.graph`: the one description of the graph (nodes, parameters, environment) that both
  ``launch/sim.launch.py`` and :mod:`.runner` (``pilotnet run``) start; :mod:`.process` starts and
  stops one node as a process (the runner and :mod:`.bench_latency` alike).
- :mod:`.topics` (names and message types), :mod:`.qos` (QoS profiles), :mod:`.params` (declaring
  and checking parameters), :mod:`.dds` (the Fast DDS transport, ``config/``, a free ROS domain),
  :mod:`.spin` (start, spin and stop a node).

Importing this package imports nothing from ROS: :mod:`.graph`, :mod:`.topics`, :mod:`.dds`,
:mod:`.process` and the command modules load where rclpy does not (the launch file's tests, the
runner's argument parsing).
"""

from __future__ import annotations

__all__: list[str] = []
