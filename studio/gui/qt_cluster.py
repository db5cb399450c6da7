"""Run on cluster: the recipes the user ticked, as `qstudio sweep` on a Ray cluster (a local Ray instance when
no address is given), watched from the Run view; the swept run opens there when it is done.

The window never imports Ray: the sweep is the CLI command in a child process (`qt_command.CommandRun`), so
it is the same code a user types, and Cancel is its Ctrl+C (the Ray tasks are cancelled, finished results
stay in the history).
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLineEdit, QWidget

from studio.core.paths import data_dir
from studio.core.recipe import Recipe
from studio.gui.qt_command import CommandRun

NO_RAY = "Ray is not installed: pip install 'quantization-studio[cluster]'"
# What `qstudio sweep` prints per task: "MODEL · RECIPE: STATE[ on NODE][ (STAGE)][: REASON]"
TASK_LINE = re.compile(
    r"^(?P<model>.+?) · (?P<recipe>\S+): (?P<state>queued|running|done|failed|unavailable|cancelled|lost)(?P<rest>.*)$"
)


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


class ClusterChoice(QWidget):
    """The "Run on cluster" check box and the cluster's address, greyed with the reason without Ray."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.check = QCheckBox("Run on cluster")
        self.address = QLineEdit()
        self.address.setPlaceholderText("Ray address: empty = a local Ray instance, auto, ray://host:10001")
        self.address.setMinimumWidth(330)
        self.address.setEnabled(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.check)
        layout.addWidget(self.address)
        self.check.toggled.connect(self.address.setEnabled)
        if ray_installed():
            self.check.setToolTip(
                "Each recipe becomes a Ray task on a node that can run it (`qstudio sweep`)"
            )
        else:
            self.check.setEnabled(False)
            self.check.setToolTip(NO_RAY)

    @property
    def chosen(self) -> bool:
        return self.check.isEnabled() and self.check.isChecked()


class ClusterRun(QObject):
    """One sweep of the open model: per-task lines as they come, the recorded run ids at the end."""

    task = Signal(str, str, str)  # recipe, state, the rest of the line (node, stage, reason)
    message = Signal(str)
    finished = Signal(list, int)  # the sweep's run ids (CPU node type first), exit status

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.command: CommandRun | None = None
        self.folder: Path | None = None

    @property
    def running(self) -> bool:
        return self.command is not None and self.command.running

    def arguments(self, data_args: list[str], recipes: list[Recipe], address: str, folder: Path) -> list[str]:
        """`qstudio sweep` for the window's model and data; each recipe as a file (it may be an edited one)."""
        files = []
        for recipe in recipes:
            path = folder / f"{recipe.name}.toml"
            path.write_text(recipe.to_toml(), encoding="utf-8")
            files.append(str(path))
        model = data_args[data_args.index("--model") + 1]
        rest = data_args[: data_args.index("--model")] + data_args[data_args.index("--model") + 2 :]
        args = ["sweep", "--models", model, "--recipes", ",".join(files), *rest]
        args += ["--out", str(folder / "sweep"), "--json", str(folder / "report.json")]
        return args + (["--address", address] if address else [])

    def start(self, data_args: list[str], recipes: list[Recipe], address: str) -> None:
        self.folder = data_dir() / "cluster-runs" / time.strftime("%Y%m%d-%H%M%S")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.command = CommandRun(self.arguments(data_args, recipes, address, self.folder), self)
        self.command.line.connect(self._line)
        self.command.finished.connect(self._finished)
        self.command.start()

    def cancel(self) -> None:
        if self.command is not None:
            self.command.cancel()

    def _line(self, line: str) -> None:
        match = TASK_LINE.match(line)
        if match:
            self.task.emit(match["recipe"], match["state"], match["rest"].strip())
        else:
            self.message.emit(line)

    def _finished(self, code: int) -> None:
        run_ids: list[int] = []
        if self.folder is not None:
            try:
                rows = json.loads((self.folder / "report.json").read_text(encoding="utf-8"))["results"]
                run_ids = list(dict.fromkeys(int(row["run_id"]) for row in rows))
            except (OSError, ValueError, KeyError):
                pass
        if code != 0 and not run_ids and self.command is not None and self.command.lines:
            self.message.emit(self.command.lines[-1])
        self.finished.emit(run_ids, code)
