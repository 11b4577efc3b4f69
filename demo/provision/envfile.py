"""The hand-off file: ``KEY=value`` lines the client app's container sources (``sh``'s ``.``)
before it starts, written with mode 0600 and replaced atomically.

Values are quoted for the shell (:func:`shlex.quote`), so a value holding spaces, quotes or
``$`` is read back verbatim instead of being run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
from collections.abc import Mapping
from pathlib import Path

from .management import ProvisionError

SESSION_SECRET_BYTES = 32


def read_env_file(path: Path) -> dict[str, str]:
    """The values of an earlier hand-off file; ``{}`` when there is none or it is unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            (word,) = shlex.split(line)
        except ValueError:
            continue
        key, sep, value = word.partition("=")
        if sep:
            values[key] = value
    return values


def session_secret(given: str | None, path: Path) -> str:
    """``given`` (SESSION_SECRET of the environment), else the previous file's (changing it
    would sign everybody out), else a new random one."""
    if given:
        return given
    return read_env_file(path).get("SESSION_SECRET") or secrets.token_urlsafe(SESSION_SECRET_BYTES)


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Write ``values`` to ``path`` (0600), replacing it atomically."""
    text = "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        temporary.replace(path)
    except OSError as exc:
        raise ProvisionError(f"cannot write {path}: {exc.strerror or exc}") from None
