"""The artifact cache: quantized models on disk, keyed by model content, recipe and library versions.

An entry is a folder `<root>/<key>/` with the artifact files and `entry.json`. It is built in a
temporary folder and renamed into place, so a crash or a cancel never leaves a half-written entry
that a later run would trust.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import studio

# Versions that change what a quantizer writes: part of every key.
KEY_LIBRARIES = (
    "torch",
    "torchao",
    "transformers",
    "optimum",
    "optimum-onnx",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
)
ENTRY_FILE = "entry.json"


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"quantization-studio": studio.__version__}
    for name in KEY_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    size_bytes: int
    meta: dict[str, Any]


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


DEFAULT_CAP_BYTES = 20 * 2**30


def configured_cap() -> int:
    """The cache's size cap: QSTUDIO_CACHE_CAP_GB, 20 GB by default."""
    value = os.environ.get("QSTUDIO_CACHE_CAP_GB")
    return int(float(value) * 2**30) if value else DEFAULT_CAP_BYTES


class ArtifactCache:
    """Content-addressed folders of artifacts with atomic creation and least-recently-used eviction."""

    def __init__(self, root: Path, cap_bytes: int | None = None) -> None:
        self.root = root
        self.cap_bytes = configured_cap() if cap_bytes is None else cap_bytes
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(**parts: Any) -> str:
        payload = json.dumps({**parts, "libraries": library_versions()}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def lookup(self, key: str) -> Path | None:
        folder = self.root / key
        entry = folder / ENTRY_FILE
        if not entry.is_file():
            return None
        meta = json.loads(entry.read_text())
        meta["last_used"] = time.time()
        self._write_json(entry, meta)
        return folder

    def get_or_build(self, key: str, build: Callable[[Path], None], **meta: Any) -> tuple[Path, bool]:
        """The entry's folder and whether it came from the cache; `build(tmp)` fills a new one."""
        found = self.lookup(key)
        if found is not None:
            return found, True
        # The pid in the name lets the engine remove what a killed worker left behind.
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-{key}-", dir=self.root))
        try:
            build(tmp)
            now = time.time()
            self._write_json(
                tmp / ENTRY_FILE,
                {**meta, "key": key, "created": now, "last_used": now, "size_bytes": _folder_size(tmp)},
            )
            target = self.root / key
            try:
                os.rename(tmp, target)
            except OSError:  # another process finished the same entry first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            self.evict(keep=key)
            return target, False
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def entries(self) -> list[CacheEntry]:
        found = []
        for entry in self.root.glob(f"*/{ENTRY_FILE}"):
            meta = json.loads(entry.read_text())
            found.append(CacheEntry(entry.parent.name, entry.parent, int(meta.get("size_bytes", 0)), meta))
        return sorted(found, key=lambda e: e.meta.get("last_used", 0), reverse=True)

    def total_bytes(self) -> int:
        return sum(entry.size_bytes for entry in self.entries())

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove least-recently-used entries until the cache fits its cap; never `keep`."""
        removed = []
        entries = self.entries()  # most recently used first
        total = sum(e.size_bytes for e in entries)
        for entry in reversed(entries):
            if total <= self.cap_bytes:
                break
            if entry.key == keep:
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            total -= entry.size_bytes
            removed.append(entry.key)
        return removed

    def discard(self, folder: Path) -> None:
        """Remove one entry (a folder directly under the cache root), e.g. a throw-away variant."""
        if folder.parent.resolve() == self.root.resolve() and (folder / ENTRY_FILE).is_file():
            shutil.rmtree(folder, ignore_errors=True)

    def clear(self) -> int:
        """Remove every entry; returns the bytes freed."""
        freed = 0
        for entry in self.entries():
            shutil.rmtree(entry.path, ignore_errors=True)
            freed += entry.size_bytes
        return freed

    @staticmethod
    def _write_json(path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, default=str))
        os.replace(tmp, path)
