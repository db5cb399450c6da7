"""The main window: panels in docks around the run queue and charts; wiring in one place."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QSplitter,
    QTabWidget,
    QWidget,
)

import studio
from studio.core.dataset import TextSet
from studio.core.errors import StudioError
from studio.core.events import Event
from studio.core.recipe import Recipe
from studio.core.results import RunResult
from studio.core.store import RunStore
from studio.gui.qt_charts import ChartsPanel
from studio.gui.qt_cluster import ClusterRun
from studio.gui.qt_errors import ErrorPanel
from studio.gui.qt_export import ExportController, export_folder_name, summary_html
from studio.gui.qt_hardware_panel import HardwarePanel
from studio.gui.qt_history import HistoryPanel
from studio.gui.qt_model_panel import ModelPanel
from studio.gui.qt_recipes_panel import RecipesPanel
from studio.gui.qt_run_panel import RunPanel
from studio.gui.qt_sensitivity import SensitivityPanel
from studio.gui.qt_state import RunController, StudioState, settings
from studio.gui.qt_topk import TopKPanel
from studio.gui.qt_tune import TunePanel


def _dock(title: str, widget: QWidget, name: str) -> QDockWidget:
    dock = QDockWidget(title)
    dock.setObjectName(name)
    dock.setWidget(widget)
    return dock


class MainWindow(QMainWindow):
    def __init__(self, state: StudioState, store: RunStore) -> None:
        super().__init__()
        self.state = state
        self.controller = RunController(state, self)
        self.cluster_run = ClusterRun(self)
        self.exporter = ExportController(self)
        self.export_progress: QProgressDialog | None = None
        self.export_box: QMessageBox | None = None
        self.setWindowTitle(f"Quantization Studio {studio.__version__}")
        self.setAcceptDrops(True)
        self.resize(1500, 950)

        self.model_panel = ModelPanel(state)
        self.hardware_panel = HardwarePanel(state.hardware)
        self.recipes_panel = RecipesPanel(state)
        self.run_panel = RunPanel()
        self.charts = ChartsPanel()
        self.topk = TopKPanel()
        self.history = HistoryPanel(store)
        self.tune = TunePanel(state)
        self.sensitivity = SensitivityPanel(state)
        self.errors = ErrorPanel()

        run_view = QSplitter(Qt.Orientation.Vertical)
        run_view.addWidget(self.run_panel)
        run_view.addWidget(self.charts)
        run_view.setSizes([200, 700])
        self.tabs = QTabWidget()
        self.tabs.addTab(run_view, "Run")
        self.tabs.addTab(self.topk, "Top-k side by side")
        self.tabs.addTab(self.tune, "Tune")
        self.tabs.addTab(self.sensitivity, "Sensitivity")
        self.tabs.addTab(self.history, "History")
        self.setCentralWidget(self.tabs)

        left = QTabWidget()
        left.addTab(self.model_panel, "Model")
        left.addTab(self.hardware_panel, "Hardware")
        model_dock = _dock("Model and hardware", left, "model_dock")
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, model_dock)
        recipes_dock = _dock("Recipes", self.recipes_panel, "recipes_dock")
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, recipes_dock)
        # The recipe form needs more height than the model card: it shows whole at 1600x1000.
        self.resizeDocks([model_dock, recipes_dock], [462, 478], Qt.Orientation.Vertical)
        self.resizeDocks([model_dock], [500], Qt.Orientation.Horizontal)
        self.error_dock = _dock("Problems", self.errors, "errors_dock")
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.error_dock)
        self.error_dock.hide()  # shown, non-modal, when something goes wrong
        self.status = QLabel("Starting…")
        self.statusBar().addWidget(self.status, 1)
        self._menus()
        self._connect()
        self._restore()

    # -- wiring ---------------------------------------------------------------------------------------
    def _menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = QAction("&Open model…", self, shortcut=QKeySequence(QKeySequence.StandardKey.Open))
        self.open_action.triggered.connect(self.open_dialog)
        self.eval_action = QAction("Open &evaluation data…", self)
        self.eval_action.triggered.connect(self.choose_eval)
        self.prompts_action = QAction("Open &prompts (language models)…", self)
        self.prompts_action.triggered.connect(self.choose_prompts)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence(QKeySequence.StandardKey.Quit))
        quit_action.triggered.connect(self.close)
        for action in (self.open_action, self.eval_action, self.prompts_action, quit_action):
            file_menu.addAction(action)
        run_menu = self.menuBar().addMenu("&Run")
        self.run_action = QAction("&Run selected recipes", self, shortcut=QKeySequence("Ctrl+R"))
        self.run_action.triggered.connect(self.start_run)
        self.cancel_action = QAction("&Cancel all", self, shortcut=QKeySequence(Qt.Key.Key_Escape))
        self.cancel_action.triggered.connect(self.cancel_all)
        for action in (self.run_action, self.cancel_action):
            run_menu.addAction(action)
            self.addAction(action)
        self.addAction(self.open_action)
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About", self)
        about.triggered.connect(self.about)
        help_menu.addAction(about)

    def _connect(self) -> None:
        state, controller = self.state, self.controller
        state.error.connect(self.report_error)
        state.modelChanged.connect(
            lambda info: self.status.setText(f"{info.name} ready · {self._data_text()}")
        )
        state.modelChanged.connect(lambda info: self.charts.set_kind(info.task))
        state.modelLoading.connect(lambda ref: self.status.setText(f"Opening {ref}…"))
        state.dataChanged.connect(
            lambda _: self.status.setText(f"{state.model.name if state.model else ''} · {self._data_text()}")
        )
        self.run_panel.startRequested.connect(self.start_run)
        self.run_panel.cancelAllRequested.connect(self.cancel_all)
        self.cluster_run.task.connect(self.run_panel.on_task)
        self.cluster_run.message.connect(self.status.setText)
        self.cluster_run.finished.connect(self.on_cluster_finished)
        self.run_panel.cancelRecipeRequested.connect(controller.cancel_recipe)
        self.run_panel.exportRequested.connect(self.export_recipe)
        self.exporter.progress.connect(self._export_progress)
        self.exporter.finished.connect(self._export_finished)
        self.exporter.failed.connect(self._export_failed)
        controller.started.connect(self.run_panel.begin)
        controller.runEvent.connect(self.on_event)
        controller.finished.connect(self.on_finished)
        controller.failed.connect(self.on_failed)
        controller.predicted.connect(lambda predictions: self.topk.show_predictions(self._typed, predictions))
        self.topk.predictRequested.connect(self.predict)
        self.history.reopened.connect(self.show_run)
        self.tune.openRun.connect(self.open_run)
        self.sensitivity.runRequested.connect(self.run_recipes)
        self.history.failed.connect(self.report_error)

    def _data_text(self) -> str:
        data = self.state.data
        if data is None:
            return "no evaluation data"
        return f"{len(data)} evaluation texts from {Path(data.source).name}"

    # -- actions --------------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open a model (an .onnx or .gguf file, or config.json in a model folder)",
            filter="Models (*.onnx *.gguf config.json)",
        )
        if path:
            self.state.open_model(str(Path(path).parent) if Path(path).name == "config.json" else path)

    def choose_eval(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Evaluation data (text and label columns; for a language model, a .txt of passages)",
            filter="Data (*.csv *.tsv *.jsonl *.txt)",
        )
        if path:
            self.pick_columns(path)

    def pick_columns(self, path: str) -> None:
        """Ask which columns hold the text, its pair and the label (a .txt file has none to choose)."""
        from studio.core.dataset import data_columns
        from studio.gui.qt_data_dialog import DataColumnsDialog

        try:
            columns = data_columns(path)
        except StudioError as error:
            self.report_error(str(error), "")
            return
        if not columns:
            self.state.load_data(path)
            return
        dialog = DataColumnsDialog(Path(path).name, columns, self.state.columns, self)
        dialog.accepted.connect(lambda: self.state.load_data(path, dialog.columns()))
        dialog.finished.connect(dialog.deleteLater)
        self.columns_dialog = dialog
        dialog.open()

    def choose_prompts(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Prompts for the side-by-side tables (one per line)", filter="Text (*.txt)"
        )
        if path:
            self.state.load_prompts(path)

    def start_run(self) -> None:
        if self.controller.running or self.cluster_run.running:
            return
        recipes = self.recipes_panel.list.checked()
        if not recipes:
            self.report_error(
                "No recipe selected: tick at least one available recipe in the Recipes list", ""
            )
            return
        if self.state.model is None:
            self.report_error("No model is open yet: pick the demo or open a model first", "")
            return
        if self.run_panel.cluster.chosen:
            self.run_on_cluster(recipes)
            return
        self.run_recipes(recipes)

    def run_on_cluster(self, recipes: list[Recipe]) -> None:
        """The ticked recipes as a sweep of the open model (`qstudio sweep`), each task's state in the queue."""
        self.tabs.setCurrentIndex(0)
        self.run_panel.begin([r.name for r in recipes])
        for recipe in recipes:
            self.run_panel.on_task(recipe.name, "queued", "")
        address = self.run_panel.cluster.address.text().strip()
        self.cluster_run.start(self.state.cli_data_args(), recipes, address)
        self.status.setText(f"Sweeping {len(recipes)} recipe(s) on {address or 'a local Ray instance'}…")

    def on_cluster_finished(self, run_ids: list[int], code: int) -> None:
        self.run_panel.finish()
        self.history.refresh()
        if not run_ids:
            self.report_error(f"The sweep failed (exit status {code}): see the status line", "")
            return
        self.open_run(run_ids[0])
        others = f"; the other node types' runs: {', '.join(map(str, run_ids[1:]))}" if run_ids[1:] else ""
        self.status.setText(f"Sweep finished: run {run_ids[0]} shown{others} (History)")

    def cancel_all(self) -> None:
        if self.cluster_run.running:
            self.cluster_run.cancel()
        else:
            self.controller.cancel_all()

    def run_recipes(self, recipes: list[Recipe]) -> None:
        """Run `recipes` (the reference first) and watch them in the Run view."""
        if self.controller.running:
            self.report_error("A run is in progress: wait for it or cancel it first", "")
            return
        self.charts.reset()
        self.tabs.setCurrentIndex(0)
        self.controller.start(recipes)

    def open_run(self, run_id: int) -> None:
        """A recorded run (a tune's best trial) in the Run view, with its Export buttons."""
        try:
            run = self.history.store.load(run_id)
        except StudioError as error:
            self.report_error(str(error), "")
            return
        self.show_run(run)
        self.tabs.setCurrentIndex(0)

    def on_event(self, event: Event) -> None:
        self.run_panel.on_event(event)
        self.charts.on_event(event)
        if event.kind == "error" and event.message:
            self.report_error(f"{event.recipe}: {event.message}", "")
        if event.kind == "result" and event.data and event.data.get("status") == "failed":
            self.report_error(
                f"{event.recipe} failed: {event.data.get('reason')}", event.data.get("reason", "")
            )

    def on_finished(self, run: RunResult) -> None:
        self.run_panel.finish()
        self.show_run(run, keep_memory=True)
        self.history.refresh()
        self.status.setText(
            f"Run {run.run_id} finished: {sum(r.ok for r in run.results)}/{len(run.results)} recipes ok"
        )

    def on_failed(self, message: str, details: str) -> None:
        self.report_error(f"Run failed: {message}", details)
        self.run_panel.finish()

    def show_run(self, run: RunResult, keep_memory: bool = False) -> None:
        self.state.show_run(run)
        self.charts.set_kind(run.model.task)
        self.charts.show_results(run.results, keep_memory)
        self.topk.show_run(run)
        if not self.controller.running:  # the queue's rows belong to the run in progress
            self.run_panel.show_results(run.results)

    # -- export ---------------------------------------------------------------------------------------
    def choose_export_parent(self, recipe: str) -> str:
        start = str(settings().value("export_dir", str(Path.home())))
        return QFileDialog.getExistingDirectory(
            self, f"Export {recipe}: choose where to put its folder", start
        )

    def export_recipe(self, recipe: str) -> None:
        run = self.state.run
        if run is None or run.run_id is None:
            self.report_error("Export needs a recorded run", "run the recipes or reopen a run from History")
            return
        if self.exporter.running:
            self.report_error("An export is already running", "wait for it to finish or cancel it")
            return
        parent = self.choose_export_parent(recipe)
        if not parent:
            return
        settings().setValue("export_dir", parent)
        target = Path(parent) / export_folder_name(run.model.name, recipe, run.run_id)
        from studio.deploy.export import occupied

        force = occupied(target)
        if force:
            answer = QMessageBox.question(
                self,
                "Replace the earlier export?",
                f"{target} is not empty. Replace everything in it with this export?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.exporter.start(run.run_id, recipe, target, force)
        progress = QProgressDialog(f"Exporting {recipe}…", "Cancel", 0, 0, self)
        progress.setWindowTitle("Export")
        progress.setMinimumDuration(0)
        progress.setMinimumWidth(460)
        progress.canceled.connect(self.exporter.cancel)
        progress.show()
        self.export_progress = progress
        self.status.setText(f"Exporting {recipe} to {target}…")

    def _export_progress(self, step: str) -> None:
        if self.export_progress is not None:
            title = self.export_progress.labelText().split(":", 1)[0].rstrip("…")
            self.export_progress.setLabelText(f"{title}: {step}…")

    def _close_export_progress(self) -> None:
        if self.export_progress is not None:
            self.export_progress.canceled.disconnect(self.exporter.cancel)
            self.export_progress.close()
            self.export_progress = None

    def _export_finished(self, evidence: object, folder: str) -> None:
        from studio.deploy.evidence import Evidence

        self._close_export_progress()
        assert isinstance(evidence, Evidence)
        box = QMessageBox(self)
        box.setWindowTitle(f"Exported {evidence.recipe}")
        box.setIcon(
            QMessageBox.Icon.Information if evidence.ready_for_release.ready else QMessageBox.Icon.Warning
        )
        box.setText(summary_html(evidence, folder))
        open_button = box.addButton("Open folder", QMessageBox.ButtonRole.ActionRole)
        box.addButton(QMessageBox.StandardButton.Close)
        open_button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(folder)))
        box.open()  # not exec(): the window keeps running
        self.export_box = box
        verdict = "ready for release" if evidence.ready_for_release.ready else "not ready for release"
        self.status.setText(f"Exported {evidence.recipe} to {folder}: {verdict}")

    def _export_failed(self, message: str, details: str) -> None:
        self._close_export_progress()
        self.report_error(message, details)

    def predict(self, text: str, pair: str) -> None:
        run = self.state.run
        if run is None:
            self.report_error(
                "Run some recipes first: typed text is predicted by the recipes of the last run", ""
            )
            return
        import tomllib

        from studio.core.recipe import parse_recipe

        recipes = [
            parse_recipe(tomllib.loads(r.recipe_toml), r.recipe)
            for r in run.results
            if r.ok and r.recipe_toml
        ]
        self._typed = text if not pair else f"{text}  ‖  {pair}"
        self.controller.predict(recipes, TextSet([text], None, "typed", pairs=[pair] if pair else None))

    def report_error(self, message: str, details: str) -> None:
        self.errors.add(message, details)
        self.error_dock.show()
        self.error_dock.raise_()
        self.status.setText(message)

    def about(self) -> None:
        from studio.core.about import about_lines

        lines = about_lines()
        body = "".join(f"<p>{line}</p>" for line in lines[1:])
        QMessageBox.about(self, "About Quantization Studio", f"<b>{lines[0]}</b>{body}")

    # -- drag and drop, settings ----------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        urls = event.mimeData().urls()
        if not urls:
            return
        path = Path(urls[0].toLocalFile())
        if path.suffix == ".toml":
            self.recipes_panel.load_file(path)
        else:
            self.state.open_model(str(path.parent if path.name == "config.json" else path))
        event.acceptProposedAction()

    def _restore(self) -> None:
        store = settings()
        geometry = store.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        layout = store.value("window_state")
        if isinstance(layout, QByteArray):
            self.restoreState(layout)

    def closeEvent(self, event: QCloseEvent) -> None:
        store = settings()
        store.setValue("geometry", self.saveGeometry())
        store.setValue("window_state", self.saveState())
        self.recipes_panel.list.save_selection()
        store.sync()
        if self.controller.running:
            self.controller.cancel_all()
        if self.cluster_run.running:
            self.cluster_run.cancel()
        if self.exporter.running and self.exporter.process is not None:
            self.exporter.cancel()  # the export removes its half-written folder before it exits
            self.exporter.process.waitForFinished(5000)
        super().closeEvent(event)
