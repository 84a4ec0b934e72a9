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
Model folders: the ``manifest.json`` that ``pilotnet optimize`` writes, and models by name.

A model folder (default :data:`DEFAULT_MODELS_DIR`, the output of ``pilotnet optimize``) holds
model files (:data:`~pilotnet_optimized.backends.MODEL_SUFFIXES`, one per backend's file kind),
SavedModel folders, and a manifest
``{"model": ..., "settings": ..., "methods": {name: {"file": ..., "status": "ok", ...}}}`` (a bare
``{name: entry}`` mapping, or a list of entries with a ``method`` key, is read too).

A model is named either by a path (used as it is) or by a bare name looked up in the folder: its
manifest entry, else ``<name>.tflite``, ``<name>.onnx``, ``<name>.keras``, ... , else a SavedModel
folder ``<name>/``. In the default folder's place, the names are looked up in each of
:data:`DEFAULT_SEARCH_DIRS` in turn (what ``pilotnet optimize`` writes, what ``pilotnet demo``
writes, the shipped model); a name found in none is answered with every folder looked in and what
it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
import difflib
import json
from pathlib import Path
from typing import Any

from pilotnet_optimized.backends import MODEL_SUFFIXES
from pilotnet_optimized.backends.base import size_on_disk
from pilotnet_optimized.errors import ModelError

__all__ = [
    'DEFAULT_MODELS_DIR',
    'DEFAULT_SEARCH_DIRS',
    'MANIFEST',
    'MODEL_SUFFIXES',
    'find_models',
    'manifest_methods',
    'model_names',
    'resolve_model',
    'size_mb',
    'size_on_disk',
    'split_names',
    'write_bytes_atomic',
]

#: Where model names are looked up unless told otherwise.
DEFAULT_MODELS_DIR = 'models/optimized'
#: Where a name is looked up when the folder is the default: the default folder, then what
#: ``pilotnet demo`` writes, then the shipped model (a fresh clone has only the last one).
DEFAULT_SEARCH_DIRS = (DEFAULT_MODELS_DIR, 'models/default/optimized', 'models/default')
_WRITTEN_BY = {
    DEFAULT_MODELS_DIR: 'pilotnet optimize --out models/optimized',
    'models/default/optimized': 'pilotnet demo',
}
#: The file in a model folder that lists its methods.
MANIFEST = 'manifest.json'


def manifest_methods(folder: str | Path) -> dict[str, dict[str, Any]] | None:
    """
    Return the manifest's method entries by name, in its order (every status).

    ``None`` when there is no manifest.

    :raises ModelError: for a manifest that is not valid JSON.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        entries = json.loads(path.read_text())
    except ValueError as err:
        raise ModelError(f'{path}: not valid JSON ({err})') from err
    if isinstance(entries, dict) and isinstance(entries.get('methods'), dict):
        # what `pilotnet optimize` writes: {'model': ..., 'methods': {name: entry}}
        entries = entries['methods']
    if isinstance(entries, dict):
        items = list(entries.items())
    elif isinstance(entries, list):
        items = [(e.get('method'), e) for e in entries if isinstance(e, dict)]
    else:
        items = []
    return {
        str(name): entry for name, entry in items if name is not None and isinstance(entry, dict)
    }


def _manifest_files(folder: Path) -> list[tuple[str, Path]]:
    """
    Return (name, path) of the manifest's written entries whose file is there.

    An entry was written when its status is ok.
    """
    found = []
    for name, entry in (manifest_methods(folder) or {}).items():
        if (
            entry.get('status', 'ok') == 'ok'
            and entry.get('file')
            and (folder / entry['file']).exists()
        ):
            found.append((name, folder / entry['file']))
    return found


def _is_model(path: Path) -> bool:
    if path.is_dir():
        return (path / 'saved_model.pb').is_file()
    return path.suffix in MODEL_SUFFIXES


def model_names(folder: str | Path) -> list[str]:
    """Names of the model files and SavedModel folders in ``folder`` (file stems), sorted."""
    return sorted(
        p.stem if p.is_file() else p.name for p in Path(folder).iterdir() if _is_model(p)
    )


def find_models(folder: str | Path) -> list[tuple[str, Path]]:
    """
    (name, path) for every model in ``folder``.

    From its manifest when it lists any, in its order; otherwise every model file and SavedModel
    folder, named by file stem.

    :raises ModelError: for a missing folder, an unreadable manifest, or a folder with no model in
        it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f'model folder not found: {folder}')
    found = _manifest_files(folder)
    if found:
        return found
    found = [
        (p.stem if p.is_file() else p.name, p) for p in sorted(folder.iterdir()) if _is_model(p)
    ]
    if not found:
        raise ModelError(f'{folder}: no models in it (.keras, .tflite, .onnx, SavedModel folders)')
    return found


def resolve_model(model: str | Path, models_dir: str | Path = DEFAULT_MODELS_DIR) -> Path:
    """
    Return the model file (or SavedModel folder) ``model`` names, as an absolute path.

    See the module's rule.

    :raises ModelError: when it is neither an existing path nor a model name found in
        ``models_dir`` (or, for the default, in any of :data:`DEFAULT_SEARCH_DIRS`).
    """
    text = str(model).strip()
    if not text:
        raise ModelError(
            'no model given (model:=<file or name> for the launch file and pilotnet run, '
            'model_path for the node)'
        )
    path = Path(text).expanduser()
    if path.exists():
        return path.resolve()
    bare = '/' not in text and Path(text).suffix == ''
    default = str(models_dir) in (DEFAULT_MODELS_DIR, f'{DEFAULT_MODELS_DIR}/')
    folders = [Path(d) for d in DEFAULT_SEARCH_DIRS] if default else [
        Path(models_dir).expanduser()]
    if bare:
        for folder in folders:
            found = _find_in(folder, text) if folder.is_dir() else None
            if found is not None:
                return found.resolve()
    if bare and not default and folders[0].is_dir():
        folder = folders[0]
        raise ModelError(
            f"model '{text}' not found in {folder} ({_listing(folder)}){_near(text, [folder])}"
        )
    if bare and default:
        looked = '; '.join(f'{f} ({_listing(f)})' for f in folders)
        raise ModelError(f"model '{text}' not found: looked in {looked}{_near(text, folders)}")
    where = f' and not a model name in {folders[0]}' if bare else ''
    raise ModelError(f'model not found: {path}{where}')


def _find_in(folder: Path, text: str) -> Path | None:
    """Return the model ``text`` names in ``folder`` (manifest, file, SavedModel), or ``None``."""
    try:
        found = dict(_manifest_files(folder)).get(text)
    except ModelError:
        found = None   # a broken manifest: the files themselves still name the models
    if found is None:
        found = next(
            (folder / f'{text}{s}' for s in MODEL_SUFFIXES if (folder / f'{text}{s}').exists()),
            None,
        )
    if found is None and (folder / text / 'saved_model.pb').is_file():
        found = folder / text
    return found


def _listing(folder: Path) -> str:
    """Say what a lookup folder holds: its model names, or that it is missing and who writes it."""
    if not folder.is_dir():
        writer = _WRITTEN_BY.get(str(folder))
        return f'no such folder: `{writer}` writes it' if writer else 'no such folder'
    names = model_names(folder)
    return f"models there: {', '.join(names) if names else 'none'}"


def _near(text: str, folders: list[Path]) -> str:
    names = [n for f in folders if f.is_dir() for n in model_names(f)]
    near = difflib.get_close_matches(text, names, n=1)
    return f" (did you mean '{near[0]}'?)" if near else ''


def size_mb(path: Path) -> float:
    """
    Return a model's size in MB (bytes / 2^20, as the seed counts them).

    0 when it does not exist.
    """
    return (size_on_disk(path) or 0) / 2 ** 20


def split_names(values: str | Sequence[str]) -> list[str]:
    """
    Return a list option's names, given comma-separated.

    Space-separated or both (``--methods int8,dynamic`` and ``--methods int8 dynamic``): every
    command's name lists read the same way. Empty items are dropped.
    """
    items = [values] if isinstance(values, str) else list(values)
    return [name.strip() for item in items for name in str(item).split(',') if name.strip()]


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """
    Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    Returns ``path``.

    A reader (a node reloading its model, a command reading the manifest) never sees a half-written
    file, and an interrupted conversion leaves the previous file intact. Every model file and
    manifest is written this way.
    """
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; models are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
