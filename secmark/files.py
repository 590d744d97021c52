"""Writing files so that a crash or a concurrent reader never sees half of
one, and reading them so that a path to something else than a regular file
(a FIFO, a device, a directory) is refused before any read can block."""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from secmark.errors import EncodingError, SecmarkError

__all__ = [
    "MAX_READ_SIZE",
    "PUBLIC_FILE_MODE",
    "SECRET_FILE_MODE",
    "exclusive_lock",
    "open_regular_file",
    "read_regular_file",
    "write_atomic",
]

SECRET_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644

MAX_READ_SIZE = 1024 * 1024 * 1024
"""Default bound on a file read whole: the largest document secmark reads (a
verdict bundle, ``secmark.protocol.bundle.MAX_BUNDLE_SIZE``). Each parser
applies its own, smaller limit; this one keeps a path to a huge file from
being read into memory at all (denial of service)."""

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def open_regular_file(
    path: str | os.PathLike[str], *, what: str = "file"
) -> tuple[BinaryIO, os.stat_result]:
    """Open ``path`` for reading if it is a regular file; return the handle
    and its ``fstat`` (of the file opened, not of a name that may change).

    The file is opened non-blocking and checked before anything is read: a
    FIFO would otherwise block the reader until someone writes to it, a
    device such as ``/dev/zero`` never ends.

    Raises:
        SecmarkError: ``path`` cannot be opened or is not a regular file.
    """
    target = Path(path)
    try:
        descriptor = os.open(target, _OPEN_FLAGS)
    except OSError as error:
        raise SecmarkError(f"cannot read {what} {target}: {error.strerror}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise SecmarkError(
                f"cannot read {what} {target}: it is {_kind(info.st_mode)}; "
                "give the path of a regular file"
            )
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb"), info
    except BaseException:
        os.close(descriptor)
        raise


def read_regular_file(
    path: str | os.PathLike[str], *, max_size: int = MAX_READ_SIZE, what: str = "file"
) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_size`` of them.

    Every command-line read of a document goes through here (one helper:
    the checks cannot be forgotten in one command).

    Raises:
        SecmarkError: as :func:`open_regular_file`, or a read error.
        EncodingError: the file is larger than ``max_size`` (checked before
            reading it, and again on the bytes read).
    """
    handle, info = open_regular_file(path, what=what)
    with handle:
        if info.st_size > max_size:
            raise EncodingError(
                f"{what} {path} is {info.st_size} bytes, over the limit of {max_size}"
            )
        try:
            data = handle.read(max_size + 1)
        except OSError as error:
            raise SecmarkError(f"cannot read {what} {path}: {error.strerror}") from None
    if len(data) > max_size:
        raise EncodingError(f"{what} {path} is over the limit of {max_size} bytes")
    return data


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
    _fsync_directory(directory)
    return target


@contextmanager
def new_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A directory to fill in the ``with`` block, which becomes ``path``
    all at once when the block ends without an exception.

    The files go to a temporary directory beside ``path``; at the end it is
    synced and renamed to ``path``. On any failure it is removed and
    ``path`` does not exist: a reader never sees a half-written directory,
    and the command can simply be run again.

    Raises:
        SecmarkError: ``path`` exists (before the block, or by the time it
            ends), or its parent directory does not.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise SecmarkError(f"cannot write {target}: directory {parent} does not exist")
    if target.exists():
        raise SecmarkError(f"{target} already exists; remove it or choose another path")
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    try:
        yield temporary
        _fsync_directory(temporary)
        # Checked again just before the rename: rename() would silently
        # replace an empty directory created meanwhile.
        if target.exists():
            raise SecmarkError(f"{target} already exists; remove it or choose another path")
        os.rename(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    _fsync_directory(parent)


def _fsync_directory(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextmanager
def exclusive_lock(path: Path, *, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created, mode 0600, if missing)
    for the ``with`` block.

    The lock is an ``flock`` on a file descriptor of its own, so it
    serialises the blocks of threads and processes alike on one host (not
    across a network file system). The operating system releases it when
    the descriptor is closed, a crashed holder included.

    Raises:
        SecmarkError: the lock file cannot be opened or locked (naming ``what``).
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, SECRET_FILE_MODE)
    except OSError as error:
        raise SecmarkError(f"cannot lock {what} ({path}): {error.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:
            raise SecmarkError(f"cannot lock {what} ({path}): {error.strerror}") from None
        yield
    finally:
        os.close(fd)
