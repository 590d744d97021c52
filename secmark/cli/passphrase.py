"""Where the command line gets passphrases: a file, the environment, or a prompt."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from secmark.crypto import IdentityKeys, read_key_file
from secmark.errors import KeyMaterialError

__all__ = ["PASSPHRASE_ENV", "read_passphrase", "open_key_file"]

PASSPHRASE_ENV = "SECMARK_PASSPHRASE"


def read_passphrase(passphrase_file: str | None, *, confirm: bool) -> bytes:
    """The passphrase from ``passphrase_file`` (first line), else the
    ``SECMARK_PASSPHRASE`` variable, else a prompt on a terminal.

    Raises:
        KeyMaterialError: none of those gives a non-empty passphrase, or the
            two prompted entries differ.
    """
    if passphrase_file is not None:
        try:
            text = Path(passphrase_file).read_text(encoding="utf-8")
        except OSError as error:
            raise KeyMaterialError(
                f"cannot read passphrase file {passphrase_file}: {error.strerror}"
            ) from None
        passphrase = text.splitlines()[0] if text else ""
    elif os.environ.get(PASSPHRASE_ENV):
        passphrase = os.environ[PASSPHRASE_ENV]
    elif sys.stdin.isatty():
        passphrase = getpass.getpass("Passphrase: ")
        if confirm and getpass.getpass("Passphrase (again): ") != passphrase:
            raise KeyMaterialError("the two passphrases differ")
    else:
        raise KeyMaterialError(
            f"no passphrase: use --passphrase-file, set {PASSPHRASE_ENV}, "
            "or run in a terminal to be asked"
        )
    if not passphrase:
        raise KeyMaterialError("the passphrase is empty")
    return passphrase.encode("utf-8")


def open_key_file(path: str | os.PathLike[str], passphrase_file: str | None) -> IdentityKeys:
    """Open a key file, asking for a passphrase only if the file is encrypted."""
    return read_key_file(path, lambda: read_passphrase(passphrase_file, confirm=False))
