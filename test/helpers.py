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

"""Assertions and stand-ins shared by the test modules (pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path
import subprocess
from typing import Any

import numpy as np
from pilotnet_optimized.errors import ModelOutputError
from pilotnet_optimized.models.preprocess import Preprocessing


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """
    Check that a command failed with one clear line on stderr that mentions every needle.

    There must be no traceback.
    """
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert err.count('\n') == 0, f'expected one line, got:\n{err}'
    assert 'Traceback' not in err
    for needle in needles:
        assert needle in err, err


#: The repository's root, and the Python sources the ament linters check (test_flake8, test_pep257,
#: test_copyright): the package, the tests, the launch file, the scripts and benchmarks, setup.py.
REPO = Path(__file__).resolve().parents[1]
LINTED = [
    REPO / name
    for name in ('pilotnet_optimized', 'test', 'launch', 'scripts', 'benchmarks', 'setup.py')
]


def linted_python_files() -> list[Path]:
    """Every ``.py`` file under :data:`LINTED`, sorted."""
    files: list[Path] = []
    for path in LINTED:
        files += (
            [path]
            if path.is_file()
            else sorted(p for p in path.rglob('*.py') if '__pycache__' not in p.parts)
        )
    return files


class FakeBackend:
    """Stands in for a model (duck-typed as a Backend): returns ``outputs`` in normalised units."""

    def __init__(self, path: str, outputs: tuple[float, float] = (0.5, 0.5)) -> None:
        self.model_path = Path(path)
        self.preprocessing = Preprocessing()
        self.outputs = np.array([outputs], np.float32)

    def predict_normalised(self, batch: np.ndarray) -> np.ndarray:
        if not np.isfinite(self.outputs).all():
            raise ModelOutputError(
                f'{self.model_path}: the model produced NaN or infinite outputs'
            )
        return self.outputs

    def predict_into(self, fill: Any) -> np.ndarray:
        x = np.zeros(self.preprocessing.input_shape, np.float32)
        fill(x)
        return self.predict_normalised(x[None])[0]

    def describe(self) -> dict:
        return {'backend': 'fake', 'precision': 'float32', 'size_bytes': 0, 'size_mb': 0.0,
                'path': str(self.model_path), 'threads': 1}

    def close(self) -> None:
        pass
