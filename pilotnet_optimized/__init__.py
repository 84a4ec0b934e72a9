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
pilotnet_optimized: compressed end-to-end driving models for a Formula-1 car, as ROS 2 nodes.

The sub-packages ``sim``, ``laps``, ``models``, ``optimize`` and ``backends`` are ROS-free;
``nodes`` holds the thin rclpy adapters over them.
"""

__version__ = '0.1.0'
__all__ = ['__version__']
