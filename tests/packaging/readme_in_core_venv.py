"""Run by tests/packaging/test_core_distribution.py with the Python of a virtual environment that
holds only the litestar-logto wheel and its dependencies: it executes the README's "Use it in
your own service" example (written to a file by the test, its endpoint pointed at a running dev
issuer) and calls its routes with Litestar's test client. Only the standard library, Litestar and
litestar_logto are imported, as in a user's service.

Usage: python readme_in_core_venv.py EXAMPLE_FILE < {"name": "access token", ...}
Prints one JSON object: the answers by token name, plus "none" (no token) and "ping" (public).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import litestar_logto
from litestar import Litestar
from litestar.testing import TestClient


def main() -> None:
    """Execute the example, call its routes, print what they answered."""
    example = Path(sys.argv[1])
    tokens: dict[str, str] = json.load(sys.stdin)
    module = types.ModuleType("readme_example")  # Litestar resolves handler hints by module
    sys.modules[module.__name__] = module
    exec(compile(example.read_text(encoding="utf-8"), str(example), "exec"), module.__dict__)  # noqa: S102 - the README's example
    app = module.__dict__["app"]
    assert isinstance(app, Litestar)
    answers: dict[str, Any] = {}
    with TestClient(app) as client:
        for name, token in tokens.items():
            response = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
            answers[name] = [response.status_code, response.json()]
        anonymous = client.get("/orders")
        answers["none"] = [anonymous.status_code, anonymous.headers.get("www-authenticate", "")]
        ping = client.get("/ping")
        answers["ping"] = [ping.status_code, ping.text]
    print(json.dumps({"answers": answers, "litestar_logto": litestar_logto.__file__}))


if __name__ == "__main__":
    main()
