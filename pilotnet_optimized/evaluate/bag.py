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
``pilotnet bag-eval``.

Replay a recorded drive through models and compare with the commands that were recorded.

A bag is a rosbag2 folder (MCAP or sqlite3), a bare ``.mcap`` / ``.db3`` file, or a ROS 1 ``.bag``
(what Behavior Metrics records): :class:`rosbags.highlevel.AnyReader` opens all of them. A recorder
that was killed leaves an MCAP file without its summary (and perhaps ``metadata.yaml`` missing or
stale): such a file is read as a stream with the ``mcap`` library, its messages decoded with
rosbags' CDR deserialiser from the schemas in the file, and the evaluation goes on with what was
recorded, with a warning.

Frames and commands are paired in one of two ways:

- ``TwistStamped`` commands (our recorder's ``/cmd_vel_stamped``): the command whose
  ``header.stamp`` equals the image's ``header.stamp``, exactly;
- plain ``Twist`` commands (``/cmd_vel``, Behavior Metrics' ``/F1ROS/cmd_vel``): the first command
  recorded at or after the image, within ``max_delay`` seconds (record times). A brain that skips
  frames, or re-sends its last command, makes this pairing approximate: prefer the stamped topic
  when there is one.

Frames without an answer are skipped and counted. Every model then predicts each paired frame at
batch 1 (after a warm-up); the rows hold the MSE on normalised labels (as ``pilotnet evaluate``),
MAE and maximum error of v and w in physical units, and the model call's latency percentiles. No
ROS import: this runs where rclpy does not.
"""

from __future__ import annotations

import argparse
import bisect
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
import json
from pathlib import Path
import platform
import sys
import time
from typing import Any

import numpy as np
from pilotnet_optimized.argtypes import positive_int
from pilotnet_optimized.backends.timing import percentiles, time_each
from pilotnet_optimized.bags.images import (COMPRESSED_IMAGE_TYPE, IMAGE_TYPE, IMAGE_TYPES,
                                            message_to_rgb, SUPPORTED_ENCODINGS)
from pilotnet_optimized.bags.read import BAG_READ_ERRORS, open_bag
from pilotnet_optimized.errors import BagError, ImageError, one_line, PilotnetError
from pilotnet_optimized.evaluate.report import Column, machine_description
from pilotnet_optimized.evaluate.report import markdown_table as rows_markdown
from pilotnet_optimized.evaluate.report import versions, write_report_files
from pilotnet_optimized.models.preprocess import (denormalise_labels, normalise_input,
                                                  normalise_labels, Preprocessing, resize_frame)
from pilotnet_optimized.store import DEFAULT_MODELS_DIR, resolve_model, size_mb, split_names

__all__ = [
    'IMAGE_TYPES',
    'TWIST_TYPE',
    'TWIST_STAMPED_TYPE',
    'SUPPORTED_ENCODINGS',
    'BagEvalRow',
    'BagFrames',
    'COLUMNS',
    'read_bag_frames',
    'evaluate_bag',
    'markdown_table',
    'header_text',
    'write_reports',
    'add_arguments',
    'run',
]

TWIST_TYPE = 'geometry_msgs/msg/Twist'
TWIST_STAMPED_TYPE = 'geometry_msgs/msg/TwistStamped'
#: Picked first when a bag holds several topics of a kind: our recorder's, then Behavior Metrics'
#: (ROS 1).
PREFERRED_IMAGE_TOPICS = ('/cam_f1_left/image_raw', '/F1ROS/cameraL/image_raw')
PREFERRED_CMD_TOPICS = ('/cmd_vel_stamped', '/cmd_vel', '/F1ROS/cmd_vel')


# -- messages to values ---------------------------------------------------------------------------
def _stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _twist_vw(msg: Any, stamped: bool) -> tuple[float, float]:
    twist = msg.twist if stamped else msg
    return float(twist.linear.x), float(twist.angular.z)


# -- pairing --------------------------------------------------------------------------------------
@dataclass
class BagFrames:
    """
    What a bag holds for evaluation.

    The paired frames (resized per preprocessing) and their commands.
    """

    bag: dict
    small: dict[Preprocessing, np.ndarray]
    commands: np.ndarray          # N x 2 float32 physical (v, w)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.commands)


class _Pairer:
    """
    Pairs frames with commands as messages stream in.

    Only paired (and pending) frames are kept.
    """

    def __init__(self, stamped: bool, max_delay_ns: int) -> None:
        self.stamped = stamped
        self.max_delay_ns = max_delay_ns
        # stamped: image stamp -> (index, frames)
        self.pending: dict[int, tuple[int, Any]] = {}
        # stamped: commands that came before their image
        self.orphans: dict[int, tuple[float, float]] = {}
        # twist: (record ns, index, frames), oldest first
        self.waiting: list[tuple[int, int, Any]] = []
        self.pairs: list[tuple[int, Any, tuple[float, float]]] = []
        self.commands = 0

    def add_image(self, index: int, record_ns: int, stamp_ns: int | None, frames: Any) -> None:
        if self.stamped:
            assert stamp_ns is not None
            if stamp_ns in self.orphans:
                self.pairs.append((index, frames, self.orphans.pop(stamp_ns)))
            else:
                self.pending.setdefault(stamp_ns, (index, frames))
        else:
            self.waiting.append((record_ns, index, frames))

    def add_command(self, record_ns: int, stamp_ns: int | None, vw: tuple[float, float]) -> None:
        self.commands += 1
        if self.stamped:
            assert stamp_ns is not None
            if stamp_ns in self.pending:
                index, frames = self.pending.pop(stamp_ns)
                self.pairs.append((index, frames, vw))
            else:
                self.orphans.setdefault(stamp_ns, vw)
            return
        # The first command at or after an image, within max_delay, answers it.
        cut = bisect.bisect_right([w[0] for w in self.waiting], record_ns)
        for t, index, frames in self.waiting[:cut]:
            if record_ns - t <= self.max_delay_ns:
                self.pairs.append((index, frames, vw))
        del self.waiting[:cut]

    def expire(self, record_ns: int) -> None:
        """
        Drop waiting frames older than ``max_delay`` (twist pairing).

        No answer can come for them any more.
        """
        if not self.stamped:
            self.waiting = [w for w in self.waiting if record_ns - w[0] <= self.max_delay_ns]


def _pick_topic(path: Path, topics: dict[str, str], kinds: Sequence[str], preferred: Sequence[str],
                what: str, option: str) -> str | None:
    found = [t for t, k in topics.items() if k in kinds]
    if len(found) == 1:
        return found[0]
    for name in preferred:
        if name in found:
            return name
    if found:
        raise BagError(
            f'{path}: several {what} topics ({", ".join(sorted(found))}): choose one with {option}'
        )
    return None


def _choose_topics(
    path: Path, topics: dict[str, str], image_topic: str | None, cmd_topic: str | None
) -> tuple[str, str, bool]:
    listing = ', '.join(f'{t} ({k or "?"})' for t, k in sorted(topics.items())) or 'none'
    if image_topic is not None:
        if image_topic not in topics:
            raise BagError(f'{path}: no topic {image_topic} (topics: {listing})')
        if topics[image_topic] not in IMAGE_TYPES:
            raise BagError(
                f'{path}: topic {image_topic} is {topics[image_topic]}, not an Image or'
                ' CompressedImage'
            )
    else:
        image_topic = _pick_topic(
            path, topics, IMAGE_TYPES, PREFERRED_IMAGE_TOPICS, 'camera', '--image-topic'
        )
        if image_topic is None:
            raise BagError(
                f'{path}: no {IMAGE_TYPE} or {COMPRESSED_IMAGE_TYPE} topic (topics: {listing})'
            )
    if cmd_topic is not None:
        if cmd_topic not in topics:
            raise BagError(f'{path}: no topic {cmd_topic} (topics: {listing})')
        if topics[cmd_topic] not in (TWIST_TYPE, TWIST_STAMPED_TYPE):
            raise BagError(
                f'{path}: topic {cmd_topic} is {topics[cmd_topic]}, not a Twist or TwistStamped'
            )
        return image_topic, cmd_topic, topics[cmd_topic] == TWIST_STAMPED_TYPE
    stamped = _pick_topic(
        path, topics, (TWIST_STAMPED_TYPE,), PREFERRED_CMD_TOPICS, 'TwistStamped', '--cmd-topic'
    )
    if stamped is not None:
        return image_topic, stamped, True
    plain = _pick_topic(path, topics, (TWIST_TYPE,), PREFERRED_CMD_TOPICS, 'Twist', '--cmd-topic')
    if plain is None:
        raise BagError(
            f'{path}: no {TWIST_STAMPED_TYPE} or {TWIST_TYPE} command topic (topics: {listing})'
        )
    return image_topic, plain, False


def read_bag_frames(
    path: str | Path,
    preprocessings: Sequence[Preprocessing],
    image_topic: str | None = None,
    cmd_topic: str | None = None,
    max_delay: float = 0.2,
    limit: int | None = None,
) -> BagFrames:
    """
    Read a bag's camera frames and the commands that answered them.

    :param preprocessings: each distinct one gets its own resized copy of every paired frame (full
        frames are not kept: a long bag would not fit in memory).
    :param max_delay: seconds within which a plain ``Twist`` must follow its image.
    :param limit: stop after this many paired frames.
    :raises BagError: missing or unreadable bag, no camera or command topic, or no frame answered.
    :raises ImageError: for an image encoding the models cannot take.
    """
    path = Path(path)
    if limit is not None and limit < 1:
        raise PilotnetError(f'--limit must be at least 1, not {limit}')
    if max_delay <= 0:
        raise PilotnetError(f'--max-delay must be positive, not {max_delay}')
    source = open_bag(path)
    warnings = list(source.warnings)
    try:
        image_topic, cmd_topic, stamped = _choose_topics(
            path, source.topics, image_topic, cmd_topic
        )
        image_type = source.topics[image_topic]
        preps = list(dict.fromkeys(preprocessings))
        pairer = _Pairer(stamped, int(round(max_delay * 1e9)))
        images = 0
        first = last = None
        cut_off = False
        it = source.messages({image_topic, cmd_topic})
        while limit is None or len(pairer.pairs) < limit:
            try:
                message = next(it)
            except StopIteration:
                break
            except BAG_READ_ERRORS as err:
                cut_off = True
                where = (
                    f' {(last - first) / 1e9:.2f} s in'
                    if first is not None
                    else ' before any message'
                )
                warnings.append(
                    f'{path}: the bag is cut off{where} ({one_line(err)}): evaluating the '
                    f'{images} frame(s) read up to there'
                )
                break
            topic, msgtype, record_ns = message.topic, message.msgtype, message.record_ns
            first = record_ns if first is None else first
            last = record_ns
            try:
                msg = message.decode()
            except BAG_READ_ERRORS as err:
                raise BagError(
                    f'{path}: a {msgtype} message on {topic} does not decode: {one_line(err)}'
                ) from err
            if topic == image_topic:
                try:
                    rgb = message_to_rgb(msg, image_type)
                    small = {p: resize_frame(rgb, p) for p in preps}
                except ImageError as err:
                    raise ImageError(f'{image_topic}: {err}') from err
                pairer.expire(record_ns)
                pairer.add_image(images, record_ns, _stamp_ns(msg) if stamped else None, small)
                images += 1
            else:
                pairer.add_command(
                    record_ns, _stamp_ns(msg) if stamped else None, _twist_vw(msg, stamped)
                )
    finally:
        source.close()
    pairs = sorted(pairer.pairs, key=lambda p: p[0])[:limit]
    how = (
        'header stamp == image stamp'
        if stamped
        else f'first command within {max_delay:g} s after the image'
    )
    bag = {
        'path': str(path),
        'storage': source.storage,
        'cut_off': cut_off,
        'duration_s': round(
            (
                source.duration_ns
                if source.duration_ns is not None and not cut_off
                else (last - first if first is not None else 0)
            )
            / 1e9,
            3,
        ),
        'image_topic': image_topic,
        'image_type': image_type,
        'cmd_topic': cmd_topic,
        'cmd_type': source.topics[cmd_topic],
        'pairing': how,
        'frames': images,
        'commands': pairer.commands,
        'paired': len(pairs),
        'unpaired': images - len(pairer.pairs),
    }
    if not pairs:
        hint = (
            ' (image and command stamps never match: try --cmd-topic with a Twist topic to pair by'
            ' arrival)'
            if stamped and images and pairer.commands
            else ''
        )
        raise BagError(
            f'{path}: no frame of {image_topic} is answered on {cmd_topic} ({images} frame(s), '
            f'{pairer.commands} command(s)){hint}'
        )
    small = {p: np.stack([pair[1][p] for pair in pairs]) for p in preps}
    commands = np.array([pair[2] for pair in pairs], dtype=np.float32)
    return BagFrames(bag, small, commands, warnings)


# -- evaluation -----------------------------------------------------------------------------------
@dataclass
class BagEvalRow:
    """
    One model's line.

    Its accuracy against the recorded commands and its batch-1 latency on the bag's frames.
    """

    model: str
    file: str
    backend: str
    precision: str
    size_mb: float
    frames: int
    mse: float | None = None
    mae_v: float | None = None
    mae_w: float | None = None
    max_err_v: float | None = None
    max_err_w: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    status: str = 'ok'
    error: str | None = None


def _model_paths(
    models: Sequence[str], models_dir: str | Path
) -> list[tuple[str, Path | None, str | None]]:
    out: list[tuple[str, Path | None, str | None]] = []
    for name in models:
        try:
            out.append((name, resolve_model(name, models_dir), None))
        except PilotnetError as err:
            out.append((name, None, str(err)))
    return out


def _evaluate_one(
    name: str,
    path: Path,
    frames: BagFrames,
    prep: Preprocessing,
    threads: int,
    warmup: int,
    backend_name: str,
) -> BagEvalRow:
    from pilotnet_optimized.backends import load_backend

    try:
        backend = load_backend(path, backend_name, num_threads=threads, preprocessing=prep)
    except PilotnetError as err:
        return BagEvalRow(
            name,
            path.name,
            backend_name,
            '-',
            size_mb(path),
            0,
            status='skipped' if 'tensorrt' in str(err).lower() else 'failed',
            error=str(err),
        )
    try:
        x = normalise_input(frames.small[prep], prep)
        preds = np.empty((len(x), 2), np.float32)

        def predict(i: int) -> None:
            preds[i] = backend.predict_normalised(x[i:i + 1])[0, :2]

        # Warm-up on the first frame (its prediction is then overwritten by the timed call).
        lat = time_each(predict, range(len(x)), warmup=[0] * warmup)
    except PilotnetError as err:
        return BagEvalRow(
            name,
            path.name,
            backend.name,
            backend.precision,
            backend.file_size_bytes / 2**20,
            0,
            status='failed',
            error=str(err),
        )
    finally:
        backend.close()
    mse = float(np.mean((preds - normalise_labels(frames.commands)) ** 2))
    err = np.abs(denormalise_labels(preds) - frames.commands)
    return BagEvalRow(
        name,
        path.name,
        backend.name,
        backend.precision,
        backend.file_size_bytes / 2**20,
        len(x),
        mse=mse,
        mae_v=float(err[:, 0].mean()),
        mae_w=float(err[:, 1].mean()),
        max_err_v=float(err[:, 0].max()),
        max_err_w=float(err[:, 1].max()),
        **percentiles(lat),
    )


def evaluate_bag(
    bag: str | Path,
    models: Sequence[str],
    models_dir: str | Path = DEFAULT_MODELS_DIR,
    image_topic: str | None = None,
    cmd_topic: str | None = None,
    max_delay: float = 0.2,
    limit: int | None = None,
    threads: int = 1,
    warmup: int = 10,
    backend: str = 'auto',
    progress: Callable[[str], None] | None = print,
    warn: Callable[[str], None] | None = None,
) -> dict:
    """
    Replay ``bag``'s camera frames through every model and compare with the recorded commands.

    :param models: model files or names looked up in ``models_dir`` (as
        ``pilotnet run model:=NAME``).
    :param progress: called with one line per model; ``None`` for silence.
    :param warn: called with each warning (a cut-off bag, a stale metadata.yaml); default: stderr.
    :returns: a JSON-ready report: the bag, the machine, and one row per model (status ``failed``
        for a model that could not be loaded or run; the others still run).
    :raises BagError: for an unreadable bag or one with nothing to evaluate.
    """
    if not models:
        raise PilotnetError(
            'no models given (--models a,b,c: files or names in the models folder)'
        )
    resolved = _model_paths(models, models_dir)
    preps: dict[str, Preprocessing] = {}
    rows: list[BagEvalRow] = []
    for name, path, error in resolved:
        if path is not None:
            try:
                preps[name] = Preprocessing.for_model(path)
            except PilotnetError as err:
                error = str(err)
        if error is not None:
            rows.append(
                BagEvalRow(
                    name,
                    path.name if path else name,
                    backend,
                    '-',
                    size_mb(path) if path else 0.0,
                    0,
                    status='failed',
                    error=error,
                )
            )
    start = time.perf_counter()
    frames = read_bag_frames(
        bag, list(preps.values()) or [Preprocessing()], image_topic, cmd_topic, max_delay, limit
    )
    for line in frames.warnings:
        (warn or _warn_stderr)(line)
    b = frames.bag
    if progress:
        progress(
            f"[bag-eval] {b['path']}: {b['paired']} of {b['frames']} frame(s) of"
            f" {b['image_topic']} answered on {b['cmd_topic']} ({b['pairing']})"
        )
    for name, path, _ in resolved:
        if name not in preps or path is None:
            continue
        t = time.perf_counter()
        row = _evaluate_one(name, path, frames, preps[name], threads, warmup, backend)
        rows.append(row)
        if progress:
            detail = (
                f'MSE {row.mse:.5f}  MAE v {row.mae_v:.3f} w {row.mae_w:.3f}  p50'
                f' {row.p50_ms:.3f} ms'
                if row.status == 'ok'
                else f'{row.status}: {row.error}'
            )
            progress(f'[bag-eval] {name:<14} {detail}  ({time.perf_counter() - t:.1f} s)')
    order = {name: i for i, name in enumerate(models)}
    rows.sort(key=lambda r: order.get(r.model, len(order)))
    return {
        'benchmark': 'bag-eval',
        'bag': frames.bag,
        'models': list(models),
        'threads': threads,
        'latency': (
            f'batch 1, model call only, {warmup} warm-up call(s), then one timed call per frame'
        ),
        'mse': (
            'on normalised labels (v in [6.5, 24], w in [-7.1, 7.1] -> [0, 1]); MAE and max error'
            ' in m/s, rad/s'
        ),
        'machine': machine_description(),
        'python': platform.python_version(),
        'versions': versions(),
        'seconds': round(time.perf_counter() - start, 1),
        'warnings': frames.warnings,
        'rows': [asdict(r) for r in rows],
    }


def _warn_stderr(line: str) -> None:
    print(f'pilotnet bag-eval: warning: {line}', file=sys.stderr)


# -- output ---------------------------------------------------------------------------------------
COLUMNS = [
    Column('model', 'model', '{}'),
    Column('precision', 'precision', '{}'),
    Column('size MB', 'size_mb', '{:.2f}'),
    Column('frames', 'frames', '{}'),
    Column('MSE', 'mse', '{:.5f}'),
    Column('MAE v m/s', 'mae_v', '{:.3f}'),
    Column('MAE w rad/s', 'mae_w', '{:.3f}'),
    Column('max err v', 'max_err_v', '{:.3f}'),
    Column('max err w', 'max_err_w', '{:.3f}'),
    Column('p50 ms', 'p50_ms', '{:.3f}'),
    Column('p90 ms', 'p90_ms', '{:.3f}'),
    Column('p99 ms', 'p99_ms', '{:.3f}'),
    Column('status', 'status', '{}'),
]


def markdown_table(report: dict) -> str:
    """Return the report's rows as a Markdown table (errors listed under it)."""
    errors = [f"- {r['model']}: {r['error']}" for r in report['rows'] if r.get('error')]
    return '\n'.join([rows_markdown(report['rows'], COLUMNS)] + ([''] + errors if errors else []))


def header_text(report: dict) -> str:
    """Return one paragraph about the bag and the run, above the table."""
    b = report['bag']
    cut = ' **cut off**: read up to where it ends;' if b['cut_off'] else ''
    return (
        f"Bag `{b['path']}` ({b['storage']}, {b['duration_s']:.1f} s):{cut} {b['paired']} of"
        f" {b['frames']} frame(s) of `{b['image_topic']}` answered on `{b['cmd_topic']}`"
        f" ({b['pairing']}; {b['unpaired']} skipped). {report['machine']}; {report['threads']}"
        f" thread(s); {report['latency']}."
    )


def write_reports(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write bag_eval.md and bag_eval.json in ``out_dir``."""
    return write_report_files(
        report,
        out_dir,
        'bag_eval',
        COLUMNS,
        header_text(report),
        formats=('md', 'json'),
        table=markdown_table(report),
    )


# -- the command ----------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``pilotnet bag-eval``'s options."""
    p.add_argument(
        'bag', help='rosbag2 folder (MCAP or sqlite3), .mcap or .db3 file, or ROS 1 .bag'
    )
    p.add_argument('--models', nargs='+', required=True,
                   help='model files or names in --models-dir, comma- or space-separated')
    p.add_argument(
        '--models-dir',
        default=DEFAULT_MODELS_DIR,
        help=f'where model names are looked up (default: {DEFAULT_MODELS_DIR})',
    )
    p.add_argument(
        '--image-topic', help='camera topic (default: the one Image or CompressedImage topic)'
    )
    p.add_argument(
        '--cmd-topic', help='command topic (default: the TwistStamped one, else the Twist one)'
    )
    p.add_argument(
        '--max-delay',
        type=float,
        default=0.2,
        help=(
            'seconds within which a Twist must follow its '
            'image to answer it (default: 0.2; TwistStamped pairs by header stamp)'
        ),
    )
    p.add_argument('--limit', type=positive_int, help='first N answered frames (default: all)')
    p.add_argument('--threads', type=int, default=1, help='inference threads (default: 1)')
    p.add_argument(
        '--warmup', type=int, default=10, help='untimed calls per model first (default: 10)'
    )
    p.add_argument('--backend', default='auto', help='auto|litert|tensorflow|onnxruntime|tensorrt')
    p.add_argument('--out', help='folder for bag_eval.md and bag_eval.json')
    p.add_argument(
        '--json', action='store_true', help='print JSON instead of a table (and no progress lines)'
    )


def run(args: argparse.Namespace) -> int:
    """
    Run ``pilotnet bag-eval BAG --models a,b``.

    Exit 0 when at least one model ran, 1 when none did.
    """
    report = evaluate_bag(
        args.bag,
        split_names(args.models),
        models_dir=args.models_dir,
        image_topic=args.image_topic,
        cmd_topic=args.cmd_topic,
        max_delay=args.max_delay,
        limit=args.limit,
        threads=args.threads,
        warmup=args.warmup,
        backend=args.backend,
        progress=None if args.json else print,
    )
    paths = write_reports(report, args.out) if args.out else {}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(header_text(report))
        print(markdown_table(report))
        if paths:
            print('wrote ' + ', '.join(str(p) for p in paths.values()))
    return 0 if any(r['status'] == 'ok' for r in report['rows']) else 1
