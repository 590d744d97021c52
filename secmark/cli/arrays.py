"""Reading the NumPy arrays a command is given (pools, decoy labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from secmark.errors import EncodingError, SecmarkError
from secmark.files import open_regular_file

__all__ = ["read_array"]


def read_array(path: Path, *, what: str, memory_map: bool = False) -> npt.NDArray[Any]:
    """The one array in the .npy file ``path``, never unpickled; read
    through a read-only memory map when ``memory_map`` is true.

    Raises:
        EncodingError: missing, not a regular file (checked before any read:
            a FIFO would block it forever), unreadable, empty, truncated, or
            not one .npy array (an .npz archive).
    """
    try:
        handle, _ = open_regular_file(path, what=f"the {what}")
    except SecmarkError as error:
        raise EncodingError(str(error)) from None
    handle.close()
    try:
        loaded = np.load(path, mmap_mode="r" if memory_map else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise EncodingError(
            f"cannot read the {what} {path}: {error}; save it with numpy.save as one array"
        ) from None
    if not isinstance(loaded, np.ndarray):
        loaded.close()
        raise EncodingError(
            f"the {what} {path} is not one array (an .npz archive?); save it with numpy.save"
        )
    return loaded
