"""Where the command line gets passphrases: a file, the environment, or a prompt."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from secmark.crypto import IdentityKeys, read_key_file
from secmark.errors import KeyMaterialError

__all__ = ["PASSPHRASE_ENV", "open_key_file", "read_passphrase"]

PASSPHRASE_ENV = "SECMARK_PASSPHRASE"


def read_passphrase(
    passphrase_file: str | None,
    *,
    confirm: bool,
    variable: str = PASSPHRASE_ENV,
    what: str = "passphrase",
) -> bytes:
    """The ``what`` from ``passphrase_file`` (first line), else the environment
    ``variable``, else a prompt on a terminal.

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
    elif os.environ.get(variable):
        passphrase = os.environ[variable]
    elif sys.stdin.isatty():
        passphrase = getpass.getpass(f"{what.capitalize()}: ")
        if confirm and getpass.getpass(f"{what.capitalize()} (again): ") != passphrase:
            raise KeyMaterialError(f"the two entries of the {what} differ")
    else:
        raise KeyMaterialError(
            f"no {what}: use --passphrase-file, set {variable}, or run in a terminal to be asked"
        )
    if not passphrase:
        raise KeyMaterialError(f"the {what} is empty")
    return passphrase.encode("utf-8")


def open_key_file(path: str | os.PathLike[str], passphrase_file: str | None) -> IdentityKeys:
    """Open a key file, asking for a passphrase only if the file is encrypted."""
    return read_key_file(path, lambda: read_passphrase(passphrase_file, confirm=False))
