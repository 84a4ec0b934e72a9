"""Bags, without ROS: one reader for every kind (:mod:`.read`), repair of cut-off MCAP bags (:mod:`.repair`), and
``sensor_msgs/Image`` <-> numpy (:mod:`.images`).

- :mod:`.read`: ROS 1 ``.bag``, rosbag2 folders (MCAP, sqlite3), bare ``.mcap``/``.db3`` files and MCAP files a
  killed recorder cut off, all read-only, with one typestore rule.
- :mod:`.repair`: close a cut-off MCAP bag and rewrite its ``metadata.yaml`` (``pilotnet bag-repair``).
- :mod:`.images`: camera messages (``Image``, ``CompressedImage``) to RGB arrays and back.
"""

from __future__ import annotations

__all__: list[str] = []
