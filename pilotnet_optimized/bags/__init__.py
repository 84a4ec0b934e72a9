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
Bags, without ROS: one reader for every kind (:mod:`.read`).

Repair of cut-off MCAP bags (:mod:`.repair`), and ``sensor_msgs/Image`` <-> numpy (:mod:`.images`).

- :mod:`.read`: ROS 1 ``.bag``, rosbag2 folders (MCAP, sqlite3), bare ``.mcap``/``.db3`` files and
  MCAP files a killed recorder cut off, all read-only, with one typestore rule.
- :mod:`.repair`: close a cut-off MCAP bag and rewrite its ``metadata.yaml``
  (``pilotnet bag-repair``).
- :mod:`.images`: camera messages (``Image``, ``CompressedImage``) to RGB arrays and back.
"""

from __future__ import annotations

__all__: list[str] = []
