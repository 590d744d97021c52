"""Where the command line gets passphrases: a file, the environment, or a prompt."""

from __future__ import annotations

import getpass
import os
import sys

from secmark.crypto import IdentityKeys, read_key_file
from secmark.errors import KeyMaterialError, SecmarkError
from secmark.files import read_regular_file

__all__ = ["PASSPHRASE_ENV", "open_key_file", "read_passphrase"]

PASSPHRASE_ENV = "SECMARK_PASSPHRASE"

# A passphrase is a line of text; a larger file is not a passphrase file.
_MAX_PASSPHRASE_FILE = 64 * 1024


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
            data = read_regular_file(
                passphrase_file, max_size=_MAX_PASSPHRASE_FILE, what="passphrase file"
            )
        except SecmarkError as error:
            raise KeyMaterialError(str(error)) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise KeyMaterialError(
                f"passphrase file {passphrase_file} is not UTF-8 text (byte {error.start}); "
                "write the passphrase as UTF-8"
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
