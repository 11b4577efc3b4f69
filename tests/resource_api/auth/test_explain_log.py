"""At DEBUG, a refused token is explained check by check in the log (never the token)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.support import NOW, FakeIssuer

EVENT = "auth_refusal_explained"


def _explained(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == EVENT]


@pytest.mark.parametrize(
    ("path", "claims", "status", "failing"),
    [
        ("/shopping/orders", {"exp": int(NOW) - 600}, 401, "lifetime"),
        ("/store/products", {}, 401, "aud"),
        (
            "/organizations/acme/store/products",
            {"aud": "https://store.your-app.com/api"},
            403,
            "organization",
        ),
        ("/shopping/orders", {"scope": "shopping:write"}, 403, "scopes"),
    ],
)
async def test_a_refusal_is_explained_at_debug(  # noqa: PLR0917 - fixtures + table columns
    issuer: FakeIssuer,
    api: AsyncTestClient[Any],
    caplog: pytest.LogCaptureFixture,
    path: str,
    claims: dict[str, Any],
    status: int,
    failing: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="litestar_logto")
    token = issuer.sign(**claims)
    response = await api.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status
    [record] = _explained(caplog)
    explanation = record.__dict__["explanation"]
    assert explanation["reason"] == record.__dict__["reason"]
    assert [c["name"] for c in explanation["checks"] if c["verdict"] == "fail"] == [failing]
    assert "key_set" not in explanation
    assert "key" not in explanation
    logged = str(record.__dict__)
    for part in token.split("."):
        assert part not in logged


async def test_no_explanation_above_debug_nor_for_a_replayed_refusal(
    issuer: FakeIssuer, api: AsyncTestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="litestar_logto")
    expired = issuer.sign(exp=int(NOW) - 600)
    await api.get("/shopping/orders", headers={"Authorization": f"Bearer {expired}"})
    assert _explained(caplog) == []
    caplog.set_level(logging.DEBUG, logger="litestar_logto")
    await api.get("/shopping/orders", headers={"Authorization": f"Bearer {expired}"})
    assert _explained(caplog) == []  # answered from the refusal cache: explained the first time
