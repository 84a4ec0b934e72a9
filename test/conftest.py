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
    from pilotnet_optimized.nodes.graph import DDS_VARS, free_ros_domain, graph_env
    settings = {'ROS_DOMAIN_ID': str(free_ros_domain()), **graph_env()}
    saved = {k: os.environ.get(k) for k in ('ROS_DOMAIN_ID', *DDS_VARS)}
    for key in DDS_VARS:
        os.environ.pop(key, None)
    os.environ.update(settings)
    yield dict(settings)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
