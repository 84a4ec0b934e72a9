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
The argparse ``type=`` checks every command shares.

A bad value is argparse's one line (``pilotnet bench-sim: error: argument --frames: ...``) and exit
code 2, with the fix named; no traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ['positive_int', 'output_folder']


def positive_int(text: str) -> int:
    """Return a whole number of at least 1 (``--frames 0`` -> 'give 1 or more')."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a whole number: give 1 or more"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'{value} is too small: give 1 or more')
    return value


def output_folder(text: str) -> str:
    """
    Return a folder to write into: new, or an existing folder, but not an existing file.

    Nor a path under a file (``out.csv/data``).
    """
    path = Path(text).expanduser()
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise argparse.ArgumentTypeError(
                f'{part} is a file, not a folder: give a new folder name (or remove the file)'
            )
    return text
