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
Errors the project raises on bad input.

One class per kind, each with a message a user can act on.
"""

from __future__ import annotations

__all__ = [
    'PilotnetError',
    'UnknownCircuitError',
    'TrajectoryError',
    'BagError',
    'ModelError',
    'ModelOutputError',
    'BackendUnavailableError',
    'ConversionError',
    'ImageError',
    'one_line',
]


class PilotnetError(Exception):
    """Base class: the CLI prints ``str(err)`` as one line and exits non-zero."""


class UnknownCircuitError(PilotnetError, KeyError):
    """A circuit name that is neither built in nor a readable perfect-lap bag."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else 'unknown circuit'


class TrajectoryError(PilotnetError):
    """A trajectory file (CSV or bag) that cannot be turned into timed poses."""


class BagError(TrajectoryError):
    """A bag that cannot be read, is cut off, or lacks the topic asked for."""


class ModelError(PilotnetError):
    """
    A model file that cannot be used.

    Missing, corrupt, of an unknown kind, or with the wrong input shape.
    """


class ModelOutputError(PilotnetError):
    """
    A model that ran but produced NaN or infinite outputs (e.g. diverged weights).

    Never drive on those.
    """


class BackendUnavailableError(PilotnetError):
    """
    A runtime backend that cannot run on this machine.

    Its package or the GPU it needs is missing.
    """


class ConversionError(PilotnetError):
    """
    A model that could not be converted (TFLite, SavedModel, ONNX).

    Also raised for conversion inputs that make no sense.
    """


class ImageError(PilotnetError):
    """A camera image the models cannot take: wrong encoding, size or layout."""


def one_line(err: BaseException, limit: int = 400) -> str:
    """
    Return an exception as one line of at most about ``limit`` characters.

    For a :class:`PilotnetError` or a report cell (runtimes and converters raise multi-line C++
    traces); the exception's class name when it has no text.
    """
    text = ' '.join(str(err).split())
    return (text[:limit] + ' ...' if len(text) > limit else text) or type(err).__name__
