"""Fixtures shared by the tests that start real ROS 2 nodes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope='module')
def ros_env() -> Iterator[dict[str, str]]:
    """A ROS domain of our own (no cross-talk with other runs on this machine) and the graph's DDS settings, in
    this process's environment (the nodes it starts inherit it)."""
    pytest.importorskip('rclpy', reason='rclpy is installed by scripts/setup.sh (ros-pypi extra)')
    from pilotnet_optimized.nodes.dds import DDS_VARS, apply_env, dds_env, free_ros_domain, graph_env
    settings = {'ROS_DOMAIN_ID': str(free_ros_domain()), **graph_env()}
    saved = {k: os.environ.get(k) for k in ('ROS_DOMAIN_ID', *DDS_VARS)}
    apply_env(os.environ, {**dds_env(), 'ROS_DOMAIN_ID': settings['ROS_DOMAIN_ID']})
    yield dict(settings)
    apply_env(os.environ, saved)


@pytest.fixture(scope='session')
def tiny_driver(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny PilotNet trained on 40 frames of `simple` (one epoch; it leaves the road within a second), as float32
    and dynamic-range TFLite, and a corrupt .tflite: the models the node, graph and comparison tests drive with.
    Trained once per session."""
    import tf_keras

    from pilotnet_optimized.models.train import TrainConfig, train
    from pilotnet_optimized.optimize import to_tflite
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.dataset import write_dataset
    root = tmp_path_factory.mktemp('tiny_driver')
    write_dataset(get_circuit('simple'), 40, root / 'data', seed=1, progress=False)
    train([root / 'data'], root / 'tiny.keras', TrainConfig(epochs=1, batch_size=8, head_units=8), verbose=0)
    model = tf_keras.models.load_model(root / 'tiny.keras', compile=False)
    paths = {'float': to_tflite(model, root / 'float.tflite'),
             'dynamic': to_tflite(model, root / 'dynamic.tflite', 'dynamic'),
             'corrupt': root / 'corrupt.tflite'}
    paths['corrupt'].write_bytes(b'not a flatbuffer at all' * 100)
    return paths
