"""From environment variables to settings: the machinery both programs' ``settings`` modules use.

A program lists its variables as :class:`Variable` rows (name, settings field, parser, required
or not) and calls :func:`read_variables`, which parses every variable and reports every
problem of the mapping at once in one :class:`SettingsError`, so a deployment is fixed in one
round trip. An empty value counts as unset (the settings default applies). Parsers raise
``ValueError`` with what is expected, never with the value (an operator may paste a secret into
the wrong variable). The parsers both programs need are here too: :func:`http_url`,
:func:`logto_endpoint` and :func:`log_level`. Each program keeps its own variables, defaults,
secrets and cross-checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """The mapping cannot be turned into settings; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable: where its parsed value goes and whether it must be set."""

    name: str
    """The environment variable."""
    field: str
    """The settings field that receives the parsed value."""
    parse: Callable[[str], object]
    """The value (stripped, never empty) to the field's value; ``ValueError`` says what is
    expected, as the end of a sentence starting with the variable's name."""
    required: bool = False


CrossChecks = Callable[[Mapping[str, Any], Set[str]], Iterable[str]]
"""Rules between variables: given the parsed values and the fields that failed to parse, the
problems found."""


def read_variables(
    environ: Mapping[str, str],
    variables: Iterable[Variable],
    cross_checks: CrossChecks | None = None,
) -> dict[str, Any]:
    """The settings fields parsed from ``environ`` (unset variables left out, so the defaults
    apply); raise :class:`SettingsError` listing every missing or invalid variable, in the
    order of ``variables``, then what ``cross_checks`` finds."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    failed: set[str] = set()
    for variable in variables:
        raw = environ.get(variable.name, "").strip()
        if not raw:
            if variable.required:
                problems.append(f"{variable.name} is required")
            continue  # the settings default applies
        try:
            values[variable.field] = variable.parse(raw)
        except ValueError as exc:
            problems.append(f"{variable.name} {exc}")
            failed.add(variable.field)
    if cross_checks is not None:
        problems.extend(cross_checks(values, failed))
    if problems:
        raise SettingsError(problems)
    return values


def http_url(raw: str) -> str:
    """An absolute http(s) URL with a host and no credentials, query or fragment; the trailing
    slash removed."""
    try:
        parts = urlsplit(raw)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise ValueError("must be a valid http(s) URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain credentials")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return raw.rstrip("/")


def logto_endpoint(raw: str) -> str:
    """The Logto tenant URL (an :func:`http_url`), which must not end in ``/oidc``."""
    url = http_url(raw)
    if url.endswith("/oidc"):
        raise ValueError("must be the tenant URL without /oidc (e.g. https://tenant.logto.app)")
    return url


def log_level(raw: str) -> str:
    """One of :data:`LOG_LEVELS`, in any case; returned in upper case."""
    level = raw.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level
