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
The seed's simulation table.

Several models, each driving the same circuit in the loop, side by side.

``pilotnet compare --models baseline,dynamic --circuit simple`` drives every model with
:func:`~pilotnet_optimized.sim.episodes.drive_pilot`: ROS-free and in lock-step (each camera frame
waits for the command that answers it), so the driving figures (frames, end reason, % completed,
deviation, lap time) are the same on any machine and under any load; only the timing columns
measure the machine.

One row per model: total (simulated) time, lap time, average speed, percentage completed, position
deviation (Behavior Metrics' figures against the circuit's centre line), inference time (mean, p50,
p99 of the model call alone, as Behavior Metrics times it), the brain's rate and the loop's rate,
the real-time factor, and size and inference ratios against the first model. Writes ``compare.md``,
``compare.json`` and ``compare.png`` (each model's trajectory on the circuit).

Timing definitions (also in the report's header):

- inference ms: the model call only (``predict_normalised`` on the preprocessed frame), after a
  short warm-up;
- brain ms: one whole brain step (preprocess + inference + turning the outputs into v, w);
- brain Hz = 1000 / mean brain ms: the rate the brain alone could sustain;
- loop Hz: the measured rate of the whole lock-step loop (camera render + brain + simulation step),
  from the intervals between consecutive frames, so the one-off painting of the circuit texture is
  not in it;
- real-time factor = control period x loop Hz (simulated seconds per wall second of the loop; > 1
  is faster than real time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import dataclasses
from dataclasses import asdict, dataclass, field
import json
from pathlib import Path
import platform
import sys
import time
from typing import Any, TYPE_CHECKING

import numpy as np
from pilotnet_optimized.argtypes import positive_int
from pilotnet_optimized.backends.timing import percentiles, timed_predict
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.evaluate.report import Column, machine_description
from pilotnet_optimized.evaluate.report import markdown_table as rows_markdown
from pilotnet_optimized.evaluate.report import versions, write_report_files
from pilotnet_optimized.sim.splits import DEFAULT_PERFECT_BAGS, PERFECT_BAGS_VAR, SPLIT_NAMES
from pilotnet_optimized.store import DEFAULT_MODELS_DIR, resolve_model, split_names

if TYPE_CHECKING:
    import argparse

    from pilotnet_optimized.backends import Backend
    from pilotnet_optimized.sim.circuit import Circuit

__all__ = [
    'CompareRow',
    'Comparison',
    'COLUMNS',
    'compare_models',
    'markdown_table',
    'write_reports',
    'exit_code',
    'run',
    'add_arguments',
    'TIMING_NOTE',
    'header_text',
    'report_and_exit',
]

#: How the timing columns are measured, for the report header.
TIMING_NOTE = (
    'inference = the model call only; brain = preprocess + inference + postprocess per frame;'
    ' brain Hz = 1000 / mean brain ms (what the brain alone could sustain); loop Hz = measured'
    ' rate of the whole lock-step loop (render + brain + simulation step, one-off set-up'
    ' excluded); real-time factor = simulated s / wall s of that loop'
)
WARMUP_CALLS = 5


@dataclass
class CompareRow:
    """
    One model's line of the table.

    ``None`` where a figure does not apply or the model did not run.
    """

    name: str
    file: str
    backend: str = '-'
    precision: str = '-'
    size_mb: float | None = None
    status: str = 'ok'
    error: str | None = None
    end_reason: str | None = None
    completed: bool = False
    frames: int | None = None
    sim_seconds: float | None = None
    lap_seconds: float | None = None
    average_speed: float | None = None
    percentage_completed: float | None = None
    laps_completed: int | None = None
    completed_distance_m: float | None = None
    deviation_mean_m: float | None = None
    deviation_max_m: float | None = None
    deviation_bm: float | None = None
    preprocess_mean_ms: float | None = None
    inference_mean_ms: float | None = None
    inference_p50_ms: float | None = None
    inference_p99_ms: float | None = None
    brain_mean_ms: float | None = None
    brain_p99_ms: float | None = None
    brain_hz: float | None = None
    loop_hz: float | None = None
    real_time_factor: float | None = None
    wall_seconds: float | None = None
    size_ratio_vs_first: float | None = None
    speedup_vs_first: float | None = None


@dataclass
class Comparison:
    """The table plus what the plot needs (the circuit and each model's driven x, y)."""

    header: dict[str, Any]
    rows: list[CompareRow]
    circuit: Circuit
    trajectories: dict[str, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready report: the header, then the rows."""
        return {**self.header, 'rows': [asdict(r) for r in self.rows]}


class _TimedPilot:
    """
    A backend as a :class:`~pilotnet_optimized.sim.episodes.Pilot` that times its stages.

    Exactly :meth:`Backend.predict`, split by
    :func:`~pilotnet_optimized.backends.timing.timed_predict` (as the inference node splits it) so
    that the model call is timed on its own; the commands are the same bit for bit.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.preprocess_ms: list[float] = []
        self.inference_ms: list[float] = []
        self.starts: list[float] = []

    def predict(self, image_rgb: np.ndarray) -> tuple[float, float]:
        self.starts.append(time.perf_counter())
        (v, w), preprocess_ms, inference_ms = timed_predict(self.backend, image_rgb)
        self.preprocess_ms.append(preprocess_ms)
        self.inference_ms.append(inference_ms)
        return float(v), float(w)

    def warm_up(self, calls: int = WARMUP_CALLS) -> None:
        """
        Make a few untimed model calls.

        The first ones allocate and are slow in every runtime.
        """
        batch = np.zeros((1, *self.backend.preprocessing.input_shape), np.float32)
        for _ in range(calls):
            self.backend.predict_normalised(batch)


def _model_name(text: str) -> str:
    path = Path(text)
    return path.stem if path.suffix else (path.name or text)


def _load(name: str, text: str, models_dir: str | Path, backend: str, threads: int,
          ) -> tuple[Backend | None, CompareRow]:
    from pilotnet_optimized.backends import load_backend
    try:
        path = resolve_model(text, models_dir)
    except PilotnetError as err:
        return None, CompareRow(name, text, status='failed', error=str(err))
    try:
        loaded = load_backend(path, backend, num_threads=threads)
    except PilotnetError as err:
        return None, CompareRow(name, path.name, backend=backend, status='failed', error=str(err))
    info = loaded.describe()
    return loaded, CompareRow(
        name,
        path.name,
        backend=info['backend'],
        precision=info['precision'],
        size_mb=info['size_mb'],
    )


def _fill(row: CompareRow, run: Any, pilot: _TimedPilot, laps: int, control_period: float) -> None:
    """Copy a finished run's figures into ``row``."""
    res, m = run.result, run.result.metrics
    row.end_reason = str(res.end_reason)
    row.completed = m.percentage_completed >= 100 * laps - 1e-6
    row.frames = int(len(run.inference_ms))
    row.sim_seconds = res.sim_seconds
    row.lap_seconds = m.lap_seconds
    row.average_speed = m.average_speed
    row.percentage_completed = m.percentage_completed
    row.laps_completed = m.laps_completed
    row.completed_distance_m = m.completed_distance
    d = m.to_dict()  # NaN (a run of one pose) -> None
    row.deviation_mean_m = d['position_deviation_mean_m']
    row.deviation_max_m = d['position_deviation_max_m']
    row.deviation_bm = d['position_deviation_bm']
    row.wall_seconds = res.wall_seconds
    if not len(pilot.inference_ms):
        return
    row.preprocess_mean_ms = float(np.mean(pilot.preprocess_ms))
    for key, value in percentiles(pilot.inference_ms, (50, 99), 'inference_', mean=True).items():
        setattr(row, key, value)
    # drive_pilot times the whole predict(): the brain's step.
    for key, value in percentiles(run.inference_ms, (99,), 'brain_', mean=True).items():
        setattr(row, key, value)
    row.brain_hz = 1e3 / row.brain_mean_ms if row.brain_mean_ms else None
    if len(pilot.starts) >= 2:
        period = (pilot.starts[-1] - pilot.starts[0]) / (len(pilot.starts) - 1)
    else:  # one frame: the whole run is the best estimate there is
        period = res.wall_seconds
    if period > 0:
        row.loop_hz = 1.0 / period
        row.real_time_factor = control_period / period


def _add_ratios(rows: list[CompareRow]) -> str | None:
    ref = next((r for r in rows if r.status == 'ok' and r.inference_mean_ms), None)
    if ref is None:
        return None
    for r in rows:
        if r.status != 'ok':
            continue
        if r.size_mb and ref.size_mb:
            r.size_ratio_vs_first = ref.size_mb / r.size_mb
        if r.inference_mean_ms and ref.inference_mean_ms:
            r.speedup_vs_first = ref.inference_mean_ms / r.inference_mean_ms
    return ref.name


def compare_models(
    models: Sequence[str | Path],
    circuit: str | Circuit = 'simple',
    laps: int = 1,
    threads: int = 1,
    backend: str = 'auto',
    models_dir: str | Path = DEFAULT_MODELS_DIR,
    timeout_s: float | None = None,
    progress: Callable[[str], None] | None = print,
    start: str | None = None,
) -> Comparison:
    """
    Drive each model round ``circuit`` in lock-step and collect the seed's table.

    A model that cannot be found, loaded or run is a row with ``status='failed'`` and its one-line
    reason; the others still run.

    :param models: model files, SavedModel folders, or names looked up in ``models_dir`` as
        ``pilotnet run`` does.
    :param circuit: a :class:`Circuit` or anything :func:`~pilotnet_optimized.sim.get_circuit`
        accepts.
    :param laps: laps each model should drive.
    :param threads: CPU threads for one inference.
    :param backend: ``'auto'`` or a backend name, for every model.
    :param timeout_s: simulated seconds per lap before a run ends (default: the circuit's own).
    :param progress: called with one line as each model starts and ends (``None``: silent).
    :param start: ``x,y,yaw`` where the car starts, for a circuit given by name (default: the
        circuit's own start; a Behavior Metrics perfect-lap bag's is its world's spawn pose).
    :raises UnknownCircuitError: for an unknown circuit (before any model is loaded).
    :raises PilotnetError: for no models, ``laps`` < 1, a timeout <= 0 or an unknown backend name.
    """
    from pilotnet_optimized.backends import BACKENDS
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.episodes import drive_pilot
    from pilotnet_optimized.sim.simulation import SimConfig
    names = [str(m).strip() for m in models if str(m).strip()]
    if not names:
        raise PilotnetError(
            'no models given (--models a,b,c: files or names in the models folder)'
        )
    if laps < 1:
        raise PilotnetError(f'laps must be at least 1, not {laps}')
    if backend.strip().lower() not in ('auto', *BACKENDS):
        raise PilotnetError(
            f"unknown backend '{backend}': choose one of auto, {', '.join(BACKENDS)}"
        )
    track = get_circuit(circuit, start=start) if isinstance(circuit, str) else circuit
    if timeout_s is not None:
        if timeout_s <= 0:
            raise PilotnetError(f'timeout must be positive, not {timeout_s}')
        track = dataclasses.replace(track, timeout_s=float(timeout_s))
    sim_config = SimConfig()
    say = progress or (lambda _line: None)
    rows: list[CompareRow] = []
    trajectories: dict[str, np.ndarray] = {}
    start = time.perf_counter()
    seen: set[str] = set()
    for k, text in enumerate(names, 1):
        name = base = _model_name(text)
        # the same model twice (or two files of one stem): keep rows and curves apart
        while name in seen:
            name = f'{base}#{k}'
        seen.add(name)
        tag = f'[compare {k}/{len(names)}] {name:<14}'
        t = time.perf_counter()
        loaded, row = _load(name, text, models_dir, backend, threads)
        rows.append(row)
        if loaded is None:
            say(f'{tag} {row.status}: {row.error}')
            continue
        say(
            f'{tag} driving {track.name} ({laps} lap(s), {row.backend}, {row.precision},'
            f' {row.size_mb:.2f} MB)'
        )
        pilot = _TimedPilot(loaded)
        try:
            pilot.warm_up()
            run = drive_pilot(track, pilot, laps=laps, sim_config=sim_config)
        except PilotnetError as err:
            row.status, row.error = 'failed', str(err)
            say(f'{tag} {row.status}: {row.error}')
            continue
        finally:
            loaded.close()
        _fill(row, run, pilot, laps, sim_config.control_period)
        trajectories[name] = run.result.trajectory.xy
        lap = f'lap {row.lap_seconds:.1f} s, ' if row.lap_seconds is not None else ''
        inf = f'{row.inference_mean_ms:.2f} ms' if row.inference_mean_ms is not None else '-'
        say(
            f'{tag} {row.end_reason}: {row.percentage_completed:.1f} % in {row.sim_seconds:.1f} s'
            f' simulated, {lap}{row.average_speed:.2f} m/s, inference {inf}'
            f' ({time.perf_counter() - t:.1f} s)'
        )
    reference = _add_ratios(rows)
    header = {
        'benchmark': 'compare',
        'circuit': track.name,
        'circuit_length_m': round(track.length, 1),
        'timeout_s': track.timeout_s * laps,
        'laps': laps,
        'mode': 'lock-step: each camera frame waits for the command that answers it',
        'control_period_s': sim_config.control_period,
        'threads': threads,
        'backend': backend,
        'warmup_calls': WARMUP_CALLS,
        'timing': TIMING_NOTE,
        'reference': reference,
        'machine': machine_description(),
        'python': platform.python_version(),
        'versions': versions(),
        'seconds': round(time.perf_counter() - start, 1),
    }
    return Comparison(header, rows, track, trajectories)


def exit_code(report: dict[str, Any]) -> int:
    """
    Return the exit code for a comparison report.

    0 when every model completed its laps; 3 when some ran but not every one completed; 1 when
    none ran.
    """
    rows = report['rows']
    if not any(r['status'] == 'ok' for r in rows):
        return 1
    return 0 if all(r['status'] == 'ok' and r['completed'] for r in rows) else 3


#: The table's columns; a missing value prints '-'.
COLUMNS = [
    Column('model', 'name', '{}'),
    Column('backend', 'backend', '{}'),
    Column('precision', 'precision', '{}'),
    Column('size MB', 'size_mb', '{:.2f}'),
    Column('smaller vs 1st', 'size_ratio_vs_first', '{:.1f}x'),
    Column('end', 'end_reason', '{}'),
    Column('frames', 'frames', '{}'),
    Column('total s', 'sim_seconds', '{:.1f}'),
    Column('lap s', 'lap_seconds', '{:.1f}'),
    Column('avg speed m/s', 'average_speed', '{:.2f}'),
    Column('completed %', 'percentage_completed', '{:.1f}'),
    Column('dev mean m', 'deviation_mean_m', '{:.2f}'),
    Column('dev max m', 'deviation_max_m', '{:.2f}'),
    Column('dev BM (1000^d)', 'deviation_bm', '{:.3g}'),
    Column('inference mean ms', 'inference_mean_ms', '{:.2f}'),
    Column('inference p50 ms', 'inference_p50_ms', '{:.2f}'),
    Column('inference p99 ms', 'inference_p99_ms', '{:.2f}'),
    Column('faster vs 1st', 'speedup_vs_first', '{:.2f}x'),
    Column('brain ms', 'brain_mean_ms', '{:.2f}'),
    Column('brain Hz (alone)', 'brain_hz', '{:.1f}'),
    Column('loop Hz (measured)', 'loop_hz', '{:.1f}'),
    Column('real-time factor', 'real_time_factor', '{:.2f}'),
    Column('status', 'status', '{}'),
]


def markdown_table(report: dict[str, Any]) -> str:
    """
    Return the report's rows as a Markdown table.

    A row that did not run shows its reason in the status cell.
    """
    rows = [
        {**r, 'status': f"{r['status']}: {r['error']}"} if r.get('error') else r
        for r in report['rows']
    ]
    return rows_markdown(rows, COLUMNS)


def header_text(report: dict[str, Any]) -> str:
    """
    Return the paragraph above the table.

    Circuit, mode, machine, and how the timing columns are measured.
    """
    ref = (
        f"; ratios against `{report['reference']}` (the first model that ran)"
        if report['reference']
        else ''
    )
    return (
        f"Circuit `{report['circuit']}` ({report['circuit_length_m']} m), {report['laps']} lap(s),"
        f" timeout {report['timeout_s']:g} s; {report['mode']}; control period"
        f" {report['control_period_s']} s; {report['machine']}; {report['threads']} thread(s);"
        f" backend {report['backend']}{ref}.\n\nTiming: {report['timing']};"
        f" {report['warmup_calls']} warm-up calls before each run. Deviation: distance from the"
        ' centre-line points the run covered to the driven path (mean, max in metres, and'
        " Behavior Metrics' mean of 1000^d)."
    )


def write_reports(comparison: Comparison, out_dir: str | Path) -> dict[str, Path]:
    """Write compare.json, compare.md and compare.png in ``out_dir`` (created)."""
    report = comparison.to_dict()
    paths = write_report_files(
        report,
        out_dir,
        'compare',
        COLUMNS,
        header_text(report),
        formats=('md', 'json'),
        table=markdown_table(report),
    )
    paths['png'] = Path(out_dir) / 'compare.png'
    _plot(comparison, paths['png'])
    return paths


def _road_edges(circuit: Circuit) -> tuple[np.ndarray, np.ndarray]:
    """Left and right road edges, closed, from the centre line and the road width."""
    normal = np.column_stack([-np.sin(circuit.heading), np.cos(circuit.heading)])
    half = circuit.road_width / 2
    left, right = circuit.centreline + half * normal, circuit.centreline - half * normal
    return np.vstack([left, left[:1]]), np.vstack([right, right[:1]])


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2


def _plot(comparison: Comparison, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    circuit = comparison.circuit
    span = np.ptp(circuit.centreline, axis=0)
    width = 9.0
    fig, ax = plt.subplots(
        figsize=(width, min(max(width * span[1] / max(span[0], 1e-6), 4.0), 12.0) + 0.8)
    )
    report = comparison.header
    plot_runs(
        ax,
        comparison,
        f"{report['circuit']}: {report['laps']} lap(s), lock-step (X: run ended early)",
    )
    ax.legend(loc='best', fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_runs(ax: Any, comparison: Comparison, title: str, lw: float = 1.2) -> None:
    """
    Draw a comparison on a matplotlib axis: the road, the centre line, the paths, the start.

    A run that ended early ends in an X. Labels are set for a legend; the caller draws it.
    """
    import matplotlib.pyplot as plt
    circuit = comparison.circuit
    line = np.vstack([circuit.centreline, circuit.centreline[:1]])
    edges = sorted(_road_edges(circuit), key=_area, reverse=True)
    # Road: the outer edge's area minus the infield (exact for a loop that does not cross itself).
    ax.fill(edges[0][:, 0], edges[0][:, 1], color='0.88', zorder=0)
    ax.fill(edges[1][:, 0], edges[1][:, 1], color='white', zorder=0)
    for edge in edges:
        ax.plot(edge[:, 0], edge[:, 1], color='0.45', lw=0.8, zorder=1)
    ax.plot(
        line[:, 0], line[:, 1], color='tab:red', lw=0.6, ls='--', zorder=2, label='centre line'
    )
    colours = plt.get_cmap('tab10')
    ran = [r for r in comparison.rows if r.name in comparison.trajectories]
    for k, row in enumerate(ran):
        xy = comparison.trajectories[row.name]
        colour = colours(k % 10)
        label = f'{row.name}: {row.percentage_completed:.1f} % ({row.end_reason})'
        # Earlier runs drawn wider, so that runs on the same path stay visible under the later
        # ones.
        ax.plot(
            xy[:, 0],
            xy[:, 1],
            color=colour,
            lw=lw * (1.0 + 1.7 * (len(ran) - 1 - k) / max(len(ran) - 1, 1)),
            alpha=0.85,
            zorder=3,
            label=label,
        )
        if not row.completed:
            ax.plot(*xy[-1], marker='X', ms=10, color=colour, mec='k', zorder=5)
    x0, y0, yaw0 = circuit.start_pose
    ax.plot(x0, y0, marker='o', ms=9, color='k', zorder=6, label='start')
    ax.annotate('', xy=(x0 + 8 * np.cos(yaw0), y0 + 8 * np.sin(yaw0)), xytext=(x0, y0),
                arrowprops={'arrowstyle': '->', 'color': 'k', 'lw': 1.5}, zorder=6)
    ax.set_title(title)
    ax.set_aspect('equal')
    ax.set_xlabel('x (m)')
    ax.set_ylabel('y (m)')
    ax.grid(True, alpha=0.25)


# -- the command ----------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``pilotnet compare``'s options."""
    p.add_argument(
        '--models',
        nargs='+',
        required=True,
        help=(
            'models, comma- or space-separated: files, SavedModel folders or names in --models-dir'
            ' (e.g. baseline,dynamic); the first is the reference for the ratios'
        ),
    )
    p.add_argument('--models-dir', default=DEFAULT_MODELS_DIR,
                   help=f'folder where model names are looked up (default: {DEFAULT_MODELS_DIR})')
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        '--circuit',
        default='simple',
        help='built-in name, gen:SEED, perfect-lap bag or x,y CSV (default: simple)',
    )
    where.add_argument(
        '--circuits',
        nargs='+',
        metavar='CIRCUIT',
        help='several circuits, comma- or space-separated: the generalisation table (per model and'
        ' circuit, and how many circuits each model completed) and a grid of the paths',
    )
    where.add_argument(
        '--split',
        choices=SPLIT_NAMES,
        help="every circuit of a split (test: Behavior Metrics' perfect laps found in"
        ' --perfect-bags, the built-in test circuits and generated test circuits), as --circuits',
    )
    p.add_argument(
        '--perfect-bags',
        metavar='DIR',
        help="folder of Behavior Metrics' lap-*.bag perfect laps for --split (default:"
        f' ${PERFECT_BAGS_VAR}, else {DEFAULT_PERFECT_BAGS} if it exists)',
    )
    p.add_argument(
        '--start',
        metavar='X,Y,YAW',
        help="where the car starts, with --circuit (default: the circuit's start; a Behavior"
        " Metrics bag's world spawn pose); --start=-74.3,37.7,-0.5 when x is negative",
    )
    p.add_argument(
        '--laps', type=positive_int, default=1, help='laps each model drives (default: 1)'
    )
    p.add_argument('--threads', type=int, default=1, help='inference threads (default: 1)')
    p.add_argument(
        '--backend', default='auto', help='runtime for every model (default: auto, from the file)'
    )
    p.add_argument(
        '--timeout',
        type=float,
        metavar='S',
        help=(
            "simulated seconds per lap before a run ends (default: the circuit's, e.g. simple 75)"
        ),
    )
    p.add_argument(
        '--out', help='folder for compare.{md,json,png} (default: runs/compare-<circuit>)'
    )
    p.add_argument(
        '--json',
        action='store_true',
        help='print JSON instead of the table (progress goes to stderr)',
    )


def run(args: argparse.Namespace) -> int:
    """
    Run the comparison, write the reports, print the table (or JSON).

    Exit code from :func:`exit_code`.
    """
    models = split_names(args.models)

    def progress(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    comparison = compare_models(
        models,
        args.circuit,
        laps=args.laps,
        threads=args.threads,
        backend=args.backend,
        models_dir=args.models_dir,
        timeout_s=args.timeout,
        progress=progress,
        start=args.start,
    )
    return report_and_exit(
        comparison, args.out or Path('runs') / f'compare-{comparison.circuit.name}', args.json
    )


def report_and_exit(comparison: Comparison, out_dir: str | Path, as_json: bool) -> int:
    """Write the reports, print the table (or the JSON), return the exit code (see exit_code)."""
    report = comparison.to_dict()
    paths = write_reports(comparison, out_dir)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(header_text(report))
        print()
        print(markdown_table(report))
        print('wrote ' + ', '.join(str(p) for p in paths.values()))
    return exit_code(report)
