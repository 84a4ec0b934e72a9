"""The rclpy node suite: thin adapters between ROS 2 topics and the ROS-free core.

- :mod:`.inference_node`: camera ``Image`` in, ``Twist`` out, through a :mod:`~pilotnet_optimized.backends` model.
- :mod:`.simulator_node`: the built-in simulator on the topics of Behavior Metrics' Formula-1 car.
- :mod:`.graph`: the one description of the graph (nodes, parameters, environment) that both
  ``launch/sim.launch.py`` and :mod:`.runner` (``pilotnet run``) start.
- :mod:`.qos`, :mod:`.image_conversion`: QoS profiles and ``sensor_msgs/Image`` <-> numpy.

Importing this package imports nothing from ROS: :mod:`.graph` must load where rclpy does not (the launch file's
tests, the runner's argument parsing).
"""

from __future__ import annotations

__all__: list[str] = []
