"""The one description of the node graph, as plain data: what ``launch/sim.launch.py`` and ``pilotnet run`` start.

:func:`describe_graph` turns the launch arguments (``model:=drq circuit:=simple ...``, all strings, as ``ros2 launch``
hands them over) into one :class:`NodeSpec` per node: its executable, the parameter files from ``config/`` plus the
overrides the arguments make, remappings and environment. The launch file wraps each spec in a
``launch_ros.actions.Node``; the runner turns it into ``python -m <module> --ros-args ...``. Neither adds anything
of its own, so the two cannot drift apart (``test/test_graph.py`` checks that they do not).

No ROS import here: the launch file's tests and the runner's argument parsing must work without rclpy.

Model names (``model:=drq``): an existing file or folder is used as it is; otherwise a bare name is looked up in
``models_dir`` (default ``models/optimized``, the output of ``pilotnet optimize``): its ``manifest.json`` entry, else
``<name>.tflite``, ``<name>.onnx``, ``<name>.keras``, ``<name>.h5``, ``<name>.engine``, ``<name>.plan``, or a
SavedModel folder ``<name>/``.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilotnet_optimized.errors import ModelError, PilotnetError

__all__ = ['PACKAGE', 'ARGUMENTS', 'LaunchArgument', 'GraphArgs', 'NodeSpec', 'PlannedNode', 'PLANNED_NODES',
           'GRAPH_ENV', 'DEFAULT_MODELS_DIR', 'parse_arguments', 'describe_graph', 'resolve_model', 'config_dir',
           'ros_arg_value', 'ros_text', 'ParamSpec', 'declare_parameters']

PACKAGE = 'pilotnet_optimized'
DEFAULT_MODELS_DIR = 'models/optimized'
MODEL_SUFFIXES = ('.tflite', '.onnx', '.keras', '.h5', '.engine', '.plan')
BACKEND_CHOICES = ('auto', 'litert', 'tensorflow', 'onnxruntime', 'tensorrt')
SIM_CHOICES = ('builtin', 'gazebo')

#: Environment of every node. Fast DDS's default shared-memory segment is smaller than one 640x480 frame, so camera
#: frames fall back to fragmented UDP (11.6 ms p50 between two processes here); the LARGE_DATA builtin transports
#: (shared memory with large segments, TCP) bring that to 1.25 ms. Fast DDS >= 2.13 (Jazzy, Kilted) reads it;
#: Humble's Fast DDS 2.6 ignores it (an XML profile is the way there), and other RMWs ignore it too.
GRAPH_ENV: dict[str, str] = {'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'}


@dataclass(frozen=True)
class LaunchArgument:
    """One ``name:=value`` argument, declared the same way by the launch file and the runner."""

    name: str
    default: str
    description: str
    choices: tuple[str, ...] | None = None


ARGUMENTS: dict[str, LaunchArgument] = {a.name: a for a in (
    LaunchArgument('model', '', 'model to drive with: a file (.tflite, .onnx, .keras, .engine), a SavedModel folder, '
                   'or a name looked up in models_dir (drq -> models/optimized/drq.tflite)'),
    LaunchArgument('models_dir', DEFAULT_MODELS_DIR, 'folder where model names are looked up'),
    LaunchArgument('backend', 'auto', 'inference runtime; auto picks it from the model file', BACKEND_CHOICES),
    LaunchArgument('num_threads', '1', 'CPU threads for one inference (1..64)'),
    LaunchArgument('sim', 'builtin', "builtin: the built-in simulator node; gazebo: no simulator node, the nodes use "
                   "the topics of Behavior Metrics' ROS 2 Gazebo car (a ROS 1 Noetic Gazebo needs a bridge: a later "
                   'issue)', SIM_CHOICES),
    LaunchArgument('circuit', 'simple', 'built-in circuit name, perfect-lap bag or x,y CSV (sim:=builtin)'),
    LaunchArgument('laps', '1', 'laps to drive before the simulator ends the run (sim:=builtin)'),
    LaunchArgument('realtime', 'false', 'sim:=builtin: step on a timer every control period (true) or in lock-step '
                   'with the brain, so results do not depend on machine load (false)', ('true', 'false')),
    LaunchArgument('record', 'false', 'also record the run (needs recorder_node: not part of this version yet)',
                   ('true', 'false')),
)}


@dataclass(frozen=True)
class GraphArgs:
    """The launch arguments, checked and typed."""

    model: str
    models_dir: str
    backend: str
    num_threads: int
    sim: str
    circuit: str
    laps: int
    realtime: bool
    record: bool


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph, as plain data.

    :param name: node name (also its section in the parameter files).
    :param executable: the console script (``ros2 run pilotnet_optimized <executable>``; the launch file's).
    :param module: the module whose ``main()`` that script runs (the runner's ``python -m <module>``).
    :param param_files: ROS parameter files, applied in order.
    :param parameters: overrides from the launch arguments, applied after the files.
    :param remappings: ``(from, to)`` topic remappings.
    :param env: environment variables the node needs (added to the caller's environment).
    :param ends_run: when this node exits, the run is over: the runner stops the rest and exits with its code, the
        launch file shuts down.
    :param end_codes: exit codes besides 0 that report how the run went rather than a failure (the simulator's 3:
        the run ended before the laps were done).
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
        """The node's ``--ros-args``: its name, parameter files, ``-p`` overrides and ``-r`` remappings."""
        out = ['--ros-args', '-r', f'__node:={self.name}']
        for path in self.param_files:
            out += ['--params-file', path]
        for key, value in self.parameters.items():
            out += ['-p', f'{key}:={ros_arg_value(value)}']
        for src, dst in self.remappings:
            out += ['-r', f'{src}:={dst}']
        return out

    def env_additions(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The variables of :attr:`env` that ``environ`` does not set already: the user's own setting wins (e.g.
        ``FASTDDS_BUILTIN_TRANSPORTS`` or a Fast DDS XML profile of their own)."""
        return {k: v for k, v in self.env.items() if k not in environ}

    def command(self, python: str) -> list[str]:
        """The command line that starts this node with the interpreter ``python``."""
        return [python, '-m', self.module, *self.ros_args()]


@dataclass(frozen=True)
class PlannedNode:
    """A node that later issues add (metrics, recorder): in the graph when ``when(args)`` and its module exists."""

    name: str
    module: str
    when: Callable[[GraphArgs], bool]
    #: Whether asking for it while its module is missing is an error (``record:=true`` must not silently not record).
    required_when_asked: bool = False


#: Hooks for the nodes of the next issue: write ``pilotnet_optimized/nodes/<name>.py`` with ``main()``, its
#: console script in setup.py and (optionally) ``config/<name>.yaml``; the graph, the launch file and the runner
#: then pick it up.
PLANNED_NODES: tuple[PlannedNode, ...] = (
    PlannedNode('metrics_node', 'pilotnet_optimized.nodes.metrics_node', lambda a: True),
    PlannedNode('recorder_node', 'pilotnet_optimized.nodes.recorder_node', lambda a: a.record,
                required_when_asked=True),
)


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter as plain data: declared by :func:`declare_parameters`, checked against ``config/*.yaml``.

    :param choices: allowed string values (ROS descriptors have no such field: the node checks them when set).
    :param int_range: ``(low, high)`` inclusive, enforced by rclpy.
    :param float_range: ``(low, high)`` inclusive, enforced by rclpy.
    :param read_only: fixed after start (topics and the simulated world: changing them live would mean rebuilding
        subscriptions or the run).
    """

    name: str
    default: Any
    description: str
    choices: tuple[str, ...] | None = None
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    read_only: bool = False


def declare_parameters(node: Any, specs: tuple[ParamSpec, ...]) -> None:
    """Declare ``specs`` on an rclpy ``node`` with descriptors (description, ranges, read-only)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    for spec in specs:
        text = spec.description + (f" (one of: {', '.join(spec.choices)})" if spec.choices else '')
        descriptor = ParameterDescriptor(description=text, read_only=spec.read_only)
        if spec.int_range is not None:
            descriptor.integer_range = [IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=1)]
        if spec.float_range is not None:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.float_range[0]),
                                                                  to_value=float(spec.float_range[1]), step=0.0)]
        node.declare_parameter(spec.name, spec.default, descriptor)


def config_dir() -> Path:
    """The ``config/`` folder: the source tree's (a checkout, editable installs), the one ``pip install .`` put in
    ``<prefix>/share/pilotnet_optimized``, or the ament share folder of a colcon install."""
    for here in (Path(__file__).resolve().parents[2] / 'config', Path(sys.prefix) / 'share' / PACKAGE / 'config'):
        if here.is_dir():
            return here
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            return Path(get_package_share_directory(PACKAGE)) / 'config'
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    raise PilotnetError(f'cannot find the config folder of {PACKAGE} (not in the source tree, and the package is not '
                        'installed in an ament prefix: source install/setup.bash)')


def ros_arg_value(value: Any) -> str:
    """A parameter value as a ``-p name:=value`` string that rcl's YAML parser reads back as the same value.

    Strings that YAML would read as something else (``'true'``, ``'1'``, a path with ``': '``) are single-quoted.
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


def resolve_model(model: str | Path, models_dir: str | Path = DEFAULT_MODELS_DIR) -> Path:
    """The model file (or SavedModel folder) ``model`` names, as an absolute path (see the module's rule).

    :raises ModelError: when it is neither an existing path nor a model name found in ``models_dir``.
    """
    text = str(model).strip()
    if not text:
        raise ModelError('no model given (model:=<file or name> for the launch file and pilotnet run, '
                         'model_path for the node)')
    path = Path(text).expanduser()
    if path.exists():
        return path.resolve()
    folder = Path(models_dir).expanduser()
    bare = '/' not in text and Path(text).suffix == ''
    if bare and folder.is_dir():
        found = _from_manifest(folder, text)
        if found is None:
            for suffix in MODEL_SUFFIXES:
                if (folder / f'{text}{suffix}').exists():
                    found = folder / f'{text}{suffix}'
                    break
        if found is None and (folder / text / 'saved_model.pb').is_file():
            found = folder / text
        if found is not None:
            return found.resolve()
        names = _model_names(folder)
        near = difflib.get_close_matches(text, names, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ''
        listed = ', '.join(names) if names else 'none'
        raise ModelError(f"model '{text}' not found in {folder} (models there: {listed}){hint}")
    where = f' and not a model name in {folder}' if bare else ''
    raise ModelError(f'model not found: {path}{where}')


def _from_manifest(folder: Path, name: str) -> Path | None:
    manifest = folder / 'manifest.json'
    if not manifest.is_file():
        return None
    try:
        entries = json.loads(manifest.read_text())
    except ValueError:
        return None
    if isinstance(entries, dict):
        items = list(entries.items())
    else:
        items = [(e.get('method'), e) for e in entries if isinstance(e, dict)]
    for method, entry in items:
        if method == name and isinstance(entry, dict) and entry.get('status', 'ok') == 'ok' and entry.get('file'):
            path = folder / entry['file']
            return path if path.exists() else None
    return None


def _model_names(folder: Path) -> list[str]:
    return sorted(p.stem if p.is_file() else p.name for p in folder.iterdir()
                  if p.suffix in MODEL_SUFFIXES or (p.is_dir() and (p / 'saved_model.pb').is_file()))


def _bool(name: str, text: str) -> bool:
    # Only true/false: the launch file declares these choices, and both launchers must accept the same text.
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
    """Check and type the launch arguments (strings, or Python values); missing ones take their defaults.

    :raises PilotnetError: for an unknown argument (the message lists the valid ones and the nearest) or a bad value.
    """
    unknown = [k for k in args if k not in ARGUMENTS]
    if unknown:
        near = difflib.get_close_matches(unknown[0], list(ARGUMENTS), n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ''
        raise PilotnetError(f"unknown argument '{unknown[0]}'{hint}: valid ones are {', '.join(ARGUMENTS)}")
    text = {name: ros_text(args.get(name, arg.default)) for name, arg in ARGUMENTS.items()}
    for name, arg in ARGUMENTS.items():
        if arg.choices and text[name].strip().lower() not in arg.choices:
            raise PilotnetError(f"{name}:={text[name]}: choose one of {', '.join(arg.choices)}")
    return GraphArgs(model=text['model'].strip(), models_dir=text['models_dir'].strip(),
                     backend=text['backend'].strip().lower(),
                     num_threads=_int('num_threads', text['num_threads'], 1, 64),
                     sim=text['sim'].strip().lower(), circuit=text['circuit'].strip(),
                     laps=_int('laps', text['laps'], 1, 1000), realtime=_bool('realtime', text['realtime']),
                     record=_bool('record', text['record']))


def ros_text(value: Any) -> str:
    """A Python value as launch-argument text (``True`` -> ``'true'``)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def describe_graph(args: Mapping[str, Any]) -> list[NodeSpec]:
    """The nodes to start for these launch arguments, in start order (stop in reverse).

    ``sim:=builtin``: ``simulator_node`` then ``inference_node``; ``sim:=gazebo``: ``inference_node`` only, on the
    same topic names (Behavior Metrics' ROS 2 car: ``/cam_f1_left/image_raw``, ``/cmd_vel``, ``/odom``) with
    ``use_sim_time`` for Gazebo's ``/clock``. Then any :data:`PLANNED_NODES` that exist.

    A model name is resolved here when it can be (so both launchers show the file); one that cannot is passed on
    as it is, and the inference node refuses it with one clear line. The runner checks it up front.

    :raises PilotnetError: for unknown arguments or bad values, or ``record:=true`` without a recorder node.
    """
    a = parse_arguments(args)
    config = config_dir()
    try:
        model = str(resolve_model(a.model, a.models_dir))
    except ModelError:
        model = a.model
    specs: list[NodeSpec] = []
    if a.sim == 'builtin':
        specs.append(NodeSpec(
            name='simulator_node', executable='simulator_node', module='pilotnet_optimized.nodes.simulator_node',
            param_files=_files(config, 'simulator_node'),
            # The run ends with the laps (or a failure): the simulator exits and takes the graph down with it.
            parameters={'circuit': a.circuit, 'laps': a.laps, 'realtime': a.realtime, 'on_end': 'exit'},
            env=dict(GRAPH_ENV), ends_run=True, end_codes=(3,)))
    specs.append(NodeSpec(
        name='inference_node', executable='inference_node', module='pilotnet_optimized.nodes.inference_node',
        param_files=_files(config, 'inference_node'),
        # Both simulators publish /clock: stamps, timing and logs are in simulated time.
        parameters={'model_path': model, 'models_dir': a.models_dir, 'backend': a.backend,
                    'num_threads': a.num_threads, 'use_sim_time': True},
        env=dict(GRAPH_ENV)))
    for planned in PLANNED_NODES:
        if not planned.when(a):
            continue
        if importlib.util.find_spec(planned.module) is None:
            if planned.required_when_asked:
                raise PilotnetError(f'{planned.name} is not part of this version yet: run with record:=false')
            continue
        specs.append(NodeSpec(name=planned.name, executable=planned.name, module=planned.module,
                              param_files=_files(config, planned.name), parameters={'use_sim_time': True},
                              env=dict(GRAPH_ENV)))
    return specs


def _files(config: Path, node: str) -> tuple[str, ...]:
    path = config / f'{node}.yaml'
    return (str(path),) if path.is_file() else ()
