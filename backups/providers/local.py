"""The ``local`` provider: objects are files under ``LOCAL_STORAGE_PATH``."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import stat
from pathlib import Path
from typing import Self

from backups.providers.base import (
    ObjectNotFound,
    Progress,
    StorageError,
    StorageProvider,
    StoredObject,
    replaced_on_success,
)

_CHUNK = 1024 * 1024


class LocalStorage(StorageProvider):
    name = "local"

    def __init__(self, root: Path):
        self.root = root

    @classmethod
    def from_env(cls) -> Self:
        from django.conf import settings

        return cls(Path(settings.LOCAL_STORAGE_PATH))

    def describe(self) -> str:
        if not self.root.exists():
            # Listed as empty (see ``list``); a mistyped path should still catch the eye.
            return f"local folder {self.root} (does not exist yet; LOCAL_STORAGE_PATH)"
        return f"local folder {self.root}"

    def _path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        root = self.root.resolve()
        if root not in path.parents:
            raise StorageError(f"object name {name!r} leaves the storage folder", permanent=True)
        return path

    def upload(self, local_path: Path, name: str, progress: Progress | None = None) -> None:
        target = self._path(name)
        partial = target.with_name(f".{target.name}.partial")
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(local_path, "rb") as source, open(partial, "wb") as sink:
                _copy(source, sink, progress)
                sink.flush()
                os.fsync(sink.fileno())
            os.chmod(partial, 0o600)
            # A reader never sees a half-written object: the name appears complete.
            os.replace(partial, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from None

    def download(self, name: str, local_path: Path, progress: Progress | None = None) -> None:
        source_path = self._path(name)
        try:
            with (
                open(source_path, "rb") as source,
                replaced_on_success(local_path) as partial,
                open(partial, "wb") as sink,
            ):
                _copy(source, sink, progress)
        except FileNotFoundError:
            raise ObjectNotFound(name) from None
        except OSError as exc:
            raise StorageError(f"cannot read {source_path}: {exc.strerror or exc}") from None

    def list(self, prefix: str = "") -> list[StoredObject]:
        """What the folder holds; nothing when it does not exist yet, as on a new site before its
        first upload (which makes it), the way a cloud provider's missing bucket lists empty.

        A path that exists but is not a folder, or cannot be looked at, is a ``StorageError``:
        listed as empty it would pass for storage without backups.
        """
        try:
            mode = self.root.stat().st_mode
        except FileNotFoundError:
            if self.root.is_symlink():
                raise StorageError(
                    f"LOCAL_STORAGE_PATH is {self.root}, a link to {os.readlink(self.root)}, which does not "
                    "exist (a disk not mounted?)",
                    permanent=True,
                ) from None
            return []
        except OSError as exc:
            # NotADirectoryError: a part of the path is a file.
            raise StorageError(
                f"cannot list LOCAL_STORAGE_PATH {self.root}: {exc.strerror or exc}", permanent=True
            ) from None
        if not stat.S_ISDIR(mode):
            raise StorageError(
                f"LOCAL_STORAGE_PATH is {self.root}, which is a file, not a folder: "
                "point LOCAL_STORAGE_PATH at the folder that holds the backups",
                permanent=True,
            )
        found = []
        try:
            for path in self.root.rglob("*"):
                if not path.is_file() or path.name.startswith("."):
                    continue
                name = path.relative_to(self.root).as_posix()
                if name.startswith(prefix):
                    info = path.stat()
                    modified = dt.datetime.fromtimestamp(info.st_mtime, tz=dt.UTC)
                    found.append(StoredObject(name, info.st_size, modified))
        except OSError as exc:
            raise StorageError(f"cannot list {self.root}: {exc.strerror or exc}") from None
        return sorted(found, key=lambda obj: obj.name)

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {name}: {exc.strerror or exc}") from None

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()


def _copy(source, sink, progress: Progress | None) -> None:  # type: ignore[no-untyped-def]
    if progress is None:
        shutil.copyfileobj(source, sink, _CHUNK)
        return
    while chunk := source.read(_CHUNK):
        sink.write(chunk)
        progress(len(chunk))
