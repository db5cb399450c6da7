"""Exporting a result row from the window: `qstudio export` in a child process, with progress and cancel.

The export loads runtimes, captures torch programs and starts a verification process of its own, so it
runs as the CLI in a QProcess: the window never waits on it, a crash in it costs only the export, and
cancel (SIGTERM) lets the export remove its half-written folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from studio.core.engine import cli_command
from studio.deploy.evidence import Evidence

KILL_AFTER_MS = 5000


def export_folder_name(model_name: str, recipe: str, run_id: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_name).strip("-")[:40] or "model"
    return f"{slug}-{recipe}-run{run_id}"


class ExportController(QObject):
    progress = Signal(str)  # the export's current step
    finished = Signal(object, str)  # Evidence, folder
    failed = Signal(str, str)  # message, details

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.process: QProcess | None = None
        self.target = ""
        self._stderr = ""
        self._cancelled = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, run_id: int, recipe: str, target: Path, force: bool) -> bool:
        if self.running:
            return False
        command = cli_command(
            "export", str(run_id), recipe, "--to", str(target), "--json", *(["--force"] if force else [])
        )
        process = QProcess(self)
        process.setProgram(command[0])
        process.setArguments(command[1:])
        process.readyReadStandardError.connect(self._read_progress)
        process.finished.connect(self._done)
        self.process, self.target, self._stderr, self._cancelled = process, str(target), "", False
        process.start()
        return True

    def cancel(self) -> None:
        process = self.process
        if process is None or not self.running:
            return
        self._cancelled = True
        process.terminate()  # SIGTERM: the export cleans up, then exits
        QTimer.singleShot(KILL_AFTER_MS, lambda: _kill_if_running(process))

    def _read_progress(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardError().data()).decode("utf-8", "replace")
        self._stderr += text
        for line in text.splitlines():
            line = line.strip().rstrip("…")
            if line and not line.startswith(("W1", "Failed to load")):  # torch/torchao start-up noise
                self.progress.emit(line)

    def _done(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        process = self.process
        if process is None:
            return
        stdout = bytes(process.readAllStandardOutput().data()).decode("utf-8", "replace")
        self._read_progress()
        if self._cancelled:
            self.failed.emit("Export cancelled: nothing was written", self._stderr)
        elif exit_status != QProcess.ExitStatus.NormalExit or exit_code != 0:
            lines = [line for line in self._stderr.strip().splitlines() if line.strip()]
            message = lines[-1].removeprefix("qstudio: ") if lines else f"exit status {exit_code}"
            self.failed.emit(f"Export failed: {message}", self._stderr)
        else:
            try:
                evidence = Evidence.model_validate_json(stdout)
            except ValueError as error:
                self.failed.emit(f"Export wrote no readable evidence ({error})", self._stderr)
            else:
                self.finished.emit(evidence, self.target)
        process.deleteLater()
        self.process = None


def _kill_if_running(process: QProcess) -> None:
    try:
        if process.state() != QProcess.ProcessState.NotRunning:
            process.kill()
    except RuntimeError:  # already finished and deleted
        pass


def summary_html(evidence: Evidence, folder: str) -> str:
    """The two verdicts with their reasons, for the message shown when an export is done."""

    def verdict(title: str, ready: bool, reasons: list[str]) -> str:
        if ready:
            return f"<p><b>{title}: yes</b></p>"
        items = "".join(f"<li>{reason}</li>" for reason in reasons)
        return f"<p><b style='color:#b00020'>{title}: no</b></p><ul>{items}</ul>"

    return (
        f"<p>{evidence.recipe} of run {evidence.run_id} is in<br><code>{folder}</code></p>"
        + verdict(
            "Ready for a local trial",
            evidence.ready_for_local_trial.ready,
            evidence.ready_for_local_trial.reasons,
        )
        + verdict("Ready for release", evidence.ready_for_release.ready, evidence.ready_for_release.reasons)
        + "<p>Details: evidence.json and README.md in the folder; <code>qstudio verify</code> re-checks it.</p>"
    )
