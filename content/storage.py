"""Where attachment bytes live: a small content-addressed blob store.

A blob's key is the SHA-256 of its bytes (64 lowercase hex digits), computed by the store itself while
it writes, so a key always names exactly those bytes and identical files are stored once. The database
(`Attachment.storage_key`) refers to blobs by key; deciding when a blob is no longer referenced is the
caller's business (content/attachments.py).

`LocalStorage` keeps blobs on the local filesystem, sharded by the first two bytes of the key
(`ab/cd/abcd…`). A blob is written to a temporary file under the store's root (same filesystem), flushed
to disk, then renamed into place with `os.replace`, so a reader or a crash never sees half a file.
"""
from __future__ import annotations

import abc
import contextlib
import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from flask import Flask, current_app

CHUNK_SIZE = 64 * 1024
_KEY = re.compile(r"[0-9a-f]{64}")


def check_key(key: str) -> str:
    """A key is a SHA-256 hex digest, nothing else (it becomes part of a path)."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError("invalid storage key")
    return key


class Storage(abc.ABC):
    """A content-addressed blob store."""

    @abc.abstractmethod
    def put(self, stream: BinaryIO) -> str:
        """Store the bytes read from `stream` (until EOF); return their key (sha256 hex).
        Storing bytes that are already there is a no-op that returns the same key."""

    @abc.abstractmethod
    def open(self, key: str) -> BinaryIO:
        """The blob for reading (binary). FileNotFoundError when it is not there."""

    def local_path(self, key: str) -> str | None:
        """A filesystem path to the blob when the backend has one (lets the web layer serve it with
        Range support), else None."""
        return None

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether the blob is stored."""

    def delete(self, key: str) -> bool:
        """Remove the blob; False when it was not there."""
        with self.removal(key) as removed:
            return removed

    @abc.abstractmethod
    def removal(self, key: str) -> contextlib.AbstractContextManager[bool]:
        """Two-phase removal: on entry the blob disappears (the context value says whether it was
        there); if the block raises, it is put back; otherwise it is gone for good. Lets a caller
        delete a blob and commit the matching database change as one unit."""


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    # Layout -----------------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def _tmp_dir(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # Storage ----------------------------------------------------------------------------------------
    def put(self, stream: BinaryIO) -> str:
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=self._tmp_dir())
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK_SIZE):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            key = digest.hexdigest()
            final = self._path(key)
            if final.exists():  # identical bytes are already stored: keep one copy
                return key
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, final)
            tmp_name = None
            _fsync_dir(final.parent)
            return key
        finally:
            if tmp_name is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_name)

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def local_path(self, key: str) -> str | None:
        return str(self._path(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    @contextlib.contextmanager
    def removal(self, key: str) -> Iterator[bool]:
        final = self._path(key)
        aside = self._tmp_dir() / f".removing-{key}-{uuid.uuid4().hex}"
        try:
            os.replace(final, aside)
        except FileNotFoundError:
            yield False
            return
        try:
            yield True
        except BaseException:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(aside, final)  # same bytes under the same key: safe even if rewritten meanwhile
            raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(aside)


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def get_storage(app: Flask | None = None) -> Storage:
    """The attachment store of `app` (default: the current app), from ATTACHMENT_STORAGE_DIR
    (default `<instance_path>/attachments`). Read at each call, so tests may point it elsewhere."""
    app = app or current_app
    root = app.config.get("ATTACHMENT_STORAGE_DIR") or os.path.join(app.instance_path, "attachments")
    return LocalStorage(root)
