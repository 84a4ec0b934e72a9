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
The recorder node: a rosbag2 bag (MCAP storage) of the run's topics.

Readable even after a SIGKILL.

The topics of the graph whose types are known (:data:`KNOWN_TOPICS`: the default ``topics``) are
subscribed at start-up, with the QoS their publishers in this package offer (:mod:`.qos`: best
effort for the camera, transient local for the latched status topics): the subscriptions exist
before the publishers appear, so that nothing of the start of a run is lost to a late discovery.
Any other topic of ``topics`` is subscribed as soon as it has a publisher in the graph, with its
type from the graph and a QoS that matches its publishers (as ``ros2 bag record`` adapts it). Every
subscription is ``raw``: the serialised CDR bytes go into the bag as they arrived, with no
deserialising. Messages are stamped with their receive time on the node clock (with
``use_sim_time``: simulated time, as ``ros2 bag record --use-sim-time`` does). The writer is
rosbags' (``StoragePlugin.MCAP``), the message definitions come from rosbags' ROS 2 type store.

The bag is ``output_dir``/``bag_name``. A killed recorder leaves a bag that
:func:`pilotnet_optimized.bags.repair. open_bag` (or
``python -m pilotnet_optimized.bags.repair <bag>``) repairs and reads: every ``flush_period`` the
pending MCAP chunk is written out and flushed, and ``metadata.yaml`` is rewritten with the counts
so far (see :mod:`pilotnet_optimized.bags.repair`). SIGINT/SIGTERM close the bag properly (summary,
footer, final ``metadata.yaml``); the bag path and the message counts are logged.

Chunks are compressed (``compression``: ``zstd`` at level 1 by default, ``lz4`` or ``none``), the
MCAP way: every MCAP reader (rosbags, Foxglove's ``mcap``, ``ros2 bag``) reads them; nothing else
changes. In lock-step nothing is lost: the recorder acknowledges the newest odometry and camera
frame it has taken on ``/sim/observed``, and the simulator waits for it (a resent frame, which the
brain also gets again, is recorded once). At the end it writes ``<output_dir>/recording.json``:
per topic the messages recorded and, for the simulator's topics, published (from the simulator's
``end`` event) and dropped (in real time, where nothing waits for the recorder, the count it
missed; it is logged too).
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
import struct
import sys
import tempfile
import time
from typing import Any

from pilotnet_optimized.bags.images import cdr_header_stamp_ns
from pilotnet_optimized.bags.repair import bag_metadata, write_bag_metadata
from pilotnet_optimized.errors import PilotnetError
from pilotnet_optimized.nodes import qos, topics
from pilotnet_optimized.nodes.graph import resolve_output_dir
from pilotnet_optimized.nodes.observer import matched_publishers, ObserverAck
from pilotnet_optimized.nodes.params import declare_parameters, param, ParamSpec
from pilotnet_optimized.nodes.spin import drain_node, spin_node
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                QosTime)
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.typesys import get_typestore, Stores

try:   # Iron and later (Jazzy, Kilted)
    from rclpy.event_handler import QoSRequestedIncompatibleQoSInfo, SubscriptionEventCallbacks
except ImportError:   # Humble: the same classes, in the module that Iron renamed
    from rclpy.qos_event import (QoSRequestedIncompatibleQoSInfo,  # type: ignore[no-redef]
                                 SubscriptionEventCallbacks)

__all__ = ['RecorderNode', 'PARAMETERS', 'KNOWN_TOPICS', 'DEFAULT_TOPICS', 'main']

# The QoS each of the graph's topics is published with in this package (nodes.qos).
_OFFERED: dict[str, QoSProfile] = {
    topics.CAMERA: qos.CAMERA,
    topics.COMMAND: qos.COMMAND,
    topics.STAMPED_COMMAND: qos.COMMAND,
    topics.ODOMETRY: qos.ODOMETRY,
    topics.INFERENCE_TIMING: qos.TIMING,
    topics.SIM_STATUS: qos.STATUS,
    topics.INFERENCE_STATUS: qos.STATUS,
}
#: The graph's topics, with their types and the QoS their publishers offer: subscribed at start-up.
KNOWN_TOPICS: dict[str, tuple[str, QoSProfile]] = {topic: (msgtype, _OFFERED[topic])
                                                   for topic, msgtype in topics.TYPES.items()}
DEFAULT_TOPICS = list(KNOWN_TOPICS)
DISCOVERY_PERIOD_S = 0.1
#: Queue depth of every subscription: the recorder must not drop a burst (a camera frame is 0.9 MB:
#: 10 of them).
DEPTH = 100
IMAGE_DEPTH = 10
COMPRESSION_CHOICES = ('zstd', 'lz4', 'none')
#: zstd level: 1 keeps up with 640x480 frames at several times real time on one core (12x smaller).
ZSTD_LEVEL = 1
RECORDING_JSON = 'recording.json'

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        'output_dir',
        '',
        "the run's folder; the bag is <output_dir>/<bag_name>; {time} becomes the UTC start "
        "time; '' = runs/{time}",
        read_only=True,
    ),
    ParamSpec(
        'bag_name',
        'bag',
        'name of the bag folder in output_dir (it must not exist yet)',
        read_only=True,
    ),
    ParamSpec(
        'topics',
        list(DEFAULT_TOPICS),
        "topics to record: the graph's own are subscribed at start-up, any "
        'other once it has a publisher (its type and QoS are then taken from the publishers)',
        read_only=True,
    ),
    ParamSpec(
        'compression',
        'zstd',
        'MCAP chunk compression (lossless): zstd (level 1), lz4 or none',
        choices=COMPRESSION_CHOICES,
        read_only=True,
    ),
    ParamSpec(
        'flush_period',
        0.5,
        'seconds between flushes of the bag to disk: a killed recorder loses at most this much',
        float_range=(0.05, 60.0),
        read_only=True,
    ),
)


def _typestore() -> Any:
    """
    Return rosbags' type store of this ROS distro, else the latest.

    The type store holds the message definitions and hashes for the bag.
    """
    distro = os.environ.get('ROS_DISTRO', '').strip().lower()
    try:
        return get_typestore(Stores(f'ros2_{distro}'))
    except ValueError:
        return get_typestore(Stores.LATEST)


def _message_class(msgtype: str) -> Any:
    """Return the rclpy message class of a type name such as ``sensor_msgs/msg/Image``."""
    package, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


def _bag_qos(profile: QoSProfile) -> Qos:
    """
    Return a publisher's QoS as rosbags writes it into the bag.

    ``ros2 bag play`` then offers the same.
    """
    zero = QosTime(0, 0)
    return Qos(
        QosHistory(int(profile.history)),
        int(profile.depth),
        QosReliability(int(profile.reliability)),
        QosDurability(int(profile.durability)),
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


class RecorderNode(Node):
    """
    Records ``topics`` into a rosbag2 MCAP bag; see the module documentation.

    :param kwargs: passed to :class:`rclpy.node.Node` (``context``, ``parameter_overrides``...).
    :raises PilotnetError: when the bag folder exists already or cannot be created.
    """

    def __init__(self, node_name: str = 'recorder_node', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self, PARAMETERS)
        self.bag_path = resolve_output_dir(str(param(self, 'output_dir'))) / str(
            param(self, 'bag_name')
        )
        self._wanted = [str(t) for t in param(self, 'topics')]
        self._store = _typestore()
        try:
            self._writer = Writer(self.bag_path, version=9, storage_plugin=StoragePlugin.MCAP)
            self.bag_path.parent.mkdir(parents=True, exist_ok=True)
            self._writer.open()
        except (WriterError, OSError) as err:
            raise PilotnetError(f'cannot record to {self.bag_path}: {err}') from err
        self._writer.set_custom_data('recorded_by', 'pilotnet_optimized recorder_node')
        self.compression = _set_chunk_compression(self._writer, str(param(self, 'compression')))
        self._writer.set_custom_data('chunk_compression', self.compression)
        _spill_chunk_index(self._writer)
        self._resolved = {t: self.resolve_topic_name(t) for t in self._wanted}
        self._ack_out = ObserverAck(self, self._inputs)
        self._odom_ns = -1
        # -1: recording the camera, no frame yet (the simulator then waits for its first one)
        self._frame_ns: int | None = -1 if topics.CAMERA in self._wanted else None
        self._last_image_ns: dict[int, int] = {}
        self._resends = 0
        self._sim_end: dict[str, Any] | None = None
        self._recording: dict[str, Any] = {}
        self._skipped: set[str] = set()
        self._closed = False
        self._dirty = False
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._discovery = self.create_timer(DISCOVERY_PERIOD_S, self._discover, clock=steady)
        self.create_timer(float(param(self, 'flush_period')), self.flush, clock=steady)
        for topic in self._wanted:
            if topic in KNOWN_TOPICS and topic not in self._recording:
                msgtype, offered = KNOWN_TOPICS[topic]
                self._subscribe(topic, msgtype, [offered], quiet=True)
        self._write_metadata(complete=False)
        self.get_logger().info(f"recording {', '.join(self._wanted)} to {self.bag_path}")

    # -- subscriptions ----------------------------------------------------------------------------
    def _discover(self) -> None:
        """
        Subscribe to each wanted topic of an unknown type once it has a publisher.

        Its type and QoS come from there.
        """
        missing = [t for t in self._wanted if t not in self._recording and t not in self._skipped]
        if not missing:
            self._discovery.cancel()
            return
        types = dict(self.get_topic_names_and_types())
        for topic in missing:
            publishers = self.get_publishers_info_by_topic(topic) if topic in types else []
            if publishers:
                self._subscribe(topic, types[topic][0], [p.qos_profile for p in publishers])

    def _subscribe(
        self, topic: str, msgtype: str, profiles: list[QoSProfile], quiet: bool = False
    ) -> None:
        """
        Subscribe to ``topic`` (raw) and add its connection to the bag.

        The subscription has a QoS that every one of the offered ``profiles`` matches.
        ``quiet``: no log line (the start-up line lists the topics).
        """
        try:
            cls = _message_class(msgtype)
            conn = self._writer.add_connection(
                topic,
                msgtype,
                typestore=self._store,
                offered_qos_profiles=[_bag_qos(p) for p in profiles],
            )
        except Exception as err:
            # A type the store does not know is skipped, not fatal
            self._skipped.add(topic)
            self.get_logger().warning(f'not recording {topic} ({msgtype}): {err}')
            return
        reliable = all(p.reliability == ReliabilityPolicy.RELIABLE for p in profiles)
        latched = all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles)
        profile = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=IMAGE_DEPTH if msgtype.endswith('/Image') else DEPTH,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        )
        # A publisher that offers less than the package's own (a best-effort odometry) never
        # matches: say so.
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda info, t=topic: self._on_incompatible_qos(t, info))
        self._recording[topic] = self.create_subscription(
            cls,
            topic,
            lambda data, c=conn: self._on_message(c, data),
            profile,
            raw=True,
            event_callbacks=events,
        )
        if not quiet:
            self.get_logger().info(
                f"recording {topic} ({msgtype}, {'reliable' if reliable else 'best effort'}"
                f"{', transient local' if latched else ''})"
            )

    def _on_incompatible_qos(self, topic: str, info: QoSRequestedIncompatibleQoSInfo) -> None:
        self.get_logger().warning(
            f'not recording a publisher of {topic}: its QoS does not offer what the recorder '
            f'asks for (policy {info.last_policy_kind})',
            throttle_duration_sec=10.0,
        )

    def _on_message(self, conn: Any, data: bytes) -> None:
        if self._closed:
            return
        ack = False
        if conn.msgtype == topics.IMAGE_TYPE:
            stamp = cdr_header_stamp_ns(data)
            if stamp is not None and self._last_image_ns.get(conn.id) == stamp:
                self._resends += 1   # a lock-step simulator sent it again: recorded once
                self._ack(frame_ns=stamp)
                return
            if stamp is not None:
                self._last_image_ns[conn.id] = stamp
                if conn.topic == topics.CAMERA:
                    self._frame_ns, ack = max(stamp, self._frame_ns or -1), True
        elif conn.msgtype == topics.ODOMETRY_TYPE:
            stamp = cdr_header_stamp_ns(data)
            if stamp is not None:
                self._odom_ns, ack = max(stamp, self._odom_ns), True
        elif conn.topic == topics.SIM_STATUS:
            self._take_status(data)
        self._writer.write(conn, self.get_clock().now().nanoseconds, data)
        self._dirty = True
        if ack:
            self._ack()

    def _ack(self, frame_ns: int | None = None) -> None:
        frame = self._frame_ns if frame_ns is None else max(frame_ns, self._frame_ns or -1)
        self._ack_out.send(self._odom_ns, frame)

    def _inputs(self) -> dict[str, int]:
        """
        Return the publishers matched per recorded topic (0 for one not subscribed to yet).

        A lock-step simulator holds its first frame until each has reached what it sees in the
        graph, so that the bag starts with the run. Its own topics are there too: harmless, as the
        observer took odometry from it.
        """
        return {
            self._resolved[t]: (
                matched_publishers(self, self._recording[t]) if t in self._recording else 0
            )
            for t in self._wanted if t not in self._skipped
        }

    def _take_status(self, data: bytes) -> None:
        """Keep the simulator's ``end`` event (its published counts), from the raw CDR string."""
        try:
            little = data[1] == 1
            n = int.from_bytes(data[4:8], 'little' if little else 'big')
            event = json.loads(bytes(data[8:8 + n]).rstrip(b'\0').decode())
        except (ValueError, IndexError, UnicodeDecodeError):
            return
        if isinstance(event, dict) and event.get('event') == 'end':
            self._sim_end = event

    def recording(self) -> dict[str, Any]:
        """
        Return per topic: recorded, and (the simulator's topics) published and dropped.

        Published comes from the simulator's last ``end`` event (counted since it started).
        """
        counts = self.counts
        published = (self._sim_end or {}).get('published') or {}
        topics_out: dict[str, Any] = {}
        for topic, n in counts.items():
            row: dict[str, Any] = {'recorded': n}
            if topic in published and topic != topics.SIM_STATUS:
                row['published'] = int(published[topic])
                row['dropped'] = max(0, int(published[topic]) - n)
            topics_out[topic] = row
        mode = (self._sim_end or {}).get('mode')
        return {'bag': str(self.bag_path), 'compression': self.compression, 'mode': mode,
                'resent_frames_skipped': self._resends, 'topics': topics_out,
                'dropped': sum(r.get('dropped', 0) for r in topics_out.values())}

    # -- flushing and closing ---------------------------------------------------------------------
    @property
    def counts(self) -> dict[str, int]:
        """Return the messages written so far, per topic."""
        return {c.topic: self._writer.counts[c.id] for c in self._writer.connections}

    def flush(self) -> None:
        """
        Write the pending chunk out, flush the file to the OS, rewrite ``metadata.yaml``.

        What a SIGKILL leaves from here on is readable after
        :func:`~pilotnet_optimized.bags.repair.repair_bag`.
        """
        if self._closed or not self._dirty:
            return
        storage = self._writer.storage
        # rosbags' MCAP storage keeps the current chunk in memory until 1 MiB: close it early
        # (internals of rosbags.rosbag2.storage_mcap.McapWriter, checked so that another version
        # only loses the early flush).
        chunk = getattr(storage, 'chunk', None)
        if chunk is not None and getattr(chunk, 'msgs', None) and hasattr(storage, 'close_chunk'):
            storage.close_chunk()
        bio = getattr(storage, 'bio', None)
        if bio is not None:
            bio.flush()
        self._write_metadata(complete=False)
        self._dirty = False

    def _write_metadata(self, complete: bool) -> None:
        w = self._writer
        files = [f'{self.bag_path.name}.mcap']
        custom = {**w.custom_data, 'complete': 'true' if complete else 'false'}
        write_bag_metadata(
            self.bag_path,
            bag_metadata(w.connections, w.counts, w.min_timestamp, w.max_timestamp, files, custom),
        )

    def close(self) -> None:
        """
        Take what has arrived, then close the bag.

        Closing writes the summary, the footer and ``metadata.yaml``, and logs the counts.
        """
        if self._closed:
            return
        drain_node(self, seconds=1.0)
        self._closed = True
        self._writer.set_custom_data('complete', 'true')
        self._writer.close()
        counts = self.counts
        listing = ', '.join(f'{topic} {n}' for topic, n in counts.items()) or 'nothing'
        missing = [t for t in self._wanted if not counts.get(t)]
        self.get_logger().info(f'bag {self.bag_path}: {sum(counts.values())} messages ({listing})'
                               + (f"; never published: {', '.join(missing)}" if missing else ''))
        summary = self.recording()
        if self._sim_end is not None:
            dropped = {t: r['dropped'] for t, r in summary['topics'].items() if r.get('dropped')}
            if dropped:
                self.get_logger().warning(
                    'dropped (published by the simulator, not recorded): '
                    + ', '.join(f"{t} {n} of {summary['topics'][t]['published']}"
                                for t, n in dropped.items())
                )
            else:
                self.get_logger().info("dropped: none of the simulator's messages")
        try:
            _write_json(self.bag_path.parent / RECORDING_JSON, summary)
        except OSError as err:
            self.get_logger().error(f'cannot write {RECORDING_JSON}: {err}')

    def destroy_node(self) -> None:
        # A node stopped without close() (an exception in spin) still leaves a complete bag.
        if not getattr(self, '_closed', True) and getattr(self, '_writer', None) is not None:
            try:
                self._closed = True
                self._writer.close()
            except Exception:
                # Best effort at teardown; repair_bag handles what is left
                pass
        super().destroy_node()


def _set_chunk_compression(writer: Any, name: str) -> str:
    """
    Make rosbags' MCAP writer compress its chunks with ``name`` (zstd, lz4, none).

    rosbags compresses MCAP chunks only with zstd at its default level, chosen before opening; its
    storage writer's ``compression`` and ``compressor`` are set here instead (checked, so that
    another rosbags version records uncompressed rather than fails). Returns what is used.
    """
    storage = writer.storage
    if name == 'none' or not (hasattr(storage, 'compressor') and hasattr(storage, 'compression')):
        return 'none'
    if name == 'lz4':
        from lz4.frame import compress as lz4_compress
        storage.compression, storage.compressor = 'lz4', lz4_compress
    else:
        try:
            from compression import zstd
        except ImportError:   # Python < 3.14: the backport rosbags needs
            from backports import zstd
        storage.compression = 'zstd'
        storage.compressor = lambda data: zstd.compress(data, level=ZSTD_LEVEL)
    return name


class _SpilledRecords:
    """
    The MCAP writer's list of chunk-index records, kept in an anonymous temporary file.

    rosbags' MCAP storage keeps one chunk-index record per chunk in memory until ``close`` writes
    them into the summary. A camera frame is most of a 1 MiB chunk, so a 30-minute recording has
    tens of thousands of them: the recorder's memory grew with the length of the run (+7.6 % in
    the 30-minute soak). Here each record goes to a file as it comes and is read back, in order,
    at close; the file vanishes with the process, a killed one included.
    """

    _LENGTH = struct.Struct('<I')

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix='pilotnet-chunk-index-')
        self._count = 0

    def append(self, record: Any) -> None:
        data = record.getbuffer()
        self._file.write(self._LENGTH.pack(len(data)))
        self._file.write(data)
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Any:
        self._file.flush()
        self._file.seek(0)
        for _ in range(self._count):
            (n,) = self._LENGTH.unpack(self._file.read(self._LENGTH.size))
            yield _Record(self._file.read(n))
        self._file.seek(0, os.SEEK_END)


class _Record:
    """A finished record, as rosbags' ``write_record`` reads one (``tell``: its length)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def tell(self) -> int:
        return len(self._data)

    def getbuffer(self) -> memoryview:
        return memoryview(self._data)


def _spill_chunk_index(writer: Any) -> bool:
    """
    Give rosbags' MCAP storage a :class:`_SpilledRecords` for its chunk-index records.

    Internals of ``rosbags.rosbag2.storage_mcap.McapWriter``, checked: another version keeps its
    own list (memory then grows with the run, nothing else changes). Returns whether it took.
    """
    storage = getattr(writer, 'storage', None)
    chunks = getattr(storage, 'chunks', None)
    if not isinstance(chunks, list) or chunks or not hasattr(storage, 'close_chunk'):
        return False
    storage.chunks = _SpilledRecords()
    return True


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f'.{path.name}.tmp')
    tmp.write_text(json.dumps(data, indent=2) + '\n', encoding='utf-8')
    tmp.replace(path)


def _bag_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob('*.mcap')) if path.is_dir() else 0


def main(args: list[str] | None = None) -> int:
    """
    Run the recorder node: record until SIGINT/SIGTERM.

    ``ros2 run pilotnet_optimized recorder_node --ros-args -p output_dir:=runs/x``.

    :returns: 0 after a signal, 2 when the node cannot start (one line on stderr says why).
    """
    start = time.monotonic()

    def stop(node: RecorderNode) -> None:
        node.close()
        size = _bag_size(node.bag_path)
        node.get_logger().info(
            f'recorded {size / 2 ** 20:.1f} MB in {time.monotonic() - start:.1f} s'
        )

    return spin_node('recorder_node', RecorderNode, args, on_stop=stop)


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
