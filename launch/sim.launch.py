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
Launch file that starts the run's node graph under ``ros2 launch``.

Usage, optionally followed by ``[laps:=1 realtime:=false sim:=builtin]``::

    ros2 launch pilotnet_optimized sim.launch.py model:=drq circuit:=simple

The nodes come from :func:`pilotnet_optimized.nodes.graph.describe_graph`, the same description
``pilotnet run`` starts without ROS 2's launch: same arguments, executables, parameter files,
overrides, remappings and environment. ``ros2 launch pilotnet_optimized sim.launch.py --show-args``
lists the arguments.

When the simulator ends the run (laps done, off track, ...) it exits and the launch shuts down.

Launch imports stay inside :func:`generate_launch_description`, so this file imports (and is
tested) where ``launch``/``launch_ros`` are not installed.
"""

from __future__ import annotations

import os
from typing import Any


def generate_launch_description() -> Any:
    """
    Return the launch description.

    One declared argument per graph argument, then the graph's nodes.
    """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from pilotnet_optimized.nodes.dds import PACKAGE
    from pilotnet_optimized.nodes.graph import ARGUMENTS, describe_graph, gazebo_launch_file

    def nodes(context: Any) -> list[Any]:
        values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
        actions = []
        for spec in describe_graph(values):
            extra = (
                {'on_exit': Shutdown(reason=f'{spec.name} ended the run')} if spec.ends_run else {}
            )
            actions.append(
                Node(
                    package=PACKAGE,
                    executable=spec.executable,
                    name=spec.name,
                    output='screen',
                    parameters=[*spec.param_files, spec.parameters],
                    remappings=list(spec.remappings),
                    additional_env=spec.env_additions(os.environ),
                    **extra,
                )
            )
        gazebo = gazebo_launch_file(values['gazebo_launch'])
        if gazebo is not None:
            # RoboticsInfrastructure's circuit launcher (Gazebo, the world, the car) first.
            from launch.actions import IncludeLaunchDescription
            from launch.launch_description_sources import PythonLaunchDescriptionSource
            actions.insert(0, IncludeLaunchDescription(PythonLaunchDescriptionSource(str(gazebo))))
        return actions

    declared = []
    for arg in ARGUMENTS.values():
        # No default makes ros2 launch itself refuse to start without it (model:=).
        options: dict[str, Any] = {} if arg.required else {'default_value': arg.default}
        if arg.choices:
            options['choices'] = list(arg.choices)
        declared.append(DeclareLaunchArgument(arg.name, description=arg.description, **options))
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
