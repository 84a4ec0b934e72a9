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
Length-prefixed frames over a stream socket: the bridge's two halves talk with these.

A frame is ``<u32 header length><u32 payload length>``, a JSON header (an ``op`` and its fields)
and the payload (a serialised message, as it goes over the wire on its side). Stdlib only: the
ROS 1 half (:mod:`.relay`, run by the system Python) imports it as a sibling file.
"""

import json
import socket
import struct
import threading

__all__ = ['Channel', 'ClosedError']

_PREFIX = struct.Struct('<II')


class ClosedError(EOFError):
    """The other half closed the socket."""


class Channel:
    """
    One end of the socket: send frames from any thread, receive them on one.

    :param sock: a connected stream socket.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._reader = sock.makefile('rb', buffering=1 << 20)
        self._lock = threading.Lock()

    def send(self, header: dict, payload: bytes = b'') -> None:
        """Send one frame (whole, even when several threads send)."""
        head = json.dumps(header, separators=(',', ':')).encode()
        with self._lock:
            self.sock.sendall(_PREFIX.pack(len(head), len(payload)) + head)
            if payload:
                self.sock.sendall(payload)

    def recv(self) -> tuple:
        """
        Return the next frame as ``(header, payload)``.

        :raises ClosedError: when the other half has closed the socket.
        """
        prefix = self._read(_PREFIX.size)
        head_len, payload_len = _PREFIX.unpack(prefix)
        header = json.loads(self._read(head_len))
        return header, self._read(payload_len) if payload_len else b''

    def _read(self, n: int) -> bytes:
        data = self._reader.read(n)
        if data is None or len(data) < n:
            raise ClosedError('the other half of the bridge closed the socket')
        return data

    def close(self) -> None:
        """Close both directions."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
