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
Where runs start, which circuits are test circuits, and the compare over several circuits.

Behavior Metrics' perfect laps start at their worlds' spawn poses; ``--start`` (and the ``start``
launch argument) starts any circuit anywhere on it; test circuits are kept out of training; one
``pilotnet compare --circuits`` run gives the generalisation table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pilotnet_optimized.cli import main
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.evaluate.generalisation import (
    circuit_rows,
    compare_on_circuits,
    summarise,
    write_generalisation,
)
from pilotnet_optimized.nodes.graph import describe_graph, parse_arguments
from pilotnet_optimized.sim import get_circuit
from pilotnet_optimized.sim.episodes import drive_expert
from pilotnet_optimized.sim.simulation import Simulator
from pilotnet_optimized.sim.spawn import parse_start, spawn_pose_for, SPAWN_POSES
from pilotnet_optimized.sim.splits import check_not_test, split_circuits, split_of_circuit
import pytest

BAGS = Path(__file__).resolve().parents[2] / 'shared' / 'behavior_metrics' / 'perfect_bags'
needs_bags = pytest.mark.skipif(
    not BAGS.is_dir(), reason=f'Behavior Metrics perfect laps not found at {BAGS}'
)
WORLDS = ('simple-circuit', 'montmelo', 'montreal', 'nurburgring')


# -- start poses -------------------------------------------------------------------------------
@needs_bags
@pytest.mark.parametrize('world', WORLDS)
def test_a_behavior_metrics_bag_starts_at_its_worlds_spawn_pose(world):
    bag = BAGS / f'lap-{world}.bag'
    circuit = get_circuit(str(bag))
    spawn = SPAWN_POSES[f'lap-{world}']
    assert circuit.start_pose == pytest.approx(spawn)
    # The line is re-indexed to begin beside the spawn pose, so laps and progress count from it.
    assert np.hypot(*(circuit.centreline[0] - spawn[:2])) < 0.5
    sim = Simulator(circuit)
    assert (sim.state.x, sim.state.y, sim.state.yaw) == pytest.approx(spawn)
    # On a straight, heading along the road (the bag's first point may be at a hairpin apex).
    assert abs(np.angle(np.exp(1j * (spawn[2] - circuit.heading[0])))) < 0.15
    run = drive_expert(circuit, laps=1)
    assert run.to_dict()['end_reason'] == 'laps_done'
    assert run.trajectory.xy[0] == pytest.approx(spawn[:2])


@needs_bags
def test_start_overrides_the_spawn_pose_and_applies_to_any_circuit():
    bag = str(BAGS / 'lap-nurburgring.bag')
    plain = get_circuit(bag)
    x, y, _ = plain.pose_at(100.0)
    moved = get_circuit(bag, start=f'{x},{y},0.5')
    assert moved.start_pose == pytest.approx((x, y, 0.5))
    assert np.hypot(*(moved.centreline[0] - (x, y))) < 0.2
    simple = get_circuit('simple')
    x, y, yaw = simple.pose_at(200.0, lateral=1.0)
    started = get_circuit('simple', start=(x, y, yaw))
    assert Simulator(started).state.x == pytest.approx(x)
    assert get_circuit('simple').start_pose == simple.start_pose   # the cached one is untouched
    assert drive_expert(started, laps=1).to_dict()['end_reason'] == 'laps_done'


def test_bad_starts_are_one_clear_error():
    assert parse_start('') is None and parse_start(None) is None
    assert parse_start(' 1, -2.5 ,3 ') == (1.0, -2.5, 3.0)
    for text in ('1,2', '1,2,3,4', 'a,b,c', '1,nan,0'):
        with pytest.raises(PilotnetError, match='x,y,yaw'):
            parse_start(text)
    with pytest.raises(PilotnetError, match='from the centre line'):
        get_circuit('simple', start='500,500,0')


def test_spawn_pose_by_bag_name_only():
    assert spawn_pose_for('/any/where/lap-montreal.bag') == SPAWN_POSES['lap-montreal']
    assert spawn_pose_for('runs/x/lap-montmelo') == SPAWN_POSES['lap-montmelo']
    assert spawn_pose_for('my-lap.bag') is None and spawn_pose_for('simple') is None


def test_the_start_launch_argument_reaches_simulator_and_metrics():
    specs = {s.name: s for s in describe_graph({'circuit': 'simple', 'start': '1, 2, 0.25'})}
    assert 'start' not in describe_graph({'circuit': 'simple'})[0].parameters
    assert specs['simulator_node'].parameters['start'] == '1,2,0.25'
    assert specs['metrics_node'].parameters['start'] == '1,2,0.25'
    assert parse_arguments({}).start == ''
    with pytest.raises(PilotnetError, match='x,y,yaw'):
        parse_arguments({'start': '1,2'})


def test_drive_expert_cli_takes_a_start(capsys):
    circuit = get_circuit('simple')
    x, y, yaw = circuit.pose_at(300.0)
    code = main(['drive-expert', '--circuit', 'simple', f'--start={x},{y},{yaw}', '--json'])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out['end_reason'] == 'laps_done'


# -- splits ------------------------------------------------------------------------------------
def test_splits_keep_test_circuits_apart():
    assert split_of_circuit('simple') == 'train' and split_of_circuit('long_fast') == 'test'
    assert split_of_circuit('gen:5') == 'train'
    assert split_of_circuit('gen:10005') == 'val' and split_of_circuit('gen:20005') == 'test'
    assert split_of_circuit('/data/lap-montreal.bag') == 'test'
    assert split_of_circuit('my_track.csv') is None
    check_not_test(['simple', 'gen:3', 'my_track.csv'], 'training data')
    with pytest.raises(PilotnetError, match='lap-nurburgring.bag is a test circuit'):
        check_not_test(['simple', 'x/lap-nurburgring.bag'], 'calibration data')


def test_the_test_split_lists_builtin_generated_and_behavior_metrics_circuits(tmp_path):
    (tmp_path / 'lap-montreal.bag').write_bytes(b'')
    (tmp_path / 'other.bag').write_bytes(b'')
    names = split_circuits('test', tmp_path, generated=1)
    assert 'long_fast' in names and 'gen:20000' in names
    assert str(tmp_path / 'lap-montreal.bag') in names
    assert not any('other.bag' in n for n in names)
    assert not any(split_of_circuit(n) != 'test' for n in names)
    assert not any(split_of_circuit(n) == 'test' for n in split_circuits('train', generated=3))
    with pytest.raises(PilotnetError, match='not found'):
        split_circuits('test', tmp_path / 'missing')


# -- the compare over several circuits ----------------------------------------------------------
def test_compare_over_circuits_gives_a_row_per_model_and_circuit(tiny_driver, tmp_path):
    models = [str(tiny_driver['float']), str(tiny_driver['dynamic'])]
    lines: list[str] = []
    comparisons = compare_on_circuits(models, ['simple', 'hairpins'], progress=lines.append)
    assert [c.circuit.name for c in comparisons] == ['simple', 'hairpins']
    rows = circuit_rows(comparisons)
    assert [(r['model'], r['circuit']) for r in rows] == [
        ('float', 'simple'), ('dynamic', 'simple'), ('float', 'hairpins'), ('dynamic', 'hairpins')]
    # Each row is that circuit's own comparison row.
    assert rows[2]['percentage_completed'] == comparisons[1].rows[0].percentage_completed
    summary = summarise(rows)
    done = {s['model']: s['circuits_completed'] for s in summary}
    assert summary[0]['completed'] == f"{done['float']} of 2"
    paths = write_generalisation(comparisons, tmp_path)
    report = json.loads(paths['json'].read_text())
    assert report['circuits'] == ['simple', 'hairpins'] and len(report['rows']) == 4
    assert paths['png'].stat().st_size > 10_000
    assert (tmp_path / 'hairpins' / 'compare.json').is_file()
    assert any('[circuit 2/2] hairpins' in line for line in lines)


def test_compare_cli_over_circuits(tiny_driver, tmp_path, capsys):
    code = main(['compare', '--models', str(tiny_driver['float']),
                 '--circuits', 'simple,long_fast', '--out', str(tmp_path), '--json'])
    out = json.loads(capsys.readouterr().out)
    assert code == 3   # the tiny model leaves the road
    assert [r['circuit'] for r in out['rows']] == ['simple', 'long_fast']
    assert out['summary'][0]['completed'] == '0 of 2'
    assert main(['compare', '--models', 'x', '--circuits', 'simple', '--start', '1,2,3']) == 2


def test_training_and_calibration_refuse_test_circuit_frames(tiny_driver, tmp_path):
    import shutil

    from pilotnet_optimized.models.data import folders_of_test_circuits
    from pilotnet_optimized.models.train import train
    from pilotnet_optimized.optimize.pipeline import optimize_model
    from pilotnet_optimized.sim.dataset import write_dataset
    write_dataset(get_circuit('simple'), 4, tmp_path / 'ok', seed=0, progress=False)
    # A dataset whose meta says it is of a Behavior Metrics world, however its split was recorded.
    shutil.copytree(tmp_path / 'ok', tmp_path / 'bm')
    meta = json.loads((tmp_path / 'bm' / 'meta.json').read_text())
    (tmp_path / 'bm' / 'meta.json').write_text(
        json.dumps({**meta, 'circuit': 'lap-montreal', 'split': None}))
    assert folders_of_test_circuits([tmp_path]) == [str(tmp_path / 'bm')]
    with pytest.raises(PilotnetError, match='refusing to train on test-split data'):
        train([tmp_path], tmp_path / 'm.keras')
    with pytest.raises(PilotnetError, match='refusing to calibrate or fine-tune'):
        optimize_model(tiny_driver['float'].parent / 'tiny.keras', tmp_path / 'out',
                       methods=['int8'], train_data=[tmp_path / 'bm'])


# -- on-policy rounds in training ----------------------------------------------------------------
def test_train_with_on_policy_rounds_learns_from_the_frames_it_drove(tmp_path):
    from pilotnet_optimized.models.train import train, TrainConfig
    from pilotnet_optimized.sim.dataset import write_dataset
    write_dataset(get_circuit('simple'), 24, tmp_path / 'data', seed=0, progress=False)
    cfg = TrainConfig(epochs=1, batch_size=8, head_units=4, on_policy_rounds=2,
                      on_policy_frames=6, on_policy_epochs=1)
    result = train([tmp_path / 'data'], tmp_path / 'm.keras', cfg, verbose=0)
    assert result.on_policy_frames == 12   # 2 rounds x 6 frames x 1 circuit
    assert result.train_frames == 24 - result.val_frames + 12   # a 10 % holdout, then the rounds
    assert len(result.history['val_loss']) == 3   # one epoch each: the first fit, two rounds
    report = json.loads((tmp_path / 'm.keras.train.json').read_text())
    assert report['config']['on_policy_rounds'] == 2
    assert report['train_data'].count('on-policy:simple') == 2
    with pytest.raises(PilotnetError, match='on-policy rounds -1'):
        train([tmp_path / 'data'], tmp_path / 'n.keras', TrainConfig(on_policy_rounds=-1))


def test_train_init_model_epochs_0_continues_with_focused_rounds_only(tmp_path):
    from pilotnet_optimized.models.train import train, TrainConfig
    from pilotnet_optimized.sim.dataset import write_dataset
    write_dataset(get_circuit('simple'), 24, tmp_path / 'data', seed=0, progress=False)
    first = train([tmp_path / 'data'], tmp_path / 'm.keras',
                  TrainConfig(epochs=1, batch_size=8, head_units=4), verbose=0)
    assert first.on_policy_frames == 0
    # the CLI: continue that model, no first fit, one round focused on the tight bends
    rc = main(['train', '--data', str(tmp_path / 'data'), '--out', str(tmp_path / 'c.keras'),
               '--init-model', str(tmp_path / 'm.keras'), '--epochs', '0', '--batch-size', '8',
               '--on-policy-rounds', '1', '--on-policy-frames', '6', '--on-policy-focus', '1',
               '--json'])
    assert rc == 0
    report = json.loads((tmp_path / 'c.keras.train.json').read_text())
    assert report['config']['epochs'] == 0 and report['config']['on_policy_focus'] == 1.0
    assert 1 <= len(report['result']['history']['val_loss']) <= 3   # only the round's epochs
    assert report['train_data'].count('on-policy:simple') == 1
    # epochs 0 without a model to continue is refused, in one line
    with pytest.raises(PilotnetError, match='epochs 0'):
        train([tmp_path / 'data'], tmp_path / 'n.keras', TrainConfig(epochs=0, on_policy_rounds=1))
    with pytest.raises(PilotnetError, match='focus'):
        train([tmp_path / 'data'], tmp_path / 'n.keras', TrainConfig(on_policy_focus=2.0))
