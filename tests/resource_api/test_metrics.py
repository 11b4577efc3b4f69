"""The resource API's metrics (issue 10 item 5): requests per route template, authentication
decisions by status and reason, the token caches and the key set, every label value bounded.

In-process: ``create_app(..., metrics=Registry())`` over the respx issuer, the registry
rendered after real requests and parsed with ``prometheus-client``'s own parser. The real
program, its ``--metrics-port`` listener and several workers: ``tests/service_kit/
test_metrics_export.py`` and the last test here.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import litestar_logto
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar_logto import LogtoAuth
from prometheus_client.parser import text_string_to_metric_families

from bench.common import loopback_issuer
from resource_api import metrics as api_metrics
from resource_api.app import create_app
from resource_api.metrics import AUTH_REASONS, AUTH_STATUSES, FETCH_OUTCOMES
from resource_api.settings import Settings
from resource_api.storage import SqliteStore
from service_kit.http_metrics import METHODS, OTHER_METHOD, UNMATCHED
from service_kit.metrics import Registry
from tests.e2e.harness import free_ports
from tests.resource_api.helpers import SHOPPING_READ, bearer
from tests.served_programs import HOST, Serve, program_environ
from tests.support import SHOPPING, FakeClock, FakeIssuer, SigningKey, make_token

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(registry: Registry) -> Samples:
    """Every sample of the exposition, parsed by prometheus-client: (name, labels) -> value."""
    text = registry.render().decode()
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def app(
    *,
    settings: Settings,
    http_client: httpx.AsyncClient,
    clock: FakeClock,
    issuer: FakeIssuer,
    store: SqliteStore,
    registry: Registry,
) -> Litestar:
    return create_app(settings, http_client=http_client, clock=clock, store=store, metrics=registry)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as test_client:
        yield test_client


async def test_requests_are_counted_per_route_template_not_per_path(
    client: AsyncTestClient[Litestar], issuer: FakeIssuer, registry: Registry
) -> None:
    headers = bearer(issuer.sign(**SHOPPING_READ, sub="user-alice"))
    for order_id in (1, 2, 3):
        await client.get(f"/shopping/orders/{order_id}", headers=headers)
    await client.get("/no/such/page")
    await client.get("/admin/../../etc/passwd")

    found = samples(registry)
    name = "http_request_duration_seconds_count"
    assert value(found, name, route="/shopping/orders/{order_id}", method="GET", status="200") == 1
    assert value(found, name, route="/shopping/orders/{order_id}", method="GET", status="404") == 2
    assert value(found, name, route=UNMATCHED, method="GET", status="404") == 2
    assert not [key for key in found if "/no/such" in str(key) or "passwd" in str(key)]


async def test_authentication_decisions_are_counted_by_status_and_reason(
    client: AsyncTestClient[Litestar], issuer: FakeIssuer, clock: FakeClock, registry: Registry
) -> None:
    good = issuer.sign(**SHOPPING_READ)
    await client.get("/shopping/orders", headers=bearer(good))
    await client.get("/shopping/orders", headers=bearer(good))
    await client.get("/shopping/orders")
    await client.get("/shopping/orders", headers=bearer(issuer.sign(aud="https://elsewhere")))
    await client.get("/store/products", headers=bearer(good))
    expired = issuer.sign(**SHOPPING_READ, exp=clock() - 3600, iat=clock() - 7200)
    forged = make_token(SigningKey.es384(index=9), aud=SHOPPING)  # the kid, not the key
    for _ in range(2):
        await client.get("/shopping/orders", headers=bearer(expired))
        await client.get("/shopping/orders", headers=bearer(forged))

    found = samples(registry)
    name = "resource_api_auth_decisions_total"
    assert value(found, name, status="accepted", reason="none") == 2
    assert value(found, name, status="401", reason="no_credentials") == 1
    assert value(found, name, status="401", reason="wrong_audience") == 2  # and /store
    assert value(found, name, status="401", reason="expired") == 2
    assert value(found, name, status="401", reason="bad_signature") == 2
    # The second expired and forged tokens were answered from the refusal cache.
    assert value(found, "resource_api_refusal_cache_hits_total") == 2
    assert value(found, "resource_api_token_cache_lookups_total", result="hit") == 2
    # The foreign token's signature checks out: cached too (its audience is checked each time).
    assert value(found, "resource_api_token_cache_entries", cache="verified") == 2
    assert value(found, "resource_api_token_cache_entries", cache="refused") == 2
    assert value(found, "resource_api_key_set_fetches_total", outcome="ok") == 1
    assert value(found, "resource_api_key_set_usable") == 1


async def test_key_set_fetch_outcomes_and_age(
    settings: Settings, http_client: httpx.AsyncClient, clock: FakeClock, issuer: FakeIssuer
) -> None:
    auth = LogtoAuth(settings.auth_config(), http_client=http_client, clock=clock)
    registry = Registry()
    api_metrics.register(registry, auth, clock=clock)
    issuer.etag = '"v1"'
    answers: list[httpx.Response | Exception | None] = [
        None,  # 200: ok
        None,  # 304: not_modified
        httpx.ReadTimeout("slow"),
        httpx.Response(500),
    ]
    for answer in answers:
        if isinstance(answer, Exception):
            issuer.jwks_route.mock(side_effect=answer)
        elif answer is not None:
            issuer.jwks_route.mock(side_effect=None, return_value=answer)
        await auth.keys.refresh()
        clock.advance(100)  # past the cooldown

    found = samples(registry)
    fetches = "resource_api_key_set_fetches_total"
    assert {outcome: value(found, fetches, outcome=outcome) for outcome in FETCH_OUTCOMES} == {
        "ok": 1, "not_modified": 1, "timeout": 1, "error": 1,
    }  # fmt: skip
    # The last answer (304) came 300 s ago; the keys still serve.
    assert value(found, "resource_api_key_set_age_seconds") == 300
    assert value(found, "resource_api_key_set_usable") == 1


async def test_keys_unavailable_are_counted_as_503(
    *,
    settings: Settings,
    http_client: httpx.AsyncClient,
    clock: FakeClock,
    issuer: FakeIssuer,
    store: SqliteStore,
    registry: Registry,
) -> None:
    issuer.jwks_route.mock(return_value=httpx.Response(503))
    app = create_app(settings, http_client=http_client, clock=clock, store=store, metrics=registry)
    async with AsyncTestClient(app) as client:
        answer = await client.get("/shopping/orders", headers=bearer(issuer.sign(**SHOPPING_READ)))
    assert answer.status_code == 503

    found = samples(registry)
    assert value(
        found, "resource_api_auth_decisions_total", status="503", reason="keys_unavailable"
    )
    assert value(found, "resource_api_key_set_usable") == 0
    assert ("resource_api_key_set_age_seconds", ()) not in found  # never fetched: no age


async def test_every_label_value_is_bounded_after_hostile_requests(
    client: AsyncTestClient[Litestar], issuer: FakeIssuer, app: Litestar, registry: Registry
) -> None:
    secrets = ["user-mallory-7f3a", "org-evil-91b2", "https://evil.example/aud"]
    tokens = [
        issuer.sign(**SHOPPING_READ, sub=secrets[0]),
        issuer.sign(aud=secrets[2], sub=secrets[0]),
        issuer.sign(aud=SHOPPING, scope="store:read", organization_id=secrets[1]),
        f"{secrets[0]}.{secrets[1]}.x",
        "x" * 9000,
        "ey" + "A" * 40,
    ]
    paths = [
        "/shopping/orders",
        f"/shopping/orders/{secrets[0]}",
        f"/organizations/{secrets[1]}/members",
        f"/organizations/{secrets[1]}/store/products",
        f"/.well-known/oauth-protected-resource/{secrets[0]}",
        f"/{secrets[1]}/wp-login.php",
        "/%00%ff/..%2f",
        "/metrics",
    ]
    for path in paths:
        for token in tokens:
            for method in ("GET", "POST", "PROPFIND", "X-" + secrets[0].upper()):
                await client.request(method, path, headers=bearer(token))
        await client.get(path, params={"access_token": tokens[0]})

    text = registry.render().decode()
    for secret in [*secrets, *tokens]:
        assert secret not in text
    templates = {route.path_format for route in app.routes} | {UNMATCHED}
    allowed = {
        "route": templates,
        "method": METHODS | {OTHER_METHOD},
        "status": AUTH_STATUSES | {str(code) for code in range(100, 600)},
        "reason": AUTH_REASONS,
        "result": {"hit", "miss"},
        "cache": {"verified", "refused"},
        "outcome": set(FETCH_OUTCOMES),
        "le": None,
    }
    seen = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for label, label_value in sample.labels.items():
                assert label in allowed, label
                permitted = allowed[label]
                assert permitted is None or label_value in permitted, (label, label_value)
                seen += 1
    assert seen > 0
    assert "/metrics" not in templates  # the API serves no metrics on its public listener


def test_every_reason_the_auth_package_raises_is_a_bounded_label() -> None:
    raised: set[str] = set()
    for source in Path(litestar_logto.__file__).parent.glob("*.py"):
        text = source.read_text()
        raised.update(re.findall(r'reason="([a-z_]+)"', text))
        for prefix in re.findall(r'reason=f"([a-z]+_)\{name\}"', text):
            raised.update(
                f"{prefix}{name}"
                for name in ("sub", "client_id", "exp", "iat", "nbf", "organization_id", "jti")
            )
    dynamic_never_raised = {"no_sub", "no_client_id", "no_nbf", "no_organization_id", "no_jti"}
    assert raised - dynamic_never_raised <= AUTH_REASONS
    assert len(raised) > 30


def test_the_real_program_exports_both_workers_auth_metrics(serve: Serve, tmp_path: Path) -> None:
    """``python -m resource_api --workers 2 --metrics-port P``: one scrape counts the
    decisions of both workers and both key-set fetches; the public port has no /metrics."""
    [metrics_port] = free_ports(1)
    with loopback_issuer() as issuer:
        environ = program_environ(
            LOGTO_ENDPOINT=issuer.endpoint,
            RESOURCE_API_DATABASE=str(tmp_path / "api.sqlite3"),
            LOG_LEVEL="WARNING",
        )
        served = serve(
            "resource_api", "--workers", "2", "--metrics-port", str(metrics_port), environ=environ
        )
        good = {"Authorization": f"Bearer {issuer.token(subject='user-1')}"}
        statuses = [
            httpx.get(served.url + "/shopping/orders", headers=good, timeout=10).status_code
            for _ in range(30)
        ]
        refused = [
            httpx.get(served.url + "/shopping/orders", timeout=10).status_code for _ in range(10)
        ]
        assert httpx.get(served.url + "/metrics", timeout=10).status_code == 404
        assert statuses == [200] * 30
        assert refused == [401] * 10

        url = f"http://{HOST}:{metrics_port}/metrics"
        decisions = "resource_api_auth_decisions_total"
        deadline = time.monotonic() + 10
        while True:  # each worker writes its snapshot every second
            text = httpx.get(url, timeout=10).text
            found: Samples = {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            }
            # Each worker's numbers arrive with its own snapshot: wait for all of them.
            done = (
                value(found, decisions, status="accepted", reason="none") == 30
                and value(found, decisions, status="401", reason="no_credentials") == 10
                and value(
                    found,
                    "http_request_duration_seconds_count",
                    route="/shopping/orders",
                    method="GET",
                    status="200",
                )
                == 30
            )
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert value(found, decisions, status="accepted", reason="none") == 30
        assert value(found, decisions, status="401", reason="no_credentials") == 10
        # Each worker fetched its own key set.
        assert value(found, "resource_api_key_set_fetches_total", outcome="ok") >= 2
        assert value(found, "resource_api_key_set_usable") == 1
        assert (
            value(
                found,
                "http_request_duration_seconds_count",
                route="/shopping/orders",
                method="GET",
                status="200",
            )
            == 30
        )
        assert "user-1" not in text


async def test_a_head_request_is_counted_as_head_under_its_route(
    client: AsyncTestClient[Litestar], registry: Registry
) -> None:
    """HEAD is served as GET inside the app (service_kit.head), which the metrics wrap: the
    series says HEAD, with the route the router matched."""
    assert (await client.head("/health")).status_code == 200
    found = samples(registry)
    name = "http_request_duration_seconds_count"
    assert value(found, name, route="/health", method="HEAD", status="200") == 1
    assert not [key for key in found if name in str(key) and "'GET'" in str(key)]
