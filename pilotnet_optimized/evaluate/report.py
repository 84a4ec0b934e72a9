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
One row vocabulary and one writer for every table this project prints or writes.

A table is a list of rows (mappings, e.g. ``dataclasses.asdict`` of a row class) and a list of
:class:`Column` (header, row key, format). The same columns give the plain text table
(:func:`text_table`, for the terminal) and the Markdown table (:func:`markdown_table`, for
reports); :func:`write_csv` and :func:`write_json` write the rows and the report as data, and
:func:`write_report_files` writes a report's usual set of files. Every report header names the
machine (:func:`machine_description`) and the package versions (:func:`versions`).

Row vocabulary: latency percentiles are ``p50_ms``/``p90_ms``/``p99_ms``/``mean_ms`` for a table
with one latency, ``<stage>_p50_ms`` with several
(:func:`pilotnet_optimized.backends.timing.percentiles` makes them); a row's ``status`` is
``'ok'``, ``'skipped'`` or ``'failed'``, the reason in its ``error``.

Importing this module costs numpy only: no TensorFlow, no ROS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import csv
from importlib.metadata import PackageNotFoundError, version
import json
import os
from pathlib import Path
import platform
from typing import Any, NamedTuple

__all__ = [
    'Column',
    'VERSION_PACKAGES',
    'format_cell',
    'text_table',
    'markdown_table',
    'write_csv',
    'write_json',
    'write_report_files',
    'print_rows',
    'print_mapping',
    'machine_description',
    'versions',
]

#: Distributions a report header lists (those installed): the runtimes, the optimisation toolkit,
#: numpy, OpenCV.
VERSION_PACKAGES = (
    'tensorflow',
    'tf-keras',
    'ai-edge-litert',
    'onnxruntime',
    'openvino',
    'nncf',
    'tensorflow-model-optimization',
    'tensorrt',
    'numpy',
    'opencv-python-headless',
)


class Column(NamedTuple):
    """
    One column of a table.

    Its header, the row key it shows, and how (``str.format`` text such as ``'{:.2f}'`` or
    ``'{:.1f}x'``; ``''``: :func:`format_cell`'s default).
    """

    header: str
    key: str
    fmt: str = ''


def format_cell(value: Any, fmt: str = '') -> str:
    """
    Return one cell's text: ``'-'`` for ``None``; ``fmt.format(value)`` when a format is given.

    Otherwise a float as ``.3f`` (``.3e`` from 1e5 on) and anything else as ``str``.
    """
    if value is None:
        return '-'
    if fmt:
        return fmt.format(value)
    if isinstance(value, float):
        return f'{value:.3f}' if abs(value) < 1e5 else f'{value:.3e}'
    return str(value)


def _columns(columns: Sequence[Column | str]) -> list[Column]:
    # A bare name is a column headed by its key, with the default format (cli's plain tables).
    return [c if isinstance(c, Column) else Column(str(c), str(c)) for c in columns]


def _cells(row: Mapping[str, Any] | Sequence[Any], columns: list[Column]) -> list[str]:
    if isinstance(row, Mapping):
        return [format_cell(row.get(c.key), c.fmt) for c in columns]
    # A sequence row: one value per column, in order.
    return [format_cell(value, c.fmt) for value, c in zip(row, columns, strict=True)]


def text_table(
    rows: Sequence[Mapping[str, Any] | Sequence[Any]], columns: Sequence[Column | str]
) -> str:
    """
    Return a plain aligned text table: the header row, a line of dashes, then one line per row.

    :param rows: mappings (looked up by each column's key) or sequences (one value per column, in
        order).
    :param columns: :class:`Column` rows, or bare names (header = key, default format).
    """
    cols = _columns(columns)
    cells = [[c.header for c in cols]] + [_cells(r, cols) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    lines = ['  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def markdown_table(
    rows: Sequence[Mapping[str, Any] | Sequence[Any]], columns: Sequence[Column | str]
) -> str:
    """
    Return the same table as :func:`text_table`, in Markdown.

    A ``|`` inside a cell is escaped, so an error text cannot split a row.
    """
    cols = _columns(columns)
    lines = ['| ' + ' | '.join(c.header for c in cols) + ' |', '|' + '---|' * len(cols)]
    for row in rows:
        lines.append(
            '| ' + ' | '.join(cell.replace('|', '\\|') for cell in _cells(row, cols)) + ' |'
        )
    return '\n'.join(lines)


def print_rows(rows: Sequence[Mapping[str, Any]], as_json: bool = False,
               columns: Sequence[Column | str] | None = None) -> None:
    """
    Print rows for a command.

    All of them as indented JSON, or :func:`text_table` of ``columns`` (default: every key of the
    first row).
    """
    if as_json:
        print(json.dumps(list(rows), indent=2))
    else:
        print(text_table(rows, columns if columns is not None else list(rows[0]) if rows else []))


def print_mapping(data: Mapping[str, Any], as_json: bool = False) -> None:
    """
    Print one result for a command.

    Indented JSON, or a two-column ``metric``/``value`` table.
    """
    if as_json:
        print(json.dumps(dict(data), indent=2))
    else:
        print(text_table(list(data.items()), ('metric', 'value')))


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """
    Write the rows as CSV.

    One column per key (in the order they first appear), ``''`` where a row has none.
    """
    fields: dict[str, None] = {}
    for row in rows:
        fields.update(dict.fromkeys(row))
    path = Path(path)
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_json(data: Any, path: str | Path) -> Path:
    """Write ``data`` as indented JSON with a final newline."""
    path = Path(path)
    path.write_text(json.dumps(data, indent=2) + '\n')
    return path


def write_report_files(
    report: Mapping[str, Any],
    out_dir: str | Path,
    stem: str,
    columns: Sequence[Column | str],
    header: str,
    formats: Sequence[str] = ('json', 'csv', 'md'),
    table: str | None = None,
) -> dict[str, Path]:
    """
    Write a report's files in ``out_dir`` (created).

    ``<stem>.json`` (the whole report), ``<stem>.csv`` (its ``rows``) and ``<stem>.md``
    (``header``, a blank line, then the table), for each suffix in ``formats``.

    :param table: the Markdown table to write (default: :func:`markdown_table` of the rows and
        ``columns``), for a report that adds to it.
    :returns: each written suffix's path, in the order of ``formats`` (plots are the caller's: add
        them).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for suffix in formats:
        path = out / f'{stem}.{suffix}'
        if suffix == 'json':
            write_json(report, path)
        elif suffix == 'csv':
            write_csv(report['rows'], path)
        elif suffix == 'md':
            body = table if table is not None else markdown_table(report['rows'], columns)
            path.write_text(header + '\n\n' + body + '\n')
        else:
            raise ValueError(f'unknown report format {suffix!r}: json, csv or md')
        paths[suffix] = path
    return paths


def machine_description() -> str:
    """CPU model and core count, for benchmark headers (platform.processor() is empty on Linux)."""
    model = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            model = next(
                (line.split(':', 1)[1].strip() for line in f if line.startswith('model name')),
                model,
            )
    except OSError:
        pass
    return f'{model}, {os.cpu_count()} cores'


def versions() -> dict[str, str]:
    """
    Return the installed versions of :data:`VERSION_PACKAGES`.

    Also that of rclpy where it can be found (a missing package is not listed). rclpy is looked
    up, never imported: a report must not need ROS.
    """
    out: dict[str, str] = {}
    for dist in VERSION_PACKAGES:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    rclpy = _rclpy_version()
    if rclpy is not None:
        out['rclpy'] = rclpy
    return out


def _rclpy_version() -> str | None:
    # From PyPI it is 'ros-rclpy' (or 'rclpy'); from a ROS install there is no distribution, only
    # the module.
    for dist in ('ros-rclpy', 'rclpy'):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    import importlib.util
    try:
        found = importlib.util.find_spec('rclpy') is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return None
    distro = os.environ.get('ROS_DISTRO')
    return f'ROS {distro}' if distro else 'installed'
