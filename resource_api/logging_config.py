"""The resource API's logging is :mod:`service_kit.json_logging`, the JSON logging both programs
use (with its base credential names: the resource API redacts nothing more). These names stay
importable from here for code that imports them from the resource API.
"""

from __future__ import annotations

from service_kit.json_logging import JsonFormatter, StripQueryString, configure_logging

__all__ = ["JsonFormatter", "StripQueryString", "configure_logging"]
