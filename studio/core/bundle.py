"""How the frozen bundle's one binary is told what to run (it has no `python -m` and no interpreter)."""

from __future__ import annotations

WORKER_FLAG = "__worker__"  # `qstudio __worker__ JOB`: a run worker
SCRIPT_FLAG = "__script__"  # `qstudio __script__ FILE ARGS`: an export's predict.py
