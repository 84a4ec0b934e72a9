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

"""Fixtures shared by the tests that start real ROS 2 nodes."""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers of the linters not on PyPI (ament_lint registers the others)."""
    config.addinivalue_line('markers', 'copyright: the ament_copyright check')
    config.addinivalue_line('markers', 'xmllint: the ament_xmllint check')


@pytest.fixture(scope='module')
def ros_env() -> Iterator[dict[str, str]]:
    """
    Set up a ROS domain of our own and the graph's DDS settings in this process's environment.

    Our own domain means no cross-talk with other runs on this machine; the nodes this process
    starts inherit the environment.
    """
    pytest.importorskip('rclpy', reason='rclpy is installed by scripts/setup.sh (ros-pypi extra)')
    from pilotnet_optimized.nodes.dds import (apply_env, dds_env, DDS_VARS, free_ros_domain,
                                              graph_env)
    settings = {'ROS_DOMAIN_ID': str(free_ros_domain()), **graph_env()}
    saved = {k: os.environ.get(k) for k in ('ROS_DOMAIN_ID', *DDS_VARS)}
    apply_env(os.environ, {**dds_env(), 'ROS_DOMAIN_ID': settings['ROS_DOMAIN_ID']})
    yield dict(settings)
    apply_env(os.environ, saved)


@pytest.fixture(scope='session')
def tiny_driver(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """
    Train a tiny PilotNet on 40 frames of `simple` once per session and return its model files.

    One epoch; it leaves the road within a second. The files are the model as float32 and as
    dynamic-range TFLite, and a corrupt .tflite: the models the node, graph and comparison tests
    drive with.
    """
    from pilotnet_optimized.models.train import train, TrainConfig
    from pilotnet_optimized.optimize import to_tflite
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.dataset import write_dataset
    import tf_keras
    root = tmp_path_factory.mktemp('tiny_driver')
    write_dataset(get_circuit('simple'), 40, root / 'data', seed=1, progress=False)
    train(
        [root / 'data'],
        root / 'tiny.keras',
        TrainConfig(epochs=1, batch_size=8, head_units=8),
        verbose=0,
    )
    model = tf_keras.models.load_model(root / 'tiny.keras', compile=False)
    paths = {'float': to_tflite(model, root / 'float.tflite'),
             'dynamic': to_tflite(model, root / 'dynamic.tflite', 'dynamic'),
             'corrupt': root / 'corrupt.tflite'}
    paths['corrupt'].write_bytes(b'not a flatbuffer at all' * 100)
    return paths
