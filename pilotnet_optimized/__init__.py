"""pilotnet_optimized: compressed end-to-end driving models for a Formula-1 car, as ROS 2 nodes.

The sub-packages ``sim``, ``laps``, ``models``, ``optimize`` and ``backends`` are ROS-free; ``nodes`` holds the
thin rclpy adapters over them.
"""

__version__ = '0.1.0'
__all__ = ['__version__']
