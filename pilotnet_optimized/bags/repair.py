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
rosbag2 MCAP bags that survive a killed recorder, without ROS.

What a killed writer leaves: rosbags' MCAP writer (like rosbag2's) keeps the current chunk (up to 1
MiB of messages) in memory, writes the MCAP summary and footer only when it closes, and
``metadata.yaml`` only then too. After a SIGKILL (or a power cut, or an out-of-memory kill) the
``.mcap`` file ends in the middle of the data section, often inside a record, and there is no
``metadata.yaml``: no reader opens it.

How the recorder node keeps a bag readable (see :mod:`pilotnet_optimized.nodes.recorder_node`):

- every ``flush_period`` it closes the pending chunk and flushes the file to the operating system
  (a killed process loses nothing the kernel already has), and rewrites ``metadata.yaml``
  (atomically) with the counts so far and ``custom_data: {complete: 'false'}``;
- :func:`repair_bag` then makes the cut-off bag a valid one: it walks the file record by record,
  cuts it after the last complete record (a half-written chunk is dropped whole), appends an MCAP
  ``DataEnd`` record and a footer without a summary (readers then scan the file, which rosbags and
  the ``mcap`` library both do), and rewrites ``metadata.yaml`` from what is really there. At most
  one ``flush_period`` of messages is lost.

Reading a cut-off bag needs no repair (:func:`pilotnet_optimized.bags.read.open_bag` streams it
read-only); repairing makes it a valid bag for every other tool (``ros2 bag info``, Foxglove).
``pilotnet bag-repair <bag>`` repairs a bag and prints its topics.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
import struct
import sys
from typing import Any

from pilotnet_optimized.bags.read import MCAP_MAGIC, open_bag
from pilotnet_optimized.errors import BagError

__all__ = [
    'BagRepair',
    'bag_is_complete',
    'bag_metadata',
    'repair_bag',
    'write_bag_metadata',
    'add_arguments',
    'run',
]

_OP_HEADER, _OP_FOOTER, _OP_DATA_END = 0x01, 0x02, 0x0F
_KNOWN_OPS = frozenset(range(0x01, 0x10))
# opcode, length 20, summary_start, summary_offset_start, summary_crc
_FOOTER = struct.Struct('<BQQQI')
_DATA_END = struct.Struct('<BQI')          # opcode, length 4, data_section_crc (0: not computed)
_RECORD_HEAD = struct.Struct('<BQ')


@dataclass(frozen=True)
class BagRepair:
    """
    What :func:`repair_bag` did.

    :param path: the ``.mcap`` file.
    :param repaired: whether the file had to be cut and closed (``False``: it was complete).
    :param dropped_bytes: bytes cut off the end (a half-written record).
    :param message_count: messages in the bag afterwards.
    """

    path: Path
    repaired: bool
    dropped_bytes: int
    message_count: int


def _mcap_files(bag: Path) -> list[Path]:
    if bag.is_file():
        return [bag]
    files = sorted(bag.glob('*.mcap'))
    if not files:
        raise BagError(f'{bag}: no .mcap file in this folder')
    return files


def _has_footer(path: Path) -> bool:
    size = path.stat().st_size
    if size < len(MCAP_MAGIC) * 2 + _FOOTER.size:
        return False
    with path.open('rb') as fh:
        fh.seek(size - _FOOTER.size - len(MCAP_MAGIC))
        tail = fh.read()
    return tail[-8:] == MCAP_MAGIC and tail[0] == _OP_FOOTER and tail[1:9] == struct.pack('<Q', 20)


def bag_is_complete(bag: str | Path) -> bool:
    """
    Check whether a bag is complete.

    It is when every ``.mcap`` file of a bag folder (or the file) ends with a footer and the folder
    has a ``metadata.yaml``.
    """
    bag = Path(bag)
    files = _mcap_files(bag)
    return all(_has_footer(f) for f in files) and (
        bag.is_file() or (bag / 'metadata.yaml').is_file()
    )


def _last_complete_record(path: Path) -> int:
    """
    Return the offset just past the last complete record of the data section.

    The header record is the least it keeps.
    """
    size = path.stat().st_size
    with path.open('rb') as fh:
        if fh.read(8) != MCAP_MAGIC:
            raise BagError(f'{path}: not an MCAP file (bad magic)')
        end = 8
        first = True
        while True:
            head = fh.read(_RECORD_HEAD.size)
            if len(head) < _RECORD_HEAD.size:
                break
            op, length = _RECORD_HEAD.unpack(head)
            if op not in _KNOWN_OPS or (first and op != _OP_HEADER):
                break
            if op in (_OP_DATA_END, _OP_FOOTER):
                # the data section ends here: a summary written half way is dropped and rewritten
                break
            if end + _RECORD_HEAD.size + length > size:
                break    # cut off inside this record
            fh.seek(length, 1)
            end += _RECORD_HEAD.size + length
            first = False
    if end == 8:
        raise BagError(f'{path}: no complete MCAP header record')
    return end


def _repair_file(path: Path) -> tuple[bool, int]:
    if _has_footer(path):
        return False, 0
    end = _last_complete_record(path)
    dropped = path.stat().st_size - end
    with path.open('r+b') as fh:
        fh.truncate(end)
        fh.seek(end)
        fh.write(_DATA_END.pack(_OP_DATA_END, 4, 0))
        # summary_start 0: no summary section; readers scan the data section instead.
        fh.write(_FOOTER.pack(_OP_FOOTER, 20, 0, 0, 0))
        fh.write(MCAP_MAGIC)
    return True, dropped


def bag_metadata(connections: Sequence[Any], counts: Mapping[int, int], start_ns: int, end_ns: int,
                 files: Sequence[str], custom_data: Mapping[str, str] | None = None,
                 version: int = 9) -> dict[str, Any]:
    """
    Return rosbag2's ``metadata.yaml`` content (as rosbags' writer writes it).

    It describes MCAP ``files`` holding ``counts`` messages per connection id of rosbags
    ``connections``.
    """
    from rosbags.rosbag2.metadata import dump_qos_v8, dump_qos_v9

    dump_qos = dump_qos_v9 if version >= 9 else dump_qos_v8
    count = sum(counts.values())
    start = start_ns if count else 0
    duration = max(0, end_ns - start_ns) if count else 0
    return {
        'rosbag2_bagfile_information': {
            'version': version,
            'storage_identifier': 'mcap',
            'relative_file_paths': list(files),
            'duration': {'nanoseconds': duration},
            'starting_time': {'nanoseconds_since_epoch': start},
            'message_count': count,
            'topics_with_message_count': [
                {
                    'topic_metadata': {
                        'name': c.topic,
                        'type': c.msgtype,
                        'serialization_format': getattr(c.ext, 'serialization_format', 'cdr'),
                        'offered_qos_profiles': dump_qos(
                            list(getattr(c.ext, 'offered_qos_profiles', []))
                        ),
                        'type_description_hash': c.digest,
                    },
                    'message_count': int(counts.get(c.id, 0)),
                }
                for c in connections
            ],
            'compression_format': '',
            'compression_mode': '',
            'files': [
                {
                    'path': name,
                    'starting_time': {'nanoseconds_since_epoch': start},
                    'duration': {'nanoseconds': duration},
                    'message_count': count,
                }
                for name in files
            ],
            'custom_data': dict(custom_data) if custom_data else None,
            'ros_distro': 'rosbags',
        }
    }


def write_bag_metadata(folder: str | Path, metadata: Mapping[str, Any]) -> Path:
    """Write ``metadata.yaml`` into a bag folder atomically (temporary file, then rename)."""
    from ruamel.yaml import YAML

    yaml = YAML(typ='safe')
    yaml.default_flow_style = False
    text = StringIO()
    yaml.dump(dict(metadata), text)
    path = Path(folder) / 'metadata.yaml'
    tmp = path.with_suffix('.yaml.tmp')
    tmp.write_text(text.getvalue(), encoding='utf-8')
    tmp.replace(path)
    return path


def repair_bag(bag: str | Path) -> list[BagRepair]:
    """
    Make a bag a killed recorder left readable.

    Close each cut-off ``.mcap`` file after its last complete record and rewrite ``metadata.yaml``
    from the files' contents (see the module documentation). A complete bag is left as it is (its
    ``metadata.yaml`` is written only when missing).

    :param bag: a rosbag2 folder of MCAP files, or one ``.mcap`` file.
    :raises BagError: when a file is not MCAP or has not even a header.
    """
    bag = Path(bag)
    files = _mcap_files(bag)
    fixes = [(f, *_repair_file(f)) for f in files]
    folder = None if bag.is_file() else bag
    needs_metadata = folder is not None and (
        any(r for _, r, _ in fixes) or not (folder / 'metadata.yaml').is_file()
    )
    results: list[BagRepair] = []
    connections: list[Any] = []
    counts: dict[int, int] = {}
    start, end = 2 ** 63 - 1, 0
    for path, repaired, dropped in fixes:
        with open_bag(path) as source:
            total = 0
            for conn in source.connections:
                # Topics are numbered per file by rosbags: key them by (topic, type) across files.
                known = next(
                    (c for c in connections if (c.topic, c.msgtype) == (conn.topic, conn.msgtype)),
                    None,
                )
                if known is None:
                    connections.append(conn._replace(id=len(connections) + 1))
                    known = connections[-1]
                counts[known.id] = counts.get(known.id, 0) + conn.msgcount
                total += conn.msgcount
            if total:
                start, end = min(start, source.start_ns or start), max(
                    end, (source.end_ns or 1) - 1
                )
        results.append(BagRepair(path, repaired, dropped, total))
    if needs_metadata and folder is not None:
        custom = (
            {'complete': 'false', 'repaired': 'true'} if any(r.repaired for r in results) else None
        )
        write_bag_metadata(
            folder, bag_metadata(connections, counts, start, end, [f.name for f in files], custom)
        )
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pilotnet bag-repair`` arguments."""
    parser.add_argument(
        'bags', nargs='+', metavar='BAG', help='rosbag2 folder of MCAP files, or one .mcap file'
    )


def run(args: argparse.Namespace) -> int:
    """
    Run ``pilotnet bag-repair BAG...``.

    Repair each bag and print its topics and counts; return 1 if any failed.
    """
    code = 0
    for arg in args.bags:
        try:
            for fix in repair_bag(arg):
                state = (
                    f'repaired ({fix.dropped_bytes} bytes of a cut-off record dropped)'
                    if fix.repaired
                    else 'complete'
                )
                print(f'{fix.path}: {state}, {fix.message_count} messages')
            with open_bag(arg) as source:
                for conn in source.connections:
                    print(f'  {conn.topic} ({conn.msgtype}): {conn.msgcount}')
        except (BagError, OSError) as err:
            print(f'{arg}: error: {err}', file=sys.stderr)
            code = 1
    return code
