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

"""ament_python package: installs like any ROS 2 Python package (colcon) and with plain pip."""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = 'pilotnet_optimized'
HERE = Path(__file__).parent


def requirements(name: str) -> list[str]:
    """
    Pinned requirements from requirements/<name>.txt, one place for pip.

    Colcon and the setup scripts.
    """
    lines = (HERE / 'requirements' / f'{name}.txt').read_text().splitlines()
    return [line.split('#')[0].strip() for line in lines if line.split('#')[0].strip()]


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={PACKAGE: ['py.typed']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml') + glob('config/*.xml')),
    ],
    # A ROS 2 distro user gets rclpy and the messages from the distro: the PyPI ROS wheels are an
    # extra.
    install_requires=requirements('core'),
    extras_require={'ros-pypi': requirements('ros-pypi'), 'test': requirements('test')},
    zip_safe=True,
    maintainer='pilotnet_optimized developers',
    maintainer_email='pilotnet-optimized@example.com',
    description=(
        'Compressed PilotNet driving models for the Behavior Metrics Formula-1 car, as ROS 2'
        ' nodes.'
    ),
    license='Apache-2.0',
    python_requires='>=3.10',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'pilotnet = pilotnet_optimized.cli:main',
            'inference_node = pilotnet_optimized.nodes.inference_node:main',
            'simulator_node = pilotnet_optimized.nodes.simulator_node:main',
            'metrics_node = pilotnet_optimized.nodes.metrics_node:main',
            'recorder_node = pilotnet_optimized.nodes.recorder_node:main',
            'ros1_bridge_node = pilotnet_optimized.nodes.ros1_bridge_node:main',
            'episode_node = pilotnet_optimized.nodes.episode_node:main',
        ],
    },
)
