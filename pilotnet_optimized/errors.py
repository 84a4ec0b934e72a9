"""Errors the project raises on bad input: one class per kind, each with a message a user can act on."""

from __future__ import annotations

__all__ = [
    'PilotnetError',
    'UnknownCircuitError',
    'TrajectoryError',
    'BagError',
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
