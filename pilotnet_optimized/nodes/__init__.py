"""The rclpy node suite: thin adapters between ROS 2 topics and the ROS-free core.

- :mod:`.inference_node`: camera ``Image`` in, ``Twist`` out, through a :mod:`~pilotnet_optimized.backends` model.
- :mod:`.simulator_node`: the built-in simulator on the topics of Behavior Metrics' Formula-1 car.
- :mod:`.metrics_node`, :mod:`.recorder_node`: the run's report and its bag.
- :mod:`.graph`: the one description of the graph (nodes, parameters, environment) that both
  ``launch/sim.launch.py`` and :mod:`.runner` (``pilotnet run``) start; :mod:`.process` starts and stops one node
  as a process (the runner and :mod:`.bench_latency` alike).
- :mod:`.topics` (names and message types), :mod:`.qos` (QoS profiles), :mod:`.params` (declaring and checking
  parameters), :mod:`.dds` (the Fast DDS transport, ``config/``, a free ROS domain), :mod:`.spin` (start, spin and
  stop a node).

Importing this package imports nothing from ROS: :mod:`.graph`, :mod:`.topics`, :mod:`.dds`, :mod:`.process` and
the command modules load where rclpy does not (the launch file's tests, the runner's argument parsing).
"""

from __future__ import annotations

__all__: list[str] = []
