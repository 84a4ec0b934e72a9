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
The one bag reader: ROS 1 ``.bag``, rosbag2 folders (MCAP or sqlite3).

Bare ``.mcap`` / ``.db3`` files, and MCAP files a killed recorder cut off, all read-only.

:func:`open_bag` opens what :class:`rosbags.highlevel.AnyReader` can; an MCAP file without a usable
index (a recorder that was killed leaves one with no summary, and perhaps ``metadata.yaml`` missing
or stale) is read as a stream with the ``mcap`` library instead, its messages decoded with rosbags'
CDR deserialiser from the schemas in the file. Each such fallback adds a line to the source's
``warnings``; nothing is written to the bag (to mend it for other tools,
:func:`pilotnet_optimized.bags.repair.repair_bag`).

One typestore rule: a bag's own message definitions win; a bag without any (old ``.db3`` bags,
empty MCAP schemas) falls back to Noetic's for a ROS 1 bag, Humble's otherwise
(:func:`default_typestore`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
import re
import sqlite3
import struct
from typing import Any

from pilotnet_optimized.errors import BagError, one_line

__all__ = [
    'BAG_READ_ERRORS',
    'BAG_SUFFIXES',
    'MCAP_MAGIC',
    'BagMessage',
    'BagSource',
    'default_typestore',
    'open_bag',
]

MCAP_MAGIC = b'\x89MCAP0\r\n'
#: Single-file bag formats; a directory is read as a rosbag2 folder.
BAG_SUFFIXES = ('.bag', '.mcap', '.db3')


def _read_errors() -> tuple[type[BaseException], ...]:
    # Everything rosbags, the mcap library and their storage back-ends (sqlite3, lz4/zstd, struct
    # parsing of a damaged file) raise on a bad bag. AnyReader wraps most, but not errors met while
    # iterating.
    from mcap.exceptions import McapError
    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag1 import ReaderError as Ros1ReaderError
    from rosbags.rosbag2 import ReaderError as Ros2ReaderError
    from rosbags.serde import SerdeError
    from rosbags.typesys import TypesysError
    return (
        McapError,
        AnyReaderError,
        Ros1ReaderError,
        Ros2ReaderError,
        SerdeError,
        TypesysError,
        OSError,
        EOFError,
        struct.error,
        ValueError,
        KeyError,
        IndexError,
        RuntimeError,
        sqlite3.Error,
    )


BAG_READ_ERRORS: tuple[type[BaseException], ...] = _read_errors()


@dataclass(frozen=True)
class BagMessage:
    """
    One message as stored.

    ``raw`` bytes (CDR, or ROS 1 serialisation for a ROS 1 bag) and ``decode()``, which
    deserialises it outside the iterator, so a read error (a cut-off file) and a message that does
    not decode are told apart.
    """

    topic: str
    msgtype: str
    record_ns: int
    raw: bytes
    decode: Callable[[], Any]


@dataclass
class BagSource:
    """
    One opened bag: its topics (name -> type) and a message iterator in record order.

    ``messages(topics)`` raises one of :data:`BAG_READ_ERRORS` where a cut-off file ends; what came
    before is good. Where AnyReader opened the bag, ``connections`` are rosbags' connection records
    (with message counts and QoS) and ``start_ns``/``end_ns`` its time range; a stream has none of
    those.
    """

    path: Path
    storage: str
    topics: dict[str, str]
    ros1: bool
    _messages: Callable[[set[str]], Iterator[BagMessage]]
    duration_ns: int | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    connections: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    close: Callable[[], None] = lambda: None

    def messages(self, topics: set[str] | None = None) -> Iterator[BagMessage]:
        """Return the messages on ``topics`` (default: every topic), in record order."""
        return self._messages(set(self.topics) if topics is None else set(topics))

    def __enter__(self) -> BagSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_typestore(ros1: bool) -> Any:
    """
    Return the typestore for messages whose bag carries no definition.

    Noetic's for ROS 1, Humble's for rosbag2.
    """
    from rosbags.typesys import get_typestore, Stores
    return get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)


def _anyreader_source(path: Path, storage: str) -> BagSource:
    from rosbags.highlevel import AnyReader
    ros1 = path.suffix.lower() == '.bag' and not path.is_dir()
    reader = AnyReader([path], default_typestore=default_typestore(ros1))
    reader.open()
    try:
        return _wrap_reader(reader, path, storage, ros1)
    except BaseException:
        reader.close()
        raise


def _wrap_reader(reader: Any, path: Path, storage: str, ros1: bool) -> BagSource:
    topics = {c.topic: c.msgtype for c in reader.connections}
    try:
        duration = int(reader.duration) if reader.message_count else 0
        start, end = (
            (int(reader.start_time), int(reader.end_time))
            if reader.message_count
            else (None, None)
        )
    except BAG_READ_ERRORS:
        duration = start = end = None

    def messages(wanted: set[str]) -> Iterator[BagMessage]:
        conns = [c for c in reader.connections if c.topic in wanted]
        for conn, stamp, raw in reader.messages(connections=conns):
            yield BagMessage(
                conn.topic,
                conn.msgtype,
                int(stamp),
                raw,
                _lazy(reader.deserialize, raw, conn.msgtype),
            )

    return BagSource(
        path,
        storage,
        topics,
        ros1,
        messages,
        duration,
        start,
        end,
        list(reader.connections),
        close=reader.close,
    )


def _lazy(func: Callable[[Any, str], Any], raw: Any, msgtype: str) -> Callable[[], Any]:
    return lambda: func(raw, msgtype)


def _mcap_stream_source(path: Path) -> BagSource:
    """
    Return a bare or cut-off MCAP file read front to back (no summary needed).

    Types from its schema records.
    """
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader
    from rosbags.typesys import get_typestore, Stores, TypesysError

    with path.open('rb') as fh:
        if fh.read(8) != MCAP_MAGIC:
            raise BagError(f'{path}: not an MCAP file (bad magic bytes)')
    # A first pass finds the channels (they may sit inside chunks, so the whole file is read).
    channels: dict[int, tuple[str, int]] = {}
    schema_names: dict[int, str] = {}
    try:
        with path.open('rb') as fh:
            for record in StreamReader(fh).records:
                if isinstance(record, Schema):
                    schema_names[record.id] = record.name
                elif isinstance(record, Channel):
                    channels[record.id] = (record.topic, record.schema_id)
    except BAG_READ_ERRORS:
        pass  # cut off: the second pass meets the same end and reports it
    topics = {topic: schema_names.get(sid, '') for topic, sid in channels.values()}
    store = get_typestore(Stores.EMPTY)
    fallback = default_typestore(ros1=False)

    def register(schema: Any) -> None:
        data = schema.data.decode() if isinstance(schema.data, bytes) else str(schema.data)
        if data.strip():  # an empty schema: decode() uses the default (Humble) definitions
            try:
                store.register(_types_from_schema(schema.name, schema.encoding, data))
            except TypesysError as err:  # not a cut-off file: a definition rosbags cannot parse
                raise BagError(
                    f'{path}: schema of {schema.name} cannot be used: {one_line(err)}'
                ) from err

    def decode(raw: bytes, msgtype: str) -> Any:
        typestore = store if msgtype in store.fielddefs else fallback
        return typestore.deserialize_cdr(raw, msgtype)

    def messages(wanted: set[str]) -> Iterator[BagMessage]:
        schemas: dict[int, Any] = {}
        chan: dict[int, tuple[str, str]] = {}
        with path.open('rb') as fh:
            for record in StreamReader(fh).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    schema = schemas.get(record.schema_id)
                    name = schema.name if schema is not None else ''
                    if (
                        record.topic in wanted
                        and schema is not None
                        and name not in store.fielddefs
                    ):
                        register(schema)
                    chan[record.id] = (record.topic, name)
                elif isinstance(record, Message) and record.channel_id in chan:
                    topic, msgtype = chan[record.channel_id]
                    if topic in wanted:
                        yield BagMessage(topic, msgtype, int(record.log_time), record.data,
                                         _lazy(decode, record.data, msgtype))

    return BagSource(path, 'mcap (read as a stream: no index)', topics, False, messages)


def _types_from_schema(name: str, encoding: str, data: str) -> dict:
    # As rosbags' AnyReader does for the definitions a rosbag2 bag carries.
    from rosbags.typesys import get_types_from_idl, get_types_from_msg
    if encoding == 'ros2idl':
        sep = '=' * 80 + '\n'
        if data.startswith(f'{sep}IDL: '):
            types: dict = {}
            for part in data.split(sep)[1:]:
                types.update(get_types_from_idl(part.split('\n', 1)[1]))
            return types
        return get_types_from_idl(data)
    return get_types_from_msg(data, name)


def _storage_of(folder: Path) -> str:
    suffixes = {p.suffix for p in folder.iterdir()}
    return 'mcap' if '.mcap' in suffixes else 'sqlite3' if '.db3' in suffixes else 'rosbag2'


def _cut_off(path: Path) -> bool:
    """Check whether an ``.mcap`` file lacks its closing magic (a writer killed before close)."""
    try:
        with path.open('rb') as fh:
            fh.seek(0, 2)
            if fh.tell() < 2 * len(MCAP_MAGIC):
                return True
            fh.seek(-len(MCAP_MAGIC), 2)
            return fh.read() != MCAP_MAGIC
    except OSError:
        return False


def _cut_off_warning(path: Path, bag: Path) -> str:
    return (
        f'{path}: the bag was cut off (no MCAP footer or index: its recorder was killed, or the'
        f' disk filled, before it closed the file): reading it up to the cut;'
        f' `pilotnet bag-repair {bag}` closes it for other tools (ros2 bag, Foxglove)'
    )


def _open_file(path: Path, warnings: list[str], bag: Path | None = None) -> BagSource:
    suffix = path.suffix.lower()
    if suffix not in ('.bag', '.mcap', '.db3'):
        raise BagError(
            f'{path}: unknown bag format {path.suffix!r} (expected a rosbag2 folder, .mcap, .db3'
            ' or a ROS 1 .bag)'
        )
    storage = {'.bag': 'rosbag1', '.mcap': 'mcap', '.db3': 'sqlite3'}[suffix]
    try:
        return _anyreader_source(path, storage)
    except BAG_READ_ERRORS as err:
        if suffix != '.mcap':
            hint = (
                ' (a cut-off ROS 1 bag needs `rosbag reindex` first)' if suffix == '.bag' else ''
            )
            raise BagError(f'{path}: cannot read bag: {one_line(err)}{hint}') from err
        reason = one_line(err)
    if _cut_off(path):
        warnings.append(_cut_off_warning(path, bag or path))
    else:
        warnings.append(f'{path}: no usable MCAP index ({reason}): reading it as a stream')
    try:
        return _mcap_stream_source(path)
    except BAG_READ_ERRORS as err:
        raise BagError(f'{path}: cannot read bag: {one_line(err)}') from err


def _chain(folder: Path, files: list[Path], warnings: list[str]) -> BagSource:
    """
    Return the storage files of a folder whose metadata.yaml is missing or unusable.

    Read one after the other.
    """
    sources = [_open_file(f, warnings, folder) for f in files]
    topics: dict[str, str] = {}
    for s in sources:
        for topic, msgtype in s.topics.items():
            topics.setdefault(topic, msgtype)
    storage = sources[0].storage if len({s.storage for s in sources}) == 1 else 'mixed'

    def messages(wanted: set[str]) -> Iterator[BagMessage]:
        for s in sources:
            yield from s.messages(wanted)

    def close() -> None:
        for s in sources:
            s.close()

    return BagSource(folder, storage, topics, False, messages, close=close)


def open_bag(path: str | Path) -> BagSource:
    """
    Open a bag read-only (see the module documentation).

    Use it as a context manager, or ``close()`` it.

    :raises BagError: for a missing path, an unknown format, or a bag that no reader opens.
    """
    path = Path(path)
    warnings: list[str] = []
    source = _open(path, warnings)
    source.warnings = warnings
    return source


def _open(path: Path, warnings: list[str]) -> BagSource:
    if not path.exists():
        raise BagError(f'{path}: no such file or directory')
    if not path.is_dir():
        return _open_file(path, warnings)
    files = sorted(path.glob('*.mcap'), key=_natural) or sorted(path.glob('*.db3'), key=_natural)
    if (path / 'metadata.yaml').is_file():
        listed = _listed_files(path / 'metadata.yaml')
        unlisted = [f.name for f in files if listed is not None and f.name not in listed]
        if unlisted:  # a recorder killed after it split the bag, before it rewrote metadata.yaml
            problem = f'metadata.yaml is stale (does not list {", ".join(unlisted)})'
        else:
            try:
                return _anyreader_source(path, _storage_of(path))
            except BAG_READ_ERRORS as err:
                problem = f'metadata.yaml or its storage unusable ({one_line(err)})'
                if any(f.suffix == '.mcap' and _cut_off(f) for f in files):
                    problem = ''   # a cut-off file: its own warning says so, and how to repair
    else:
        problem = 'no metadata.yaml'
    if not files:
        raise BagError(f'{path}: not a bag: {problem}, and no .mcap or .db3 file in it')
    if problem:
        warnings.append(f'{path}: {problem}: reading {", ".join(f.name for f in files)} directly')
    return _chain(path, files, warnings)


def _natural(path: Path) -> list[Any]:
    """Return a natural sort key for a file name: run_2.mcap before run_10.mcap."""
    return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', path.name)]


def _listed_files(metadata: Path) -> set[str] | None:
    """
    Return the storage file names metadata.yaml lists.

    ``None`` when it cannot be read (rosbags will say why).
    """
    import yaml
    try:
        info = yaml.safe_load(metadata.read_text())['rosbag2_bagfile_information']
        return {Path(str(p)).name for p in info['relative_file_paths']}
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
