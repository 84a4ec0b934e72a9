"""What measures models (writes no model file): each module a table of rows, written by :mod:`.report`.

- :mod:`.report`: the one row vocabulary and table writer (text, Markdown, CSV, JSON), machine and versions.
- :mod:`.offline`: the seed's table: size, MSE/MAE on held-out frames, batch-1 latency (``pilotnet evaluate``).
- :mod:`.closed_loop`: each model drives circuits in the simulator, lock-step (``pilotnet compare``).
- :mod:`.bag`: a recorded drive replayed through models (``pilotnet bag-eval``).
"""

from __future__ import annotations

__all__: list[str] = []
