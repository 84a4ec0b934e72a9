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
The graph description, the launch file built from it.

The config files and the runner's command lines: one description, two launchers, no drift.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
import importlib.util
import json
import os
from pathlib import Path
import re
import sys
import types
from typing import Any

from pilotnet_optimized.errors import ModelError, PilotnetError
from pilotnet_optimized.nodes.dds import config_dir, PACKAGE
from pilotnet_optimized.nodes.graph import (ARGUMENTS, describe_graph, output_dir_of,
                                            resolve_output_dir, ros_arg_value)
from pilotnet_optimized.nodes.runner import add_arguments, parse_assignments, run
from pilotnet_optimized.store import resolve_model
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILE = str(ROOT / 'config' / 'fastdds_shm.xml')
SHM_ENV = {'FASTDDS_DEFAULT_PROFILES_FILE': PROFILE}
LAUNCH_FILE = ROOT / 'launch' / 'sim.launch.py'
# output_dir given: its default holds the time, which two calls a second apart would see
# differently.
ARG_SETS = [
    {'model': '/m/a.tflite', 'output_dir': '/r/one'},
    {
        'model': '/m/a.tflite',
        'circuit': 'hairpins',
        'laps': '2',
        'realtime': 'true',
        'num_threads': '4',
        'backend': 'litert',
        'record': 'true',
        'output_dir': '/r/two',
    },
    {'model': '/m/a.tflite', 'sim': 'gazebo', 'output_dir': '/r/three'},
]
NOW = datetime(2025, 1, 31, 12, 0, 5, tzinfo=timezone.utc)


# -- describe_graph -------------------------------------------------------------------------------
def test_builtin_graph_is_metrics_simulator_then_inference_node():
    specs = describe_graph(
        {'model': '/m/a.tflite', 'circuit': 'many_curves', 'laps': '3', 'output_dir': '/r/x'}
    )
    # The observers first: listening before the run starts, and stopped last.
    assert [s.name for s in specs] == ['metrics_node', 'simulator_node', 'inference_node']
    metrics, sim, brain = specs
    assert sim.ends_run and not brain.ends_run and not metrics.ends_run
    # The simulator waits for the observer started before it (metrics_node), not only for the
    # brain.
    assert sim.parameters == {
        'circuit': 'many_curves',
        'laps': 3,
        'realtime': False,
        'on_end': 'exit',
        'wait_for_observers': 1,
    }
    assert (
        brain.parameters['model_path'] == '/m/a.tflite'
        and brain.parameters['use_sim_time'] is True
    )
    # the simulator is the clock: it must not wait on itself
    assert 'use_sim_time' not in sim.parameters
    assert metrics.parameters == {
        'circuit': 'many_curves',
        'output_dir': '/r/x',
        'use_sim_time': True,
    }
    for spec in specs:
        assert spec.env == SHM_ENV
        assert spec.param_files == (str(ROOT / 'config' / f'{spec.name}.yaml'),)
        assert importlib.util.find_spec(spec.module) is not None


def test_gazebo_graph_has_no_simulator():
    specs = describe_graph({'model': '/m/a.tflite', 'sim': 'gazebo'})
    assert [s.name for s in specs] == ['metrics_node', 'inference_node']
    assert all(s.parameters['use_sim_time'] is True for s in specs)


def test_executables_are_the_console_scripts_of_setup_py():
    scripts = dict(re.findall(r"'(\w+) = ([\w.]+):main'", (ROOT / 'setup.py').read_text()))
    for spec in describe_graph({'model': '/m/a.tflite', 'record': 'true'}):
        assert scripts[spec.executable] == spec.module


@pytest.mark.parametrize(
    'args, message',
    [
        (
            {'model': 'x', 'circiut': 'simple'},
            "unknown argument 'circiut' (did you mean 'circuit'?)",
        ),
        ({'model': 'x', 'sim': 'carla'}, 'sim:=carla: choose one of builtin, gazebo'),
        ({'model': 'x', 'num_threads': '0'}, 'num_threads:=0: expected 1..64'),
        ({'model': 'x', 'laps': 'two'}, 'laps:=two: expected a whole number'),
        ({'model': 'x', 'realtime': 'maybe'}, 'realtime:=maybe: choose one of true, false'),
        ({'model': 'x', 'record': 'yes'}, 'record:=yes: choose one of true, false'),
        (
            {'model': 'x', 'output_dir': 'runs/{date}'},
            'output_dir:=runs/{date}: the only placeholder is {time}',
        ),
    ],
)
def test_bad_arguments_are_one_clear_error(args, message):
    with pytest.raises(PilotnetError) as err:
        describe_graph(args)
    assert message in str(err.value)


def test_record_adds_the_recorder_and_one_output_folder_for_all(tmp_path):
    specs = describe_graph({'model': 'x', 'record': 'true', 'output_dir': str(tmp_path / 'run')})
    assert [s.name for s in specs] == [
        'metrics_node',
        'recorder_node',
        'simulator_node',
        'inference_node',
    ]
    recorder = specs[1]
    assert recorder.parameters == {'output_dir': str(tmp_path / 'run'), 'use_sim_time': True}
    assert recorder.env == SHM_ENV
    assert recorder.param_files == (str(ROOT / 'config' / 'recorder_node.yaml'),)
    assert output_dir_of(specs) == str(tmp_path / 'run') == specs[0].parameters['output_dir']
    assert [s.name for s in describe_graph({'model': 'x', 'record': 'false'})] == [
        'metrics_node', 'simulator_node', 'inference_node']
    # Two observers now: the simulator starts the run once both are subscribed.
    assert specs[2].parameters['wait_for_observers'] == 2


def test_output_dir_time_template(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ARGUMENTS['output_dir'].default == 'runs/{time}'
    first = resolve_output_dir('runs/{time}', NOW)
    # absolute: every node writes to the same place
    assert first == tmp_path / 'runs' / '20250131T120005Z'
    first.mkdir(parents=True)
    # no clash
    assert resolve_output_dir('runs/{time}', NOW) == tmp_path / 'runs' / '20250131T120005Z-2'
    assert resolve_output_dir('out/fixed') == tmp_path / 'out' / 'fixed'
    # '' (a node run on its own) = default
    assert resolve_output_dir('') == resolve_output_dir('runs/{time}')
    # The same arguments and time give the same graph.
    args = {'model': 'x', 'record': 'true', 'output_dir': 'res/drq-{time}'}
    assert describe_graph(args, now=NOW) == describe_graph(args, now=NOW)
    assert output_dir_of(describe_graph(args, now=NOW)) == str(
        tmp_path / 'res' / 'drq-20250131T120005Z'
    )


# -- model names ----------------------------------------------------------------------------------
def test_model_names_resolve_in_the_models_folder(tmp_path, monkeypatch):
    folder = tmp_path / 'models' / 'optimized'
    folder.mkdir(parents=True)
    for name in ('drq.tflite', 'fp16.tflite', 'keras.keras', 'int8.onnx'):
        (folder / name).write_bytes(b'x')
    (folder / 'sm').mkdir()
    (folder / 'sm' / 'saved_model.pb').write_bytes(b'x')
    monkeypatch.chdir(tmp_path)
    # default models_dir, relative to cwd
    assert resolve_model('drq') == (folder / 'drq.tflite').resolve()
    assert resolve_model('int8', folder) == (folder / 'int8.onnx').resolve()
    assert resolve_model('sm', folder) == (folder / 'sm').resolve()
    # a path
    assert resolve_model('models/optimized/fp16.tflite') == (folder / 'fp16.tflite').resolve()
    # The manifest of `pilotnet optimize` decides when it names the method.
    (folder / 'manifest.json').write_text(
        json.dumps(
            {
                'model': 'pilotnet.keras',
                'methods': {
                    'drq': {'file': 'fp16.tflite', 'status': 'ok'},
                    'keras': {'file': 'keras.keras', 'status': 'failed'},
                },
            }
        )
    )
    assert resolve_model('drq', folder) == (folder / 'fp16.tflite').resolve()
    with pytest.raises(
        ModelError,
        match=r"model 'dqr' not found in .* \(models there: drq, fp16, int8, keras, sm\) "
        r"\(did you mean 'drq'\?\)",
    ):
        resolve_model('dqr', folder)
    with pytest.raises(ModelError, match='model not found: nope/x.tflite'):
        resolve_model('nope/x.tflite', folder)
    with pytest.raises(ModelError, match='no model given'):
        resolve_model('', folder)
    spec = describe_graph({'model': 'drq', 'models_dir': str(folder)})[-1]
    assert spec.parameters['model_path'] == str((folder / 'fp16.tflite').resolve())


# -- config files and --ros-args ------------------------------------------------------------------
def test_config_dir_prefers_the_ament_index_over_the_source_tree_and_the_prefix(
    tmp_path, monkeypatch
):
    """
    A sourced colcon overlay wins.

    A stale ``pip install`` in the interpreter's prefix does not shadow it.
    """
    share = tmp_path / 'install' / 'share' / PACKAGE
    (share / 'config').mkdir(parents=True)
    stale = tmp_path / 'venv'
    (stale / 'share' / PACKAGE / 'config').mkdir(parents=True)
    monkeypatch.setattr(sys, 'prefix', str(stale))

    class PackageNotFoundError(KeyError):
        pass

    index = {PACKAGE: str(share)}

    def get_package_share_directory(name: str) -> str:
        if name not in index:
            raise PackageNotFoundError(name)
        return index[name]

    fake = types.ModuleType('ament_index_python.packages')
    fake.PackageNotFoundError = PackageNotFoundError
    fake.get_package_share_directory = get_package_share_directory
    monkeypatch.setitem(sys.modules, 'ament_index_python.packages', fake)
    assert config_dir() == share / 'config'
    index.clear()   # not in the index: a checkout's own config/ (editable installs, tests)
    assert config_dir() == ROOT / 'config'

    def unsourced(name: str) -> str:
        raise OSError("Environment variable 'AMENT_PREFIX_PATH' is not set or empty")

    fake.get_package_share_directory = unsourced
    assert config_dir() == ROOT / 'config'
    # no ament_index_python at all
    monkeypatch.setitem(sys.modules, 'ament_index_python.packages', None)
    assert config_dir() == ROOT / 'config'


@pytest.mark.parametrize(
    'node', ['inference_node', 'simulator_node', 'metrics_node', 'recorder_node']
)
def test_config_files_set_declared_parameters_with_their_types(node):
    module = pytest.importorskip(f'pilotnet_optimized.nodes.{node}', reason='needs rclpy')
    data = yaml.safe_load((ROOT / 'config' / f'{node}.yaml').read_text())
    assert list(data) == [node]
    params = data[node]['ros__parameters']
    declared = {p.name: p for p in module.PARAMETERS}
    assert set(params) <= set(declared), set(params) - set(declared)
    for name, value in params.items():
        # rcl types a YAML value by how it is written (1.0 is a double, 1 an integer): a mismatch
        # stops the node.
        assert type(value) is type(declared[name].default), name
        if declared[name].choices:
            assert value in declared[name].choices
        if name.endswith('topic') or name == 'topics':
            # The file shows the defaults (nodes.topics), for the reader: it must not point
            # elsewhere.
            assert value == declared[name].default, name
    overridden = {k for s in describe_graph({'model': 'x', 'record': 'true'}) if s.name == node
                  for k in s.parameters}
    assert overridden - {'use_sim_time'} <= set(declared)


@pytest.mark.parametrize(
    'value',
    [
        'simple',
        'true',
        '1',
        '0.5',
        'a: b',
        "it's",
        '/m/x y.tflite',
        '',
        ' x',
        'null',
        '~',
        3,
        0.5,
        True,
        False,
    ],
)
def test_ros_arg_values_read_back_as_the_same_value(value):
    assert yaml.safe_load(ros_arg_value(value)) == value


def test_ros_args_of_a_spec():
    spec = next(
        s
        for s in describe_graph({'model': '/m/a.tflite', 'realtime': 'true'})
        if s.name == 'simulator_node'
    )
    args = spec.ros_args()
    assert args[:3] == ['--ros-args', '-r', '__node:=simulator_node']
    assert args[3:5] == ['--params-file', str(ROOT / 'config' / 'simulator_node.yaml')]
    assert '-p' in args and 'realtime:=true' in args and 'circuit:=simple' in args
    assert spec.command('py')[:3] == ['py', '-m', 'pilotnet_optimized.nodes.simulator_node']


def test_users_environment_wins_over_the_graphs():
    spec = describe_graph({'model': 'x'})[0]
    assert spec.env_additions({}) == SHM_ENV
    # Any DDS setting of the user's own replaces all of ours (a builtin mode and our profile would
    # conflict).
    assert spec.env_additions({'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'}) == {}
    assert spec.env_additions({'FASTRTPS_DEFAULT_PROFILES_FILE': '/my/humble.xml'}) == {}
    # set but empty: not a setting
    assert spec.env_additions({'FASTDDS_BUILTIN_TRANSPORTS': ''}) == SHM_ENV


def test_the_dds_profile_is_valid_xml_for_shared_memory_with_whole_frames():
    import xml.etree.ElementTree as ET
    ns = {'d': 'http://www.eprosima.com'}
    root = ET.parse(PROFILE).getroot()
    shm = root.find('.//d:transport_descriptor', ns)
    assert shm.find('d:type', ns).text == 'SHM'
    frame = 640 * 480 * 3
    # a frame is never fragmented
    assert int(shm.find('d:maxMessageSize', ns).text) > frame
    # and several fit in the segment
    assert int(shm.find('d:segment_size', ns).text) >= 4 * frame
    participant = root.find('.//d:participant', ns)
    assert participant.get('is_default_profile') == 'true'
    assert participant.find('.//d:useBuiltinTransports', ns).text == 'false'


# -- the launch file ------------------------------------------------------------------------------
class _Fake:

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Fake):

    def perform(self, context: dict[str, str]) -> str:
        return context[self.args[0]]


def _fake_launch(monkeypatch: pytest.MonkeyPatch) -> dict[str, type]:
    """
    Just enough of launch and launch_ros to build the description.

    Each class records its arguments.
    """
    classes = {
        name: type(name, (_Fake,), {})
        for name in (
            'LaunchDescription',
            'DeclareLaunchArgument',
            'OpaqueFunction',
            'Shutdown',
            'Node',
        )
    }
    classes['LaunchConfiguration'] = _LaunchConfiguration
    layout = {
        'launch': ['LaunchDescription'],
        'launch.actions': ['DeclareLaunchArgument', 'OpaqueFunction', 'Shutdown'],
        'launch.substitutions': ['LaunchConfiguration'],
        'launch_ros': [],
        'launch_ros.actions': ['Node'],
    }
    for module_name, names in layout.items():
        module = types.ModuleType(module_name)
        for name in names:
            setattr(module, name, classes[name])
        monkeypatch.setitem(sys.modules, module_name, module)
    return classes


def _load_launch_file() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location('sim_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_file_imports_without_launch_installed(monkeypatch):
    for name in ('launch', 'launch_ros'):
        # makes `import launch` fail, as on a machine without a distro
        monkeypatch.setitem(sys.modules, name, None)
    module = _load_launch_file()
    with pytest.raises(ImportError):
        module.generate_launch_description()


def test_launch_file_declares_the_graph_arguments(monkeypatch):
    fake = _fake_launch(monkeypatch)
    description = _load_launch_file().generate_launch_description()
    entities = description.args[0]
    declared = [e for e in entities if isinstance(e, fake['DeclareLaunchArgument'])]
    assert [d.args[0] for d in declared] == list(ARGUMENTS)
    for d in declared:
        arg = ARGUMENTS[d.args[0]]
        # model:= is required; start:= defaults to '' (the circuit's own start).
        assert d.kwargs.get('default_value') == (None if arg.required else arg.default)
        assert d.kwargs.get('choices') == (list(arg.choices) if arg.choices else None)
        assert d.kwargs['description'] == arg.description
    assert isinstance(entities[-1], fake['OpaqueFunction'])


@pytest.mark.parametrize('args', ARG_SETS)
def test_launch_file_starts_what_the_runner_starts(monkeypatch, args):
    fake = _fake_launch(monkeypatch)
    entities = _load_launch_file().generate_launch_description().args[0]
    context = {d.args[0]: d.kwargs.get('default_value') for d in entities
               if isinstance(d, fake['DeclareLaunchArgument'])}
    context.update(args)
    nodes = entities[-1].kwargs['function'](context)
    specs = describe_graph(args)
    assert len(nodes) == len(specs)
    for node, spec in zip(nodes, specs):
        assert isinstance(node, fake['Node'])
        kw = dict(node.kwargs)
        on_exit = kw.pop('on_exit', None)
        assert kw == {
            'package': PACKAGE,
            'executable': spec.executable,
            'name': spec.name,
            'output': 'screen',
            'parameters': [*spec.param_files, spec.parameters],
            'remappings': list(spec.remappings),
            'additional_env': spec.env_additions(os.environ),
        }
        assert (on_exit is not None) == spec.ends_run
        if on_exit is not None:
            assert isinstance(on_exit, fake['Shutdown'])


def test_launch_file_with_real_launch_ros():
    pytest.importorskip(
        'launch_ros',
        reason=(
            'launch_ros comes with a ROS 2 distro (not on PyPI); the launch file is '
            'checked against stubs above'
        ),
    )
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch_ros.actions import Node

    description = _load_launch_file().generate_launch_description()
    context = LaunchContext()
    context.launch_configurations['model'] = '/m/a.tflite'
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.execute(context)
    opaque = [e for e in description.entities if isinstance(e, OpaqueFunction)]
    nodes = [a for o in opaque for a in o.execute(context)]
    assert all(isinstance(n, Node) for n in nodes)
    assert [n.node_executable for n in nodes] == [
        s.executable for s in describe_graph({'model': '/m/a.tflite'})
    ]


# -- the runner's arguments -----------------------------------------------------------------------
def test_parse_assignments():
    parsed = parse_assignments(['model:=drq', 'laps:=2', 'circuit:=a:=b'])
    assert parsed == {'model': 'drq', 'laps': '2', 'circuit': 'a:=b'}
    with pytest.raises(PilotnetError, match="expected NAME:=VALUE .* got 'model=drq'"):
        parse_assignments(['model=drq'])


def test_dry_run_prints_each_nodes_command(tmp_path, capsys):
    model = tmp_path / 'm.tflite'
    model.write_bytes(b'x')
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out_dir = tmp_path / 'run'
    args = parser.parse_args(
        [f'model:={model}', 'realtime:=true', f'output_dir:={out_dir}', '--dry-run']
    )
    assert run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    specs = describe_graph({'model': str(model), 'realtime': 'true', 'output_dir': str(out_dir)})
    assert len(lines) == len(specs)
    for line, spec in zip(lines, specs):
        assert line.startswith(
            f'{spec.name}: FASTDDS_DEFAULT_PROFILES_FILE={PROFILE} {sys.executable} -m '
            f'{spec.module}'
        )
        assert ' '.join(spec.ros_args()) in line
