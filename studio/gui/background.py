"""Run a plain function off the GUI thread and get its result back on the GUI thread, as a signal."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class Task(QObject):
    """One background call; `done(result)` or `failed(message, details)` arrive on the GUI thread."""

    done = Signal(object)
    failed = Signal(str, str)

    def __init__(self, function: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._function = function

    def start(self) -> Task:
        task = self

        class _Runnable(QRunnable):
            def run(self) -> None:
                try:
                    result = task._function()
                except Exception as error:
                    log.debug("background task failed", exc_info=True)
                    task.failed.emit(str(error), traceback.format_exc())
                    return
                task.done.emit(result)

        self._runnable = _Runnable()
        QThreadPool.globalInstance().start(self._runnable)
        return self


def in_background(
    function: Callable[[], Any],
    on_done: Callable[[Any], None],
    on_failed: Callable[[str, str], None],
    parent: QObject | None = None,
) -> Task:
    task = Task(function, parent)
    task.done.connect(on_done)
    task.failed.connect(on_failed)
    return task.start()
