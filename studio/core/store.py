"""Run history in SQLite: every run, its model, recipes, hardware and every measurement.

The database runs in WAL mode with a busy timeout, so several studio processes can write to it at
once. Each finished recipe is committed on its own: killing the studio at any moment loses at most the
recipe in flight. A run whose process died without finishing reads as "interrupted".
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.results import RecipeResult, RunResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    status TEXT NOT NULL,
    pid INTEGER,
    host TEXT,
    model_name TEXT NOT NULL,
    model_path TEXT NOT NULL,
    model_hash TEXT NOT NULL,
    header_json TEXT NOT NULL,
    request_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    recipe TEXT NOT NULL,
    status TEXT NOT NULL,
    result_json TEXT NOT NULL,
    topk_json TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
);
"""


@dataclass(frozen=True)
class RunSummary:
    id: int
    created: datetime
    status: str
    model_name: str
    model_path: str
    recipes: int
    ok: int


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        import psutil

        return bool(psutil.pid_exists(pid))
    except Exception:
        return True


class RunStore:
    """The history database; one connection per call, so it is safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA foreign_keys=ON")
            with db:  # one transaction, committed on success
                yield db
        finally:
            db.close()

    # -- writing ---------------------------------------------------------------------------------------
    def begin_run(self, header: RunResult, request: dict[str, Any]) -> int:
        """Record a run before its first recipe; `request` is what `rerun` needs to repeat it."""
        body = header.model_dump_json(exclude={"results"})
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO runs (created, status, pid, host, model_name, model_path, model_hash, header_json,"
                " request_json) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (
                    header.created.isoformat(),
                    os.getpid(),
                    socket.gethostname(),
                    header.model.name,
                    header.model.ref,
                    header.model.content_hash,
                    body,
                    json.dumps(request),
                ),
            )
            return int(cursor.lastrowid or 0)

    def add_result(self, run_id: int, position: int, result: RecipeResult) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO results (run_id, position, recipe, status, result_json, topk_json)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    position,
                    result.recipe,
                    result.status,
                    result.model_dump_json(exclude={"topk"}),
                    json.dumps(result.topk),
                ),
            )

    def finish_run(self, run_id: int, status: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))

    # -- reading ---------------------------------------------------------------------------------------
    def _status(self, status: str, pid: int | None, host: str | None) -> str:
        if status == "running" and host == socket.gethostname() and not _pid_alive(pid):
            return "interrupted"
        return status

    def runs(self, limit: int = 100) -> list[RunSummary]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT r.id, r.created, r.status, r.pid, r.host, r.model_name, r.model_path,"
                " COUNT(x.position), SUM(CASE WHEN x.status = 'ok' THEN 1 ELSE 0 END)"
                " FROM runs r LEFT JOIN results x ON x.run_id = r.id GROUP BY r.id ORDER BY r.id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            RunSummary(
                row[0],
                datetime.fromisoformat(row[1]),
                self._status(row[2], row[3], row[4]),
                row[5],
                row[6],
                row[7],
                row[8] or 0,
            )
            for row in rows
        ]

    def load(self, run_id: int) -> RunResult:
        with self._connect() as db:
            row = db.execute("SELECT header_json FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise StudioError(
                    f"no run {run_id} in the history", "see `qstudio history` for the runs it has"
                )
            results = db.execute(
                "SELECT result_json, topk_json FROM results WHERE run_id = ? ORDER BY position", (run_id,)
            ).fetchall()
        header = json.loads(row[0])
        header["results"] = []
        header["run_id"] = run_id
        run = RunResult.model_validate(header)
        for result_json, topk_json in results:
            result = RecipeResult.model_validate_json(result_json)
            result.topk = [[(label, p) for label, p in row] for row in json.loads(topk_json)]
            run.results.append(result)
        return run

    def request(self, run_id: int) -> dict[str, Any]:
        with self._connect() as db:
            row = db.execute("SELECT request_json FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StudioError(f"no run {run_id} in the history", "see `qstudio history` for the runs it has")
        request: dict[str, Any] = json.loads(row[0])
        return request

    def integrity(self) -> str:
        with self._connect() as db:
            return str(db.execute("PRAGMA integrity_check").fetchone()[0])
