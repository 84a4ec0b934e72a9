"""Fixtures shared by the tests that start real ROS 2 nodes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope='module')
def ros_env() -> Iterator[dict[str, str]]:
    """A ROS domain of our own (no cross-talk with other runs on this machine) and the graph's DDS settings, in
    this process's environment (the nodes it starts inherit it)."""
    pytest.importorskip('rclpy', reason='rclpy is installed by scripts/setup.sh (ros-pypi extra)')
    from pilotnet_optimized.nodes.graph import GRAPH_ENV, free_ros_domain
    settings = {'ROS_DOMAIN_ID': str(free_ros_domain()), **GRAPH_ENV}
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    yield dict(settings)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
