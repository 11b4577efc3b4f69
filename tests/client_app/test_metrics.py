"""The client app's metrics (issue 10 item 5): sign-ins started, completed and failed (with a
bounded reason), refreshes by outcome, session-store errors, and requests per route template;
no label carries a session id, a code, a token or a user.

In-process over the fake issuer (respx), the registry rendered and parsed with
``prometheus-client``'s parser.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.stores.memory import MemoryStore
from prometheus_client.parser import text_string_to_metric_families

from client_app.app import create_app
from client_app.errors import IssuerUnavailable, SessionEnded
from client_app.gateway import LogtoGateway, TokenTarget
from client_app.metrics import (
    REFRESH_OUTCOMES,
    SIGN_IN_FAILURES,
    STORE_OPERATIONS,
    ClientMetrics,
    refresh_outcome,
)
from client_app.oidc import LogtoProvider
from client_app.sessions import COOKIE_NAME, SessionStore
from client_app.settings import Settings
from service_kit.http_metrics import METHODS, OTHER_METHOD, UNMATCHED
from service_kit.metrics import Registry
from tests.client_app.conftest import browser, browser_sign_in, environment, sign_in
from tests.client_app.fake_logto import FakeLogto, oauth_error
from tests.e2e.harness import free_ports
from tests.served_programs import HOST, Serve, program_environ
from tests.support import SHOPPING

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(registry: Registry) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(registry.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


SIGN_INS = "client_app_sign_ins_total"


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def app(
    settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto, registry: Registry
) -> Litestar:
    return create_app(
        settings, http_client=http_client, session_store=MemoryStore(), metrics=registry
    )


async def test_sign_ins_started_completed_and_failed_with_their_reason(
    app: Litestar, logto: FakeLogto, registry: Registry
) -> None:
    async with browser(app) as client:
        logto.discovery.mock(return_value=httpx.Response(503))
        await client.get("/sign-in", follow_redirects=False)  # checked first: Logto is down
        logto.discovery.mock(return_value=httpx.Response(200, json=logto.metadata()))
        assert (await browser_sign_in(client, logto)).status_code == 303
        await client.get("/sign-in", follow_redirects=False)  # started, never finished
        await client.get("/callback?code=x&state=y", follow_redirects=False)  # the attempt's
        client.cookies.clear()
        await client.get("/callback?code=x&state=y", follow_redirects=False)  # no attempt

    found = samples(registry)
    assert value(found, SIGN_INS, outcome="started", reason="none") == 2
    assert value(found, SIGN_INS, outcome="completed", reason="none") == 1
    assert value(found, SIGN_INS, outcome="failed", reason="state_mismatch") == 1
    assert value(found, SIGN_INS, outcome="failed", reason="no_attempt") == 1
    assert value(found, SIGN_INS, outcome="failed", reason="issuer_unavailable") == 1
    name = "http_request_duration_seconds_count"
    assert value(found, name, route="/callback", method="GET", status="303") == 1
    assert value(found, name, route="/callback", method="GET", status="400") == 2


async def test_refreshes_are_counted_by_outcome(
    settings: Settings, logto: FakeLogto, http_client: httpx.AsyncClient
) -> None:
    registry = Registry()
    events = ClientMetrics(registry)
    provider = LogtoProvider(
        settings.logto_endpoint,
        http_client=http_client,
        timeout=settings.logto_timeout_seconds,
        on_refresh=lambda error: events.refresh(refresh_outcome(error)),
    )
    sessions = SessionStore(MemoryStore(), secret=settings.session_secret, max_age_seconds=3600)
    gateway = LogtoGateway(settings, provider=provider, sessions=sessions, metrics=events)
    session_id = await sign_in(gateway, logto)

    await gateway.token(session_id, TokenTarget(resource=SHOPPING))  # a refresh grant: ok
    logto.token.mock(side_effect=None, return_value=oauth_error(503, "temporarily_unavailable"))
    with pytest.raises(IssuerUnavailable):
        await gateway.token(session_id, TokenTarget(resource=SHOPPING, organization_id="acme"))
    logto.token.mock(side_effect=httpx.ConnectError("down"))
    with pytest.raises(IssuerUnavailable):
        await gateway.token(session_id, TokenTarget(organization_id="acme"))
    logto.token.mock(side_effect=None, return_value=oauth_error(400, "invalid_grant"))
    with pytest.raises(SessionEnded):
        await gateway.token(session_id, TokenTarget(resource="https://store.your-app.com/api"))

    found = samples(registry)
    refreshes = {
        outcome: value(found, "client_app_token_refreshes_total", outcome=outcome)
        for outcome in REFRESH_OUTCOMES
    }
    assert refreshes == {"ok": 1, "invalid_grant": 1, "unavailable": 2, "refused": 0, "error": 0}
    assert value(found, SIGN_INS, outcome="completed", reason="none") == 1


async def test_session_store_errors_are_counted_by_operation(
    settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto
) -> None:
    registry = Registry()
    app = create_app(settings, http_client=http_client, metrics=registry)
    async with browser(app) as client:
        settings.session_database.rmdir()
        settings.session_database.write_bytes(b"")  # the directory is now a file
        done = await browser_sign_in(client, logto)
    assert done.status_code == 503

    found = samples(registry)
    assert value(found, "client_app_session_store_errors_total", operation="set") == 1
    assert value(found, SIGN_INS, outcome="failed", reason="sessions_unavailable") == 1


async def test_every_label_value_is_bounded_after_hostile_requests(
    app: Litestar, logto: FakeLogto, registry: Registry
) -> None:
    secrets = ["victim-session-3b7e", "code-9f2c", "alice@example.com"]
    async with browser(app) as client:
        await browser_sign_in(client, logto, username="alice")
        client.cookies.set(COOKIE_NAME, secrets[0])  # a made-up session id
        for path in (
            f"/callback?code={secrets[1]}&state={secrets[0]}",
            f"/callback?error={secrets[2]}&state=x",
            f"/{secrets[0]}/wp-admin",
            f"/static/../../{secrets[1]}",
            f"/sign-in?next=/{secrets[2]}",
            "/organizations/" + secrets[0],
            "/metrics",
        ):
            for method in ("GET", "POST", "BREW"):
                await client.request(method, path, follow_redirects=False)

    text = registry.render().decode()
    for secret in secrets:
        assert secret not in text
    templates = {route.path_format for route in app.routes} | {UNMATCHED}
    allowed: dict[str, set[str] | None] = {
        "route": templates,
        "method": set(METHODS | {OTHER_METHOD}),
        "status": {str(code) for code in range(100, 600)},
        "outcome": {"started", "completed", "failed", *REFRESH_OUTCOMES},
        "reason": {"none", *SIGN_IN_FAILURES},
        "operation": set(STORE_OPERATIONS),
        "le": None,
    }
    seen = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for label, label_value in sample.labels.items():
                permitted = allowed[label]
                assert permitted is None or label_value in permitted, (label, label_value)
                seen += 1
    assert seen > 0


def test_the_real_program_exports_its_metrics_on_the_metrics_port(
    serve: Serve, tmp_path: Path
) -> None:
    """``python -m client_app --metrics-port P`` with Logto unreachable (a closed loopback
    port): a sign-in fails as issuer_unavailable, and the scrape says so."""
    [metrics_port, closed] = free_ports(2)
    environ = program_environ(
        **environment(
            LOGTO_ENDPOINT=f"http://{HOST}:{closed}",
            SESSION_DATABASE=str(tmp_path / "sessions"),
            LOG_LEVEL="WARNING",
        )
    )
    served = serve("client_app", "--metrics-port", str(metrics_port), environ=environ)
    assert httpx.get(served.url + "/sign-in", timeout=10).status_code == 503
    assert httpx.get(served.url + "/metrics", timeout=10).status_code == 404

    deadline = time.monotonic() + 10
    while True:  # the worker writes its snapshot every second
        text = httpx.get(f"http://{HOST}:{metrics_port}/metrics", timeout=10).text
        found = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        failed = value(found, SIGN_INS, outcome="failed", reason="issuer_unavailable")
        if failed == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert failed == 1
    name = "http_request_duration_seconds_count"
    assert value(found, name, route="/sign-in", method="GET", status="503") == 1
