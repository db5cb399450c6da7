"""Files across the cluster: models to the nodes and artifacts back, as tar bytes in Ray's object store.

A node unpacks a shipped model once per content (a folder named by its hash); an artifact comes back into
the caller's cache under its own key, renamed into place whole, as the cache builds its entries.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from studio.core.cache import ENTRY_FILE, ArtifactCache


def pack(path: Path) -> bytes:
    """A file or a folder as tar bytes (uncompressed: model weights do not compress)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(path, arcname=path.name)
    return buffer.getvalue()


# Files a model file needs beside it: its tokenizer and config, an ONNX file's external weights.
SIBLING_SUFFIXES = (".json", ".txt", ".model", ".data", ".bin")


def pack_model(path: Path) -> bytes:
    """A model folder as it is; a model file (.onnx, .gguf) in a folder with the files it needs beside it."""
    if path.is_dir():
        return pack(path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for item in sorted(path.parent.iterdir()):
            if item == path or (item.is_file() and item.suffix in SIBLING_SUFFIXES):
                tar.add(item, arcname=f"{path.stem}-files/{item.name}")
    return buffer.getvalue()


def unpack(blob: bytes, into: Path) -> Path:
    """Unpack `pack`'s bytes into a new folder `into` (atomically); returns the packed file or folder."""
    if into.exists():
        return next(p for p in into.iterdir())
    into.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=into.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
            tar.extractall(tmp, filter="data")
        try:
            os.rename(tmp, into)
        except OSError:  # another task on this node unpacked it first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return next(p for p in into.iterdir())


def digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:24]


def used_entries(cache: ArtifactCache, since: float) -> list[Path]:
    """The cache entries a task built or read after `since` (what its recipe's artifact is)."""
    return [entry.path for entry in cache.entries() if float(entry.meta.get("last_used", 0)) >= since]


def import_entry(cache: ArtifactCache, key: str, blob: bytes) -> bool:
    """Put an entry that came back from a node into `cache`; False when it was there already."""
    target = cache.root / key
    if (target / ENTRY_FILE).is_file():
        return False
    with tempfile.TemporaryDirectory(prefix=".import-", dir=cache.root) as tmp:
        unpacked = unpack(blob, Path(tmp) / "entry")
        try:
            os.rename(unpacked, target)
        except OSError:
            return False
    cache.evict(keep=key)
    return True
