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
``sensor_msgs/Image`` <-> numpy for the camera encodings the car uses, with cv_bridge's semantics.

cv_bridge (ROS 2) is not installable without a distro, and the brain only needs ``rgb8`` and
``bgr8``, so this is the few lines of numpy that ``CvBridge().imgmsg_to_cv2(msg, 'rgb8')`` amounts
to for those encodings:

- rows are ``step`` bytes apart; bytes past ``width * 3`` in a row are padding and are dropped;
- ``bgr8`` is turned into RGB (cv_bridge's ``cvtColor(BGR2RGB)``); ``rgb8`` is taken as it is;
- ``is_bigendian`` does not matter for 8-bit channels (cv_bridge only byte-swaps multi-byte types);
- every other encoding is an error (cv_bridge would convert ``mono8`` or ``bgra8``; a PilotNet
  trained on RGB road frames should not silently get grey or alpha images, so we refuse and say
  what we got).
"""

from __future__ import annotations

import array
import struct
from typing import Any, TYPE_CHECKING

import numpy as np
from pilotnet_optimized.errors import ImageError

if TYPE_CHECKING:  # pragma: no cover
    from sensor_msgs.msg import Image

__all__ = [
    'SUPPORTED_ENCODINGS',
    'IMAGE_TYPE',
    'COMPRESSED_IMAGE_TYPE',
    'IMAGE_TYPES',
    'image_to_rgb',
    'image_pixels',
    'message_to_rgb',
    'rgb_to_image',
    'ImageSerializer',
    'cdr_header_stamp_ns',
]

#: Encodings :func:`image_to_rgb` accepts.
SUPPORTED_ENCODINGS = ('rgb8', 'bgr8')
IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE_TYPE = 'sensor_msgs/msg/CompressedImage'
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)


def image_to_rgb(msg: Image | Any) -> np.ndarray:
    """
    Return a camera ``Image`` as an ``height x width x 3`` RGB uint8 array.

    The array is a copy: the message may be reused.

    Any object with ``Image``'s fields will do (rosbags' deserialised messages, whose ``data`` is a
    numpy array): this function imports nothing from ROS, so offline tools use it too.

    :raises ImageError: for an encoding other than ``rgb8``/``bgr8``, a ``step`` shorter than a
        row, or a data buffer shorter than ``step * height``.
    """
    pixels, bgr = image_pixels(msg)
    # Both branches copy, so the result owns its memory and is C-contiguous (what the preprocessing
    # expects).
    return pixels[:, :, ::-1].copy() if bgr else pixels.copy()


def image_pixels(msg: Image | Any) -> tuple[np.ndarray, bool]:
    """
    Return a camera ``Image``'s pixels as a view of its buffer, and whether they are BGR.

    ``(height x width x 3 uint8 view, bgr)``: no copy (padding past each row is left out of the
    view), valid while the message is; the inference node preprocesses it in place
    (:func:`~pilotnet_optimized.models.preprocess.preprocess` with ``bgr``). Same checks as
    :func:`image_to_rgb`.

    :raises ImageError: as :func:`image_to_rgb`.
    """
    encoding = msg.encoding.lower()
    if encoding not in SUPPORTED_ENCODINGS:
        raise ImageError(f"unsupported image encoding '{msg.encoding}': expected one of "
                         f"{', '.join(SUPPORTED_ENCODINGS)}")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height < 1 or width < 1:
        raise ImageError(f'empty image ({width}x{height})')
    row_bytes = width * 3
    if step < row_bytes:
        raise ImageError(
            f'image step {step} is shorter than a row of {width} {encoding} pixels ({row_bytes}'
            ' bytes)'
        )
    # rclpy keeps uint8[] as array.array('B') (rosbags as an ndarray): frombuffer reads either
    # without a copy.
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < step * height:
        raise ImageError(
            f'image data has {data.size} bytes, {encoding} {width}x{height} with step {step} needs'
            f' {step * height}'
        )
    rows = data[:step * height].reshape(height, step)[:, :row_bytes]
    return rows.reshape(height, width, 3), encoding == 'bgr8'


def rgb_to_image(rgb: np.ndarray, encoding: str = 'rgb8', msg: Image | None = None) -> Image:
    """
    Return an ``H x W x 3`` RGB uint8 array as an unpadded ``Image`` in ``encoding``.

    Unpadded means ``step = width * 3``.

    :param msg: a message to fill (the simulator reuses one; header is left to the caller).
    :raises ImageError: for anything but an H x W x 3 uint8 array, or an encoding other than
        rgb8/bgr8.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageError(
            f'expected an H x W x 3 uint8 RGB array, got {rgb.dtype} of shape {rgb.shape}'
        )
    if encoding not in SUPPORTED_ENCODINGS:
        raise ImageError(
            f"cannot write encoding '{encoding}': expected one of {', '.join(SUPPORTED_ENCODINGS)}"
        )
    from sensor_msgs.msg import Image
    out = msg if msg is not None else Image()
    pixels = rgb[:, :, ::-1] if encoding == 'bgr8' else rgb
    out.height, out.width = int(rgb.shape[0]), int(rgb.shape[1])
    out.encoding = encoding
    out.is_bigendian = 0
    out.step = int(rgb.shape[1]) * 3
    # The generated setter takes an array.array('B') as it is; bytes or a list would be checked
    # element by element (about 0.1 s for one 640x480 frame). frombytes on a memoryview is a single
    # copy.
    data = array.array('B')
    data.frombytes(memoryview(np.ascontiguousarray(pixels)).cast('B'))
    out.data = data
    return out


class ImageSerializer:
    """
    ``sensor_msgs/Image`` in CDR (what ``rclpy.serialization.serialize_message`` writes).

    It packs a numpy frame for ``publisher.publish(bytes)``.

    rclpy's own path converts the message to C and then to CDR, copying the pixels twice through
    Python's object layer: 1.1 ms for a 640x480 frame here. A C++ camera driver (Gazebo's)
    serialises in microseconds, so a frame published from Python would add a millisecond to every
    image-to-command latency that a real camera does not. The fixed part of the message (header,
    size, encoding) is packed once per shape.
    """

    def __init__(self, frame_id: str = '', encoding: str = 'rgb8') -> None:
        if encoding not in SUPPORTED_ENCODINGS:
            raise ImageError(
                f"cannot write encoding '{encoding}': expected one of"
                f" {', '.join(SUPPORTED_ENCODINGS)}"
            )
        self.frame_id = frame_id
        self.encoding = encoding
        self._shape: tuple[int, int] | None = None
        self._tail = b''

    @staticmethod
    def _string(text: str, offset: int) -> tuple[bytes, int]:
        """
        Return a CDR string at ``offset`` (aligned to 4).

        Length with the NUL, the bytes, the NUL.
        """
        raw = text.encode() + b'\0'
        pad = -offset % 4
        out = b'\0' * pad + struct.pack('<I', len(raw)) + raw
        return out, offset + len(out)

    def _layout(self, height: int, width: int) -> bytes:
        # Offsets count from the end of the 4-byte encapsulation header, as CDR alignment does.
        frame_id, offset = self._string(self.frame_id, 8)          # after stamp.sec, stamp.nanosec
        pad = -offset % 4
        sizes = b'\0' * pad + struct.pack('<II', height, width)
        offset += pad + 8
        encoding, offset = self._string(self.encoding, offset)
        offset += 1                                                 # is_bigendian (uint8)
        pad = -offset % 4
        step = b'\0' * pad + struct.pack('<I', width * 3)
        offset += pad + 4
        # data: uint32 length, then the bytes
        pad = -offset % 4
        data_len = b'\0' * pad + struct.pack('<I', height * width * 3)
        return frame_id + sizes + encoding + b'\0' + step + data_len

    def serialize(self, rgb: np.ndarray, sec: int, nanosec: int) -> bytes:
        """
        Return the CDR bytes of an unpadded ``Image`` of ``rgb`` stamped ``sec.nanosec``.

        ``rgb`` is an H x W x 3 uint8 RGB array.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ImageError(
                f'expected an H x W x 3 uint8 RGB array, got {rgb.dtype} of shape {rgb.shape}'
            )
        shape = (int(rgb.shape[0]), int(rgb.shape[1]))
        if shape != self._shape:
            self._shape, self._tail = shape, self._layout(*shape)
        pixels = rgb[:, :, ::-1] if self.encoding == 'bgr8' else rgb
        return b''.join((_CDR_LE, struct.pack('<iI', sec, nanosec), self._tail,
                         memoryview(np.ascontiguousarray(pixels)).cast('B')))


_CDR_LE = b'\x00\x01\x00\x00'  # CDR encapsulation: little endian


def message_to_rgb(msg: Any, msgtype: str = IMAGE_TYPE) -> np.ndarray:
    """
    Return a deserialised image message as an H x W x 3 RGB uint8 array.

    The message is an ``Image`` (rgb8/bgr8) or a ``CompressedImage`` (JPEG/PNG).

    Raw images go through :func:`image_to_rgb` (the inference node's own) (rows ``step`` bytes
    apart, padding dropped, bgr8 swapped), which imports nothing from ROS: rosbags' messages have
    the same fields.

    :raises ImageError: for another encoding, a short buffer, or compressed data that does not
        decode.
    """
    import cv2
    if msgtype == COMPRESSED_IMAGE_TYPE:
        buf = np.frombuffer(
            bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data, np.uint8
        )
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
        if bgr is None:
            raise ImageError(
                f"compressed image (format '{msg.format}') does not decode as JPEG or PNG"
            )
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return image_to_rgb(msg)


def cdr_header_stamp_ns(data: bytes | memoryview) -> int | None:
    """
    Return the header stamp (ns) of a serialised message that starts with a ``std_msgs/Header``.

    Read from the CDR bytes as they arrived (Image, Odometry, TwistStamped ...): the 4-byte
    encapsulation (``00 01`` little endian, ``00 00`` big), then ``int32 sec`` and ``uint32
    nanosec``. ``None`` for anything shorter or of another encapsulation.
    """
    if len(data) < 12 or data[0] != 0 or data[1] not in (0, 1):
        return None
    sec, nanosec = struct.unpack_from('<iI' if data[1] == 1 else '>iI', data, 4)
    return sec * 1_000_000_000 + nanosec
