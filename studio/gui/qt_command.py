"""A `qstudio` command in a child process, watched from the event loop: its stderr lines, its exit.

The Tune and Sensitivity views run the same commands a user types, so the window adds no second
implementation of a search or an analysis, and the work never runs in the GUI's process. Cancel sends
SIGINT, which the commands treat as Ctrl+C: they stop their workers and save what they have.
"""

from __future__ import annotations

import os
import signal
import sys

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from studio.core.engine import cli_command

CANCEL_GRACE_MS = 15000  # after SIGINT, the command saves its state; killed if it takes longer


class CommandRun(QObject):
    line = Signal(str)  # each line the command writes to stderr (its progress and messages)
    finished = Signal(int)  # exit status; -1 when it crashed or was killed

    def __init__(self, args: list[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.args = args
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
        self.process.readyReadStandardError.connect(self._read)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)
        self.lines: list[str] = []
        self._pending = ""
        self._done = False

    def start(self) -> None:
        program, *arguments = cli_command(*self.args)
        self.process.start(program, arguments)

    @property
    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def cancel(self) -> None:
        if not self.running:
            return
        pid = int(self.process.processId())
        if sys.platform != "win32" and pid:
            os.kill(pid, signal.SIGINT)
            QTimer.singleShot(CANCEL_GRACE_MS, self.process, self.process.kill)
        else:
            self.process.kill()

    def _read(self) -> None:
        text = self._pending + bytes(self.process.readAllStandardError().data()).decode("utf-8", "replace")
        *complete, self._pending = text.split("\n")
        for line in complete:
            if line.strip():
                self.lines.append(line.rstrip())
                self.line.emit(line.rstrip())

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._read()
        if self._done:
            return
        self._done = True
        crashed = status == QProcess.ExitStatus.CrashExit
        self.finished.emit(-1 if crashed else int(code))

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and not self._done:
            self._done = True
            self.lines.append(f"cannot start qstudio: {self.process.errorString()}")
            self.finished.emit(-1)
