"""Files the product ships pinned by their sha256 (the head model's asset, the hair network): read once,
checked at load, so that a corrupt or swapped file fails loudly instead of changing every avatar."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_pinned(path: str | Path, sha256: str, error: Callable[[str], Exception]) -> bytes:
    """The bytes of `path` when their sha256 is `sha256`; else raises error(problem), the caller's exception
    naming the file and its fix, with problem "the file is missing" or "sha256 ... is not the pinned ..."."""
    path = Path(path)
    if not path.is_file():
        raise error("the file is missing")
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise error(f"sha256 {got} is not the pinned {sha256} (corrupt or another version)")
    return data
