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
The one description of the node graph, as plain data.

What ``launch/sim.launch.py`` and ``pilotnet run`` start.

:func:`describe_graph` turns the launch arguments (``model:=drq circuit:=simple ...``, all strings,
as ``ros2 launch`` hands them over) into one :class:`NodeSpec` per node: its executable, the
parameter files from ``config/`` plus the overrides the arguments make, remappings and environment.
The launch file wraps each spec in a ``launch_ros.actions.Node``; the runner turns it into
``python -m <module> --ros-args ...``. Neither adds anything of its own, so the two cannot drift
apart (``test/test_graph.py`` checks that they do not).

No ROS import here: the launch file's tests and the runner's argument parsing must work without
rclpy.

Model names (``model:=drq``) are looked up in ``models_dir`` by
:func:`pilotnet_optimized.store.resolve_model`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
import difflib
from pathlib import Path
from typing import Any

from pilotnet_optimized.backends import BACKEND_CHOICES
from pilotnet_optimized.errors import ModelError, PilotnetError
from pilotnet_optimized.nodes.dds import config_dir, DDS_VARS, graph_env
from pilotnet_optimized.nodes.topics import INFERENCE_NODE
from pilotnet_optimized.sim.spawn import parse_start
from pilotnet_optimized.store import DEFAULT_MODELS_DIR, resolve_model

__all__ = [
    'ARGUMENTS',
    'LaunchArgument',
    'GraphArgs',
    'NodeSpec',
    'DEFAULT_OUTPUT_DIR',
    'SIM_CHOICES',
    'parse_arguments',
    'describe_graph',
    'resolve_output_dir',
    'output_dir_of',
    'ros_arg_value',
    'ros_text',
    'gazebo_launch_file',
]

#: Where a run's outputs go (metrics.json, metrics.md, the bag): ``{time}`` becomes the UTC start
#: time.
DEFAULT_OUTPUT_DIR = 'runs/{time}'
SIM_CHOICES = ('builtin', 'gazebo', 'ros1')


@dataclass(frozen=True)
class LaunchArgument:
    """One ``name:=value`` argument, declared the same way by the launch file and the runner."""

    name: str
    default: str
    description: str
    choices: tuple[str, ...] | None = None
    #: No default: ros2 launch and the runner refuse to start without it.
    required: bool = False


ARGUMENTS: dict[str, LaunchArgument] = {
    a.name: a
    for a in (
        LaunchArgument(
            'model',
            '',
            'model to drive with: a file (.tflite, .onnx, .keras, .engine), a SavedModel folder, '
            f'or a name looked up in models_dir (drq -> {DEFAULT_MODELS_DIR}/drq.tflite)',
            required=True,
        ),
        LaunchArgument('models_dir', DEFAULT_MODELS_DIR, 'folder where model names are looked up'),
        LaunchArgument(
            'backend',
            'auto',
            'inference runtime; auto picks it from the model file',
            BACKEND_CHOICES,
        ),
        LaunchArgument('num_threads', '1', 'CPU threads for one inference (1..64)'),
        LaunchArgument(
            'sim',
            'builtin',
            'builtin: the built-in simulator node; gazebo: no simulator node, the nodes use the'
            " topics of Behavior Metrics' ROS 2 Gazebo car; ros1: its ROS 1 Noetic Gazebo car"
            ' (ROS_MASTER_URI) through ros1_bridge_node',
            SIM_CHOICES,
        ),
        LaunchArgument(
            'circuit',
            'simple',
            'built-in circuit name, perfect-lap bag or x,y CSV: the circuit the built-in simulator'
            ' drives, and the perfect lap the metrics node judges the run against (with'
            ' sim:=gazebo give the perfect-lap bag of the Gazebo world)',
        ),
        LaunchArgument(
            'start',
            '',
            'x,y,yaw: where the car starts (sim:=builtin), for any circuit; empty: the'
            " circuit's own start (a Behavior Metrics perfect-lap bag's: that world's spawn pose)",
        ),
        LaunchArgument(
            'laps', '1', 'laps to drive before the simulator ends the run (sim:=builtin)'
        ),
        LaunchArgument(
            'realtime',
            'false',
            'sim:=builtin: step on a timer every control period (true) or in lock-step '
            'with the brain, so results do not depend on machine load (false)',
            ('true', 'false'),
        ),
        LaunchArgument(
            'record',
            'false',
            'also record the run: camera, commands, odometry, timing and status topics '
            'into a rosbag2 MCAP bag <output_dir>/bag (recorder_node)',
            ('true', 'false'),
        ),
        LaunchArgument(
            'episodes',
            '0',
            "N > 0: Behavior Metrics' script mode: episode_node resets, unpauses and watches N"
            " repetitions over the simulator's Gazebo services, writing"
            ' <output_dir>/repetition-<n>/metrics.json each and summary.json (replaces'
            ' metrics_node); 0: one run',
        ),
        LaunchArgument(
            'gazebo_launch',
            '',
            "ros2 launch only: a launch file to include (RoboticsInfrastructure's circuit"
            " launcher): a path, or PACKAGE/FILE in that package's share/launch folder",
        ),
        LaunchArgument(
            'output_dir',
            DEFAULT_OUTPUT_DIR,
            "folder for the run's outputs: metrics.json and metrics.md (metrics_node), bag/"
            ' (record:=true); {time} becomes the UTC start time (20250131T120000Z)',
        ),
    )
}


@dataclass(frozen=True)
class GraphArgs:
    """The launch arguments, checked and typed."""

    model: str
    models_dir: str
    backend: str
    num_threads: int
    sim: str
    circuit: str
    start: str
    laps: int
    realtime: bool
    record: bool
    output_dir: str
    episodes: int = 0
    gazebo_launch: str = ''


@dataclass(frozen=True)
class NodeSpec:
    """
    One node of the graph, as plain data.

    :param name: node name (also its section in the parameter files).
    :param executable: the console script (``ros2 run pilotnet_optimized <executable>``; the launch
        file's).
    :param module: the module whose ``main()`` that script runs (the runner's
        ``python -m <module>``).
    :param param_files: ROS parameter files, applied in order.
    :param parameters: overrides from the launch arguments, applied after the files.
    :param remappings: ``(from, to)`` topic remappings.
    :param env: environment variables the node needs (added to the caller's environment).
    :param ends_run: when this node exits, the run is over: the runner stops the rest and exits
        with its code, the launch file shuts down.
    :param end_codes: exit codes besides 0 that report how the run went rather than a failure (the
        simulator's 3: the run ended before the laps were done).
    """

    name: str
    executable: str
    module: str
    param_files: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    ends_run: bool = False
    end_codes: tuple[int, ...] = ()

    def ros_args(self) -> list[str]:
        """
        Return the node's ``--ros-args``.

        Its name, parameter files, ``-p`` overrides and ``-r`` remappings.
        """
        out = ['--ros-args', '-r', f'__node:={self.name}']
        for path in self.param_files:
            out += ['--params-file', path]
        for key, value in self.parameters.items():
            out += ['-p', f'{key}:={ros_arg_value(value)}']
        for src, dst in self.remappings:
            out += ['-r', f'{src}:={dst}']
        return out

    def env_additions(self, environ: Mapping[str, str]) -> dict[str, str]:
        """
        Return the variables of :attr:`env` that ``environ`` does not set already.

        A user's own DDS setting (any of :data:`DDS_VARS`: a builtin transport mode or an XML
        profile) replaces all of ours.
        """
        own_dds = any(environ.get(k) for k in DDS_VARS)
        return {
            k: v
            for k, v in self.env.items()
            if k not in environ and not (own_dds and k in DDS_VARS)
        }

    def command(self, python: str) -> list[str]:
        """Return the command line that starts this node with the interpreter ``python``."""
        return [python, '-m', self.module, *self.ros_args()]


def ros_arg_value(value: Any) -> str:
    """
    Return a parameter value as a ``-p name:=value`` string.

    rcl's YAML parser reads the string back as the same value. Strings that YAML would read as
    something else (``'true'``, ``'1'``, a path with ``': '``) are single-quoted.
    """
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    import yaml
    try:
        plain = text == text.strip() and text != '' and yaml.safe_load(text) == text
    except yaml.YAMLError:
        plain = False
    return text if plain else "'" + text.replace("'", "''") + "'"


def _bool(name: str, text: str) -> bool:
    # Only true/false: the launch file declares these choices, and both launchers must accept the
    # same text.
    value = text.strip().lower()
    if value not in ('true', 'false'):
        raise PilotnetError(f'{name}:={text}: choose one of true, false')
    return value == 'true'


def _int(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise PilotnetError(f'{name}:={text}: expected a whole number') from None
    if not low <= value <= high:
        raise PilotnetError(f'{name}:={text}: expected {low}..{high}')
    return value


def parse_arguments(args: Mapping[str, Any]) -> GraphArgs:
    """
    Check and type the launch arguments (strings, or Python values).

    Missing ones take their defaults.

    :raises PilotnetError: for an unknown argument (the message lists the valid ones and the
        nearest) or a bad value.
    """
    unknown = [k for k in args if k not in ARGUMENTS]
    if unknown:
        near = difflib.get_close_matches(unknown[0], list(ARGUMENTS), n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ''
        raise PilotnetError(
            f"unknown argument '{unknown[0]}'{hint}: valid ones are {', '.join(ARGUMENTS)}"
        )
    text = {name: ros_text(args.get(name, arg.default)) for name, arg in ARGUMENTS.items()}
    for name, arg in ARGUMENTS.items():
        if arg.choices and text[name].strip().lower() not in arg.choices:
            raise PilotnetError(f"{name}:={text[name]}: choose one of {', '.join(arg.choices)}")
    return GraphArgs(
        model=text['model'].strip(),
        models_dir=text['models_dir'].strip(),
        backend=text['backend'].strip().lower(),
        num_threads=_int('num_threads', text['num_threads'], 1, 64),
        sim=text['sim'].strip().lower(),
        circuit=text['circuit'].strip(),
        start=_start(text['start']),
        laps=_int('laps', text['laps'], 1, 1000),
        realtime=_bool('realtime', text['realtime']),
        record=_bool('record', text['record']),
        output_dir=text['output_dir'].strip(),
        episodes=_int('episodes', text['episodes'], 0, 1000),
        gazebo_launch=text['gazebo_launch'].strip(),
    )


def _start(text: str) -> str:
    # Checked here, so that both launchers refuse a bad pose before a node starts.
    pose = parse_start(text)
    return '' if pose is None else ','.join(f'{v:g}' for v in pose)


def ros_text(value: Any) -> str:
    """Return a Python value as launch-argument text (``True`` -> ``'true'``)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def describe_graph(args: Mapping[str, Any], now: datetime | None = None) -> list[NodeSpec]:
    """
    Return the nodes to start for these launch arguments, in start order (stop in reverse).

    ``metrics_node`` (always) and ``recorder_node`` (``record:=true``) come first, so that they are
    listening when the run starts and still listening when the brain's final zero command goes out;
    the simulator's ``wait_for_observers`` is their number, so that it starts the run only once
    they have subscribed (started first is not yet matched). Then ``sim:=builtin``:
    ``simulator_node`` and ``inference_node``; ``sim:=gazebo``: ``inference_node`` only, on the
    same topic names (Behavior Metrics' ROS 2 car: ``/cam_f1_left/image_raw``, ``/cmd_vel``,
    ``/odom``). Every node but the simulator runs on ``use_sim_time`` (both simulators publish
    ``/clock``).

    The metrics files and the bag go into one folder, ``output_dir`` made absolute (see
    :func:`resolve_output_dir`; ``now`` fixes the time its ``{time}`` stands for, for tests).

    A model name is resolved here when it can be (so both launchers show the file); one that cannot
    is passed on as it is, and the inference node refuses it with one clear line. The runner checks
    it up front.

    :raises PilotnetError: for unknown arguments or bad values.
    """
    a = parse_arguments(args)
    config = config_dir()
    try:
        model = str(resolve_model(a.model, a.models_dir))
    except ModelError:
        model = a.model
    output_dir = str(resolve_output_dir(a.output_dir, now))
    # Only a pose given is passed: an empty string is no ROS parameter value a launcher keeps.
    start = {'start': a.start} if a.start else {}
    episode_spec = NodeSpec(
        name='episode_node',
        executable='episode_node',
        module='pilotnet_optimized.nodes.episode_node',
        parameters={
            'circuit': a.circuit,
            **start,
            'repetitions': a.episodes,
            'laps': a.laps,
            'output_dir': output_dir,
            'use_sim_time': True,
        },
        env=graph_env(),
        ends_run=True,
        end_codes=(3,),
    )
    specs: list[NodeSpec] = [episode_spec] if a.episodes else [
        NodeSpec(
            name='metrics_node',
            executable='metrics_node',
            module='pilotnet_optimized.nodes.metrics_node',
            param_files=_files(config, 'metrics_node'),
            parameters={
                'circuit': a.circuit,
                **start,
                'output_dir': output_dir,
                'use_sim_time': True,
            },
            env=graph_env(),
        )
    ]
    if a.record:
        specs.append(
            NodeSpec(
                name='recorder_node',
                executable='recorder_node',
                module='pilotnet_optimized.nodes.recorder_node',
                param_files=_files(config, 'recorder_node'),
                # Receive times in simulated time, as ros2 bag record --use-sim-time stamps them.
                parameters={'output_dir': output_dir, 'use_sim_time': True},
                env=graph_env(),
            )
        )
    observers = len(specs)   # metrics_node, recorder_node: every node so far watches the run
    if a.sim == 'builtin':
        specs.append(
            NodeSpec(
                name='simulator_node',
                executable='simulator_node',
                module='pilotnet_optimized.nodes.simulator_node',
                param_files=_files(config, 'simulator_node'),
                # The run ends with the laps (or a failure): the simulator exits and takes the
                # graph down with it. The observers started above must see the run from its first
                # step: it waits for them too.
                parameters={
                    'circuit': a.circuit,
                    **start,
                    'laps': a.laps,
                    'realtime': a.realtime,
                    # Episodes: the episode node ends the graph; the simulator waits, paused, for
                    # its reset and unpause, and after each run for the next reset.
                    'on_end': 'stop' if a.episodes else 'exit',
                    **({'paused': True} if a.episodes else {}),
                    'wait_for_observers': observers,
                },
                env=graph_env(),
                ends_run=not a.episodes,
                end_codes=(3,),
            )
        )
    if a.sim == 'ros1':
        # Behavior Metrics' ROS 1 car (/F1ROS/...) onto the graph's topics, its Gazebo services
        # as /reset_world...; the frame counts go beside the run's report.
        specs.append(
            NodeSpec(
                name='ros1_bridge_node',
                executable='ros1_bridge_node',
                module='pilotnet_optimized.nodes.ros1_bridge_node',
                param_files=_files(config, 'ros1_bridge_node'),
                parameters={'report': str(Path(output_dir) / 'ros1_bridge.json')},
                env=graph_env(),
            )
        )
    specs.append(
        NodeSpec(
            name=INFERENCE_NODE,
            executable=INFERENCE_NODE,
            module=f'pilotnet_optimized.nodes.{INFERENCE_NODE}',
            param_files=_files(config, INFERENCE_NODE),
            # Both simulators publish /clock: stamps, timing and logs are in simulated time.
            parameters={
                'model_path': model,
                'models_dir': a.models_dir,
                'backend': a.backend,
                'num_threads': a.num_threads,
                'use_sim_time': True,
            },
            env=graph_env(),
        )
    )
    return specs


def gazebo_launch_file(text: str) -> Path | None:
    """
    Return the launch file a ``gazebo_launch:=`` value names, or ``None`` for an empty value.

    A path to an existing file, or ``PACKAGE/FILE``: ``FILE`` in ``share/PACKAGE/launch`` of an
    installed ROS 2 package (found with ament_index).

    :raises PilotnetError: when neither exists.
    """
    text = text.strip()
    if not text:
        return None
    path = Path(text).expanduser()
    if path.is_file():
        return path.absolute()
    package, sep, name = text.partition('/')
    if sep and name:
        try:
            from ament_index_python.packages import get_package_share_directory
            share = Path(get_package_share_directory(package))
        except (ImportError, LookupError, ValueError):   # PackageNotFoundError is a KeyError
            share = None
        if share is not None and (share / 'launch' / name).is_file():
            return share / 'launch' / name
    raise PilotnetError(f'gazebo_launch:={text}: no such launch file, and no installed package'
                        ' share/<PACKAGE>/launch/<FILE> of that name')


def resolve_output_dir(text: str, now: datetime | None = None) -> Path:
    """
    Return the run's output folder for an ``output_dir`` value.

    Absolute (relative to the current folder).

    ``{time}`` becomes the UTC time ``now`` (default: the current time) as ``20250131T120000Z``;
    when a folder of that name exists already (two runs in one second), ``-2``, ``-3``, ... is
    added. Without ``{time}`` the folder is used as it is, existing or not (a second run then finds
    the first one's bag and refuses to overwrite it). An empty value means
    :data:`DEFAULT_OUTPUT_DIR`.

    :raises PilotnetError: for a template other than ``{time}``.
    """
    template = text.strip() or DEFAULT_OUTPUT_DIR
    if '{time}' not in template:
        if '{' in template or '}' in template:
            raise PilotnetError(f'output_dir:={text}: the only placeholder is {{time}}')
        return Path(template).expanduser().absolute()
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    rest = template.replace('{time}', '')
    if '{' in rest or '}' in rest:
        raise PilotnetError(f'output_dir:={text}: the only placeholder is {{time}}')
    base = Path(template.replace('{time}', stamp)).expanduser().absolute()
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f'{base.name}-{n}')
    return path


def output_dir_of(specs: list[NodeSpec]) -> str | None:
    """
    Return the output folder of a described graph (what ``pilotnet run`` prints at the end).

    ``None`` when the graph writes none.
    """
    for spec in specs:
        if 'output_dir' in spec.parameters:
            return str(spec.parameters['output_dir'])
    return None


def _files(config: Path, node: str) -> tuple[str, ...]:
    path = config / f'{node}.yaml'
    return (str(path),) if path.is_file() else ()
