"""Writing files so that a crash or a concurrent reader never sees half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from secmark.errors import SecmarkError

__all__ = ["PUBLIC_FILE_MODE", "SECRET_FILE_MODE", "write_atomic"]

SECRET_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644


def write_atomic(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int = SECRET_FILE_MODE,
    overwrite: bool = False,
) -> Path:
    """Write ``data`` to ``path`` all at once, with permissions ``mode``.

    The bytes go to a temporary file in the same directory, created with
    ``mode`` from the start (never briefly world-readable), flushed to disk and
    renamed over ``path``. On any failure the temporary file is removed and
    ``path`` is left as it was.

    Raises:
        SecmarkError: ``path`` exists and ``overwrite`` is false, or the
            directory does not exist.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise SecmarkError(f"cannot write {target}: directory {directory} does not exist")
    if target.exists() and not overwrite:
        raise SecmarkError(f"{target} already exists; remove it or choose another path")
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temporary, target)
        else:
            # link() fails if the target appeared meanwhile, where rename would clobber it.
            try:
                os.link(temporary, target)
            except FileExistsError:
                raise SecmarkError(
                    f"{target} already exists; remove it or choose another path"
                ) from None
            os.unlink(temporary)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target
