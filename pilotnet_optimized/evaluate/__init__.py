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
What measures models (writes no model file).

Each module a table of rows, written by :mod:`.report`.

- :mod:`.report`: the one row vocabulary and table writer (text, Markdown, CSV, JSON), machine and
  versions.
- :mod:`.offline`: the seed's table: size, MSE/MAE on held-out frames, batch-1 latency
  (``pilotnet evaluate``).
- :mod:`.closed_loop`: each model drives circuits in the simulator, lock-step
  (``pilotnet compare``).
- :mod:`.bag`: a recorded drive replayed through models (``pilotnet bag-eval``).
"""

from __future__ import annotations

__all__: list[str] = []
