"""The ``pilotnet`` command: thin subcommands over the ROS-free core, each printing a table or ``--json``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pilotnet_optimized import __version__
from pilotnet_optimized.errors import PilotnetError

__all__ = ['main', 'build_parser']

EXAMPLES = """\
examples:
  pilotnet circuits
  pilotnet drive-expert --circuit simple --laps 1
  pilotnet drive-expert --circuit ../shared/behavior_metrics/perfect_bags/lap-simple-circuit.bag --json
  pilotnet render --circuit simple --s 120 --out frame.png
  pilotnet dataset --circuit simple --frames 2000 --out data/simple
  pilotnet dataset --split train --frames 5000 --out data
  pilotnet bench-sim --json
  pilotnet laps --trajectory run.csv --perfect-lap lap-simple-circuit.bag
  pilotnet train --data data/train --val data/val --out models/pilotnet.keras
  pilotnet drive --model models/pilotnet.keras --circuit simple
  pilotnet optimize models/pilotnet.keras --methods all --data data/train --val data/val --out models/optimized
  pilotnet evaluate models/optimized --data data/test
  pilotnet run model:=dynamic circuit:=simple record:=true
  pilotnet demo
  pilotnet compare --models baseline,dynamic,int8 --circuit simple
  pilotnet bag-eval runs/drq/bag --models baseline,dynamic
  pilotnet bench-latency --models dynamic,int8 --frames 300
"""


def _table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ['  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def _fmt(value: object) -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.3f}' if abs(value) < 1e5 else f'{value:.3e}'
    return str(value)


def _print_mapping(data: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print(_table([(k, v) for k, v in data.items()], ('metric', 'value')))


# -- subcommands -----------------------------------------------------------------------------------------
def cmd_circuits(args: argparse.Namespace) -> int:
    from pilotnet_optimized.sim import BUILTIN_CIRCUITS, get_circuit, split_of
    rows = []
    for name in BUILTIN_CIRCUITS:
        c = get_circuit(name)
        rows.append({'name': name, 'length_m': round(c.length, 1), 'min_radius_m': round(c.min_radius(), 1),
                     'road_width_m': c.road_width, 'timeout_s': c.timeout_s, 'split': split_of(name),
                     'description': c.description})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table([list(r.values()) for r in rows], list(rows[0])))
    return 0


def cmd_drive_expert(args: argparse.Namespace) -> int:
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.episodes import drive_expert
    circuit = get_circuit(args.circuit)
    result = drive_expert(circuit, laps=args.laps, seed=args.seed, perturb=args.perturb)
    if args.trajectory_out:
        from pilotnet_optimized.laps import save_trajectory_csv
        save_trajectory_csv(result.trajectory, args.trajectory_out)
    summary = result.to_dict()
    _print_mapping(summary, args.json)
    done = result.metrics.percentage_completed >= 100 * args.laps - 1e-6
    return 0 if done else 3


def cmd_render(args: argparse.Namespace) -> int:
    import cv2

    from pilotnet_optimized.sim import CameraRenderer, Lighting, get_circuit
    circuit = get_circuit(args.circuit)
    x, y, yaw = circuit.pose_at(args.s, args.lateral)
    frame = CameraRenderer(circuit).render(x, y, yaw + args.yaw_offset,
                                           Lighting(fog=args.fog) if args.fog else None)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
        raise PilotnetError(f'could not write {out} (use a .png or .jpg name)')
    print(f'{out}: {frame.shape[1]}x{frame.shape[0]} frame of {circuit.name} at s={args.s:.1f} m '
          f'(x={x:.2f}, y={y:.2f}, yaw={yaw:.3f})')
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from pilotnet_optimized.sim import SPLITS, get_circuit
    from pilotnet_optimized.sim.dataset import write_dataset
    if (args.circuit is None) == (args.split is None):
        raise PilotnetError('give exactly one of --circuit NAME or --split train|val|test|all')
    out = Path(args.out)
    if args.circuit is not None:
        jobs = [(args.circuit, out)]
    else:
        splits = list(SPLITS) if args.split == 'all' else [args.split]
        jobs = [(name, out / split / name) for split in splits for name in SPLITS[split]]
    infos = []
    for k, (name, folder) in enumerate(jobs):
        info = write_dataset(get_circuit(name), args.frames, folder, seed=args.seed + k,
                             perturb=not args.no_perturb, lighting=not args.no_lighting,
                             overwrite=args.overwrite, progress=not args.json)
        infos.append(info.__dict__)
    if args.json:
        print(json.dumps(infos, indent=2))
    else:
        print(_table([(i['path'], i['circuit'], i['split'], i['frames'], i['episodes'], i['v_mean'],
                       i['w_abs_mean']) for i in infos],
                     ('path', 'circuit', 'split', 'frames', 'episodes', 'v_mean', '|w|_mean')))
    return 0


def cmd_bench_sim(args: argparse.Namespace) -> int:
    from pilotnet_optimized.sim.bench import bench_sim
    result = bench_sim(circuit_name=args.circuit, frames=args.frames, steps=args.steps, threads=args.threads)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"machine: {result['machine']}  opencv {result['opencv']}  threads {result['threads']}")
        print(_table([(r['what'], r['count'], r['per_second'], r['p50_us'], r['p90_us'], r['p99_us'])
                      for r in result['rows']],
                     ('what', 'count', 'per_second', 'p50_us', 'p90_us', 'p99_us')))
    return 0


def cmd_laps(args: argparse.Namespace) -> int:
    from pilotnet_optimized.laps import compute_lap_metrics, load_perfect_lap, load_trajectory
    run = load_trajectory(args.trajectory, topic=args.topic)
    perfect = load_perfect_lap(args.perfect_lap)
    metrics = compute_lap_metrics(run, perfect)
    _print_mapping({'trajectory': str(args.trajectory), 'points': len(run.xy), **metrics.to_dict()}, args.json)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from pilotnet_optimized.models.preprocess import Preprocessing
    from pilotnet_optimized.models.train import TrainConfig, train
    prep = Preprocessing(crop_top=None if args.no_crop else 240, normalisation=args.normalisation)
    cfg = TrainConfig(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                      patience=args.patience, seed=args.seed, head_units=args.head_units, preprocessing=prep)
    result = train(args.data, args.out, cfg, val=args.val, allow_test_data=args.allow_test_data,
                   verbose=0 if args.json else 1, limit_per_folder=args.limit)
    summary = {k: v for k, v in result.__dict__.items() if k != 'history'}
    _print_mapping(summary, args.json)
    return 0


def cmd_drive(args: argparse.Namespace) -> int:
    from pilotnet_optimized.backends import load_backend
    from pilotnet_optimized.sim import get_circuit
    from pilotnet_optimized.sim.episodes import drive_pilot
    circuit = get_circuit(args.circuit)
    pilot = load_backend(args.model, args.backend, num_threads=args.threads)
    run = drive_pilot(circuit, pilot, laps=args.laps)
    if args.trajectory_out:
        from pilotnet_optimized.laps import save_trajectory_csv
        save_trajectory_csv(run.result.trajectory, args.trajectory_out)
    _print_mapping({'model': str(args.model), **pilot.describe(), **run.to_dict()}, args.json)
    return 0 if run.result.metrics.percentage_completed >= 100 * args.laps - 1e-6 else 3


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pilotnet_optimized.evaluate.offline import evaluate_folder, markdown_table, write_reports
    report = evaluate_folder(args.models, args.data, threads=args.threads, limit=args.limit, runs=args.runs,
                             methods=args.methods, progress=None if args.json else print)
    paths = write_reports(report, args.out or args.models)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['machine']}; {report['frames']} frames of {', '.join(report['data'])}; "
              f"{report['threads']} thread(s)")
        print(markdown_table(report))
        print('wrote ' + ', '.join(str(p) for p in paths.values()))
    return 0 if any(r['status'] == 'ok' for r in report['rows']) else 1


# -- parser --------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='pilotnet', description='Compressed PilotNet driving models for the Formula-1 car: simulator, '
        'lap metrics, datasets, training, optimisation, evaluation, closed-loop comparison, the ROS 2 graph.',
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str, example: str
            ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=f'example:\n  {example}',
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = add('circuits', cmd_circuits, 'List the built-in circuits with their lengths and splits.',
            'pilotnet circuits --json')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')

    p = add('drive-expert', cmd_drive_expert, "Drive the expert round a circuit and print Behavior Metrics' "
            'lap figures.', 'pilotnet drive-expert --circuit simple --laps 2 --json')
    p.add_argument('--circuit', default='simple', help='built-in name, perfect-lap bag or x,y CSV (default: simple)')
    p.add_argument('--laps', type=int, default=1, help='laps to drive (default: 1)')
    p.add_argument('--seed', type=int, default=0, help='seed for --perturb (default: 0)')
    p.add_argument('--perturb', action='store_true', help='add random steering disturbances')
    p.add_argument('--trajectory-out', metavar='CSV', help='also write the driven trajectory (t,x,y,yaw)')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')

    p = add('render', cmd_render, 'Render one camera frame at a position along the circuit.',
            'pilotnet render --circuit simple --s 120 --out frame.png')
    p.add_argument('--circuit', default='simple', help='built-in name, perfect-lap bag or x,y CSV')
    p.add_argument('--out', required=True, help='image file to write (.png or .jpg)')
    p.add_argument('--s', type=float, default=0.0, help='metres along the centre line from the start')
    p.add_argument('--lateral', type=float, default=0.0, help='metres left of the centre line')
    p.add_argument('--yaw-offset', type=float, default=0.0, help='radians turned from the line heading')
    p.add_argument('--fog', type=float, default=0.0, help='fog density, 0 (none) to 1')

    p = add('dataset', cmd_dataset, "Write a DeepLearningStudio-layout dataset (N.png + data.csv with v,w) "
            'from the expert driving with disturbances.', 'pilotnet dataset --circuit simple --frames 2000 '
            '--out data/simple')
    p.add_argument('--circuit', help='one circuit, written straight into --out')
    p.add_argument('--split', choices=['train', 'val', 'test', 'all'],
                   help='every circuit of a split, into OUT/<split>/<circuit>/')
    p.add_argument('--frames', type=int, required=True, help='frames per circuit')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    p.add_argument('--no-perturb', action='store_true', help='no steering disturbances')
    p.add_argument('--no-lighting', action='store_true', help='no lighting/fog variation')
    p.add_argument('--overwrite', action='store_true', help='replace an existing dataset')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table (and no progress bar)')

    p = add('bench-sim', cmd_bench_sim, 'Measure camera rendering frames/s and kinematics steps/s.',
            'pilotnet bench-sim --threads 1 --json')
    p.add_argument('--circuit', default='simple', help='circuit to render (default: simple)')
    p.add_argument('--frames', type=int, default=2000, help='frames to render (default: 2000)')
    p.add_argument('--steps', type=int, default=100000, help='kinematics steps (default: 100000)')
    p.add_argument('--threads', type=int, default=1, help='OpenCV threads (default: 1, one core)')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')

    p = add('train', cmd_train, 'Train a PilotNet on dataset folders (fixed seed, flips, photometric '
            'augmentation, oversampled bends, early stopping).',
            'pilotnet train --data data/train --val data/val --out models/pilotnet.keras')
    p.add_argument('--data', nargs='+', required=True, help='dataset folders (or folders above them)')
    p.add_argument('--val', nargs='+', help='validation dataset folders (default: hold out the last 10 %%)')
    p.add_argument('--out', required=True, help='model file to write (.keras)')
    p.add_argument('--arch', default='pilotnet', choices=['pilotnet', 'pilotnet-nvidia'],
                   help="architecture (default: pilotnet, the seed's 17 M-parameter model)")
    p.add_argument('--head-units', type=int, help='width of the first dense layer (default: the architecture\'s)')
    p.add_argument('--epochs', type=int, default=8, help='maximum epochs (default: 8; early stopping)')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=1e-3, help='Adam learning rate (default: 1e-3)')
    p.add_argument('--patience', type=int, default=3, help='early-stopping patience in epochs (default: 3)')
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--no-crop', action='store_true', help='use the whole frame, not rows 240:480')
    p.add_argument('--normalisation', default='none', choices=['none', 'unit', 'imagenet'],
                   help='input normalisation outside the model (default: none; the model has its own)')
    p.add_argument('--limit', type=int, help='use only the first N frames of each folder (quick trials)')
    p.add_argument('--allow-test-data', action='store_true', help='allow training on test-split folders')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table (and no progress bar)')

    p = add('drive', cmd_drive, 'Drive a model round a circuit in the built-in simulator (ROS-free, lock-step) '
            "and print Behavior Metrics' figures and inference times.",
            'pilotnet drive --model models/pilotnet.keras --circuit simple')
    p.add_argument('--model', required=True, help='model file: .keras, SavedModel folder, .tflite, .onnx')
    p.add_argument('--backend', default='auto', help='auto|litert|tensorflow|onnxruntime|tensorrt')
    p.add_argument('--threads', type=int, default=1, help='inference threads (default: 1)')
    p.add_argument('--circuit', default='simple', help='built-in name, perfect-lap bag or x,y CSV')
    p.add_argument('--laps', type=int, default=1)
    p.add_argument('--trajectory-out', metavar='CSV', help='also write the driven trajectory')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')

    from pilotnet_optimized.optimize import pipeline
    p = add('optimize', pipeline.cmd_optimize, 'Write every optimised variant of a trained model (TFLite float32, '
            'dynamic range, float16, int8, QAT, pruning, clustering, SavedModel, ONNX, slim, ...), one line each.',
            'pilotnet optimize models/pilotnet.keras --methods all --data data/train --val data/val '
            '--out models/optimized')
    pipeline.add_arguments(p)

    p = add('evaluate', cmd_evaluate, "The seed's table for every model in a folder: size, MSE and MAE on a "
            'held-out circuit, batch-1 latency percentiles, ratios against Keras and the TFLite baseline.',
            'pilotnet evaluate models/optimized --data data/test --threads 1')
    p.add_argument('models', help='folder of models (the output of pilotnet optimize)')
    p.add_argument('--data', nargs='+', required=True, help='held-out dataset folders (e.g. data/test)')
    p.add_argument('--threads', type=int, default=1, help='inference threads (default: 1)')
    p.add_argument('--limit', type=int, help='first N frames of each dataset folder (default: all)')
    p.add_argument('--runs', type=int, default=300, help='timed batch-1 calls per model (default: 300)')
    p.add_argument('--methods', nargs='+', help='only these methods (default: every model in the folder)')
    p.add_argument('--out', help='folder for evaluation.{md,csv,json,png} (default: the models folder)')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')

    from pilotnet_optimized import demo
    p = add('demo', demo.cmd_demo, "The README's first command: build the default models once (small dataset, "
            "NVIDIA's PilotNet, baseline and optimised TFLite/ONNX files; cached in models/default), then compare "
            'them in closed loop on the simple circuit.', 'pilotnet demo --circuit simple --laps 1')
    demo.add_arguments(p)

    from pilotnet_optimized.nodes import runner
    from pilotnet_optimized.evaluate import closed_loop as compare
    p = add('compare', compare.cmd_compare, "The seed's simulation table: each model drives the circuit in lock-step; "
            'total and lap time, average speed, percentage completed, deviation, inference ms, brain and loop Hz, '
            'real-time factor; writes compare.md, compare.json and a PNG of the trajectories.',
            'pilotnet compare --models baseline,dynamic,int8 --circuit simple --laps 1')
    compare.add_arguments(p)

    from pilotnet_optimized.nodes import bench_latency  # no ROS import until the command runs
    p = add('bench-latency', bench_latency.cmd_bench_latency, 'Image-to-Twist latency through the real graph per '
            "model: the inference node as a process, camera frames one at a time, the node's stamp-to-publish "
            'time and the round trip (p50/p90/p99) against raw inference, per DDS transport.',
            bench_latency.EXAMPLE)
    bench_latency.add_arguments(p)

    def cmd_bag_eval(args: argparse.Namespace) -> int:
        from pilotnet_optimized.evaluate import bag as bag_eval
        return bag_eval.cmd_bag_eval(args)

    p = add('bag-eval', cmd_bag_eval, 'Replay the camera frames of a recorded drive (rosbag2 folder, .mcap, ROS 1 '
            '.bag) through models and compare with the recorded commands: MSE, MAE of v and w, latency.',
            'pilotnet bag-eval runs/lap1 --models baseline,dynamic,models/pilotnet.keras --out runs/lap1/eval')
    p.add_argument('bag', help='rosbag2 folder (MCAP or sqlite3), .mcap or .db3 file, or ROS 1 .bag')
    p.add_argument('--models', required=True, help='comma-separated model files or names in --models-dir')
    p.add_argument('--models-dir', default='models/optimized', help='where model names are looked up '
                   '(default: models/optimized)')
    p.add_argument('--image-topic', help='camera topic (default: the one Image or CompressedImage topic)')
    p.add_argument('--cmd-topic', help='command topic (default: the TwistStamped one, else the Twist one)')
    p.add_argument('--max-delay', type=float, default=0.2, help='seconds within which a Twist must follow its '
                   'image to answer it (default: 0.2; TwistStamped pairs by header stamp)')
    p.add_argument('--limit', type=int, help='first N answered frames (default: all)')
    p.add_argument('--threads', type=int, default=1, help='inference threads (default: 1)')
    p.add_argument('--warmup', type=int, default=10, help='untimed calls per model first (default: 10)')
    p.add_argument('--backend', default='auto', help='auto|litert|tensorflow|onnxruntime|tensorrt')
    p.add_argument('--out', help='folder for bag_eval.md and bag_eval.json')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table (and no progress lines)')

    p = add('run', runner.cmd_run, 'Start the ROS 2 graph (simulator + inference node) like `ros2 launch '
            'pilotnet_optimized sim.launch.py`, from the same graph description, on machines without launch_ros.',
            'pilotnet run model:=models/optimized/dynamic.tflite circuit:=simple laps:=1')
    runner.add_run_arguments(p)

    p = add('laps', cmd_laps, "Behavior Metrics' lap figures of a recorded run against a perfect lap.",
            'pilotnet laps --trajectory run.bag --perfect-lap lap-simple-circuit.bag --json')
    p.add_argument('--trajectory', required=True, help='run to judge: a bag with odometry or a t,x,y CSV')
    p.add_argument('--perfect-lap', required=True, help='perfect-lap bag (or t,x,y CSV)')
    p.add_argument('--topic', help='odometry topic in the run bag (default: the nav_msgs/Odometry one)')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run, and turn a project error into one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PilotnetError as err:
        print(f'pilotnet {args.command}: error: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'pilotnet {args.command}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
