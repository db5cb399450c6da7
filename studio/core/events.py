"""Events a run emits while it goes: what the CLI's progress bar and the GUI's charts listen to.

They are plain data so they can cross a process boundary as one JSON object per line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel

EventKind = Literal["stage", "progress", "sample", "measurement", "result", "warning", "error", "finished"]


class Event(BaseModel):
    kind: EventKind
    recipe: str = ""
    stage: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    data: dict[str, Any] | None = None


Listener = Callable[[Event], None]


def ignore(_: Event) -> None:
    """The listener of a run nobody watches."""
