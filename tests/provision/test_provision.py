"""``python -m demo.provision`` against a fake Logto Management API (respx, at the network edge).

The fake (``fake_management_api.py``) keeps a tenant's state and checks every request's path
and body the way Logto's route guards do, so these tests see what the command really asks for:
first run, second run (nothing to change), a half-configured tenant, pagination, and every
failure (wrong credentials, no Management API access, Logto unreachable, conflicting objects).
What "the demo tenant" is comes from the dev issuer's seed, through ``demo.seed``, exactly as
``./dev demo`` prints it.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import respx

from demo.launcher import DEFAULT_SEED, ROOT, free_port
from demo.provision.__main__ import main
from demo.seed import api_indicators, demo_users, load_seed
from tests.provision.fake_management_api import M2M_ID, M2M_SECRET, FakeLogto

ENDPOINT: Final = "http://logto.test:3001"
SEED: Final = load_seed(DEFAULT_SEED)
INDICATORS: Final = api_indicators(SEED)
CLIENT_BASE_URL: Final = "http://localhost:8000"
ENV: Final = {
    "LOGTO_ENDPOINT": ENDPOINT,
    "LOGTO_M2M_APP_ID": M2M_ID,
    "LOGTO_M2M_APP_SECRET": M2M_SECRET,
}
DOCS: Final = ROOT / "docs" / "docker.md"


@dataclass
class Run:
    """One run of the command: its exit status and what it printed."""

    status: int
    out: str
    err: str

    @property
    def env_lines(self) -> dict[str, str]:
        return dict(
            line.split("=", 1) for line in self.out.splitlines() if re.match(r"^[A-Z_]+=", line)
        )


@pytest.fixture
def logto(respx_router: respx.MockRouter) -> FakeLogto:
    """A freshly seeded Logto tenant with the M2M app of the one click step."""
    return FakeLogto(ENDPOINT).install(respx_router)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Any:
    def invoke(*argv: str, env: Mapping[str, str] = ENV) -> Run:
        status = main(list(argv), dict(env))
        captured = capsys.readouterr()
        result = Run(status, captured.out, captured.err)
        # Never the M2M secret, never a traceback, whatever happened.
        assert M2M_SECRET not in result.out + result.err
        assert "Traceback" not in result.out + result.err
        return result

    return invoke


def assert_is_the_demo_tenant(logto: FakeLogto) -> None:
    """Users, passwords, roles, organizations and rights as ``./dev demo`` has them: compared
    with what ``demo.seed`` says each seeded user may do."""
    users = demo_users(SEED, SEED["users"])
    assert {u.username for u in users} == {"alice", "bob", "carol", "dave"}
    for user in users:
        uid = logto.user_id(user.username)
        assert logto.passwords[uid] == user.password
        granted = set()
        for role in logto.role_names_of(user.username):
            for scopes in logto.role_permissions(role).values():
                granted |= scopes
        assert granted == set(user.api_scopes), user.username
        for member in user.memberships:
            name = next(o["name"] for o in SEED["organizations"] if o["id"] == member.organization)
            assert logto.organization_members(name)[user.username] == set(member.roles)
            org_scopes = set().union(*(logto.org_role_scope_names(r) for r in member.roles))
            assert org_scopes == set(member.scopes)
            org_api = set()
            for role in member.roles:
                for scopes in logto.org_role_permissions(role).values():
                    org_api |= scopes
            assert org_api == set(member.api_scopes)
    for organization in SEED["organizations"]:
        members = logto.organization_members(organization["name"])
        assert len(members) == len(organization["members"])
    for resource in SEED["resources"]:
        found = logto.resource_by_indicator(resource["indicator"])
        names = {s["name"] for s in logto.scopes.values() if s["resourceId"] == found["id"]}
        assert names == {s["name"] for s in resource["scopes"]}
    assert {s["name"] for s in logto.org_scopes.values()} == {
        s["name"] for s in SEED["organizationTemplate"]["scopes"]
    }


def client_app(logto: FakeLogto) -> dict[str, Any]:
    (app,) = [a for a in logto.applications.values() if a["type"] == "Traditional"]
    return app


# -- first and second run ------------------------------------------------------------------


def test_first_run_creates_the_demo_tenant(logto: FakeLogto, run: Any) -> None:
    result = run()
    assert result.status == 0, result.err
    assert_is_the_demo_tenant(logto)
    app = client_app(logto)
    assert app["oidcClientMetadata"]["redirectUris"] == [f"{CLIENT_BASE_URL}/callback"]
    assert app["oidcClientMetadata"]["postLogoutRedirectUris"] == [f"{CLIENT_BASE_URL}/"]
    # The secret a client must send is the one of GET /applications/{id}/secrets, not the
    # application's internal `secret` column.
    (secret,) = logto.app_secrets[app["id"]]
    assert result.env_lines["LOGTO_APP_ID"] == app["id"]
    assert result.env_lines["LOGTO_APP_SECRET"] == secret["value"]
    assert result.env_lines["SHOPPING_RESOURCE"] == INDICATORS.shopping
    assert result.env_lines["STORE_RESOURCE"] == INDICATORS.store
    assert "LOGTO_M2M" not in result.out
    # The sign-in experience is left alone without the explicit flag.
    assert not [c for c in logto.calls if c.path == "/api/sign-in-exp"]


def test_first_run_prints_the_demo_users_and_their_passwords(logto: FakeLogto, run: Any) -> None:
    result = run()
    for user in SEED["users"]:
        assert f"{user['username']} / {user['password']}" in result.err


def test_second_run_changes_nothing_and_says_so(logto: FakeLogto, run: Any) -> None:
    first = run()
    writes_before = len(logto.writes())
    second = run()
    assert second.status == 0, second.err
    assert [str(c) for c in logto.writes()[writes_before:]] == []
    assert "nothing to change" in second.err.lower()
    assert second.env_lines["LOGTO_APP_ID"] == first.env_lines["LOGTO_APP_ID"]
    assert second.env_lines["LOGTO_APP_SECRET"] == first.env_lines["LOGTO_APP_SECRET"]
    assert len(logto.app_secrets[first.env_lines["LOGTO_APP_ID"]]) == 1


# -- the closing note: every call the command makes, in order ------------------------------


def documented_calls() -> dict[str, int]:
    """``METHOD /path -> step number`` from docs/docker.md's "What the provision command
    calls" (a numbered list between two markers)."""
    section = DOCS.read_text().split("<!-- provision-calls -->")[1].split("<!-- /")[0]
    steps = re.split(r"^(\d+)\. ", section, flags=re.MULTILINE)[1:]
    calls: dict[str, int] = {}
    for number, text in zip(steps[::2], steps[1::2], strict=True):
        for call in re.findall(r"`((?:GET|POST|PUT|PATCH|DELETE) /[^`]*)`", text):
            calls.setdefault(call, int(number))
    return calls


def template(method: str, path: str, logto: FakeLogto) -> str:
    """``path`` with every object id replaced by ``{id}`` (``{userId}``, ``{scopeId}``)."""
    ids = set(logto.resources) | set(logto.scopes) | set(logto.roles) | set(logto.users)
    ids |= set(logto.org_scopes) | set(logto.org_roles) | set(logto.organizations)
    ids |= set(logto.applications)
    parts = path.split("/")
    names = iter(["{id}", "{userId}"] if path.startswith("/api/organizations/") else [])
    out: list[str] = []
    for part in parts:
        if part in ids:
            if path.startswith("/api/roles/") and out[-1] == "scopes":
                out.append("{scopeId}")
            else:
                out.append(next(names, "{id}"))
        else:
            out.append(part)
    return f"{method} {'/'.join(out)}"


@pytest.mark.parametrize("partial", [False, True], ids=["first-run", "partial-state"])
def test_every_call_is_in_the_documented_list_in_order(
    logto: FakeLogto, run: Any, partial: bool
) -> None:
    """docs/docker.md lists each Management API call, step by step in the order the command
    makes them: every call made is listed, and the calls' steps never go back."""
    if partial:
        make_partial(logto)
    run("--disable-pwned-password-check")
    documented = documented_calls()
    made = [template(call.method, call.path, logto) for call in logto.calls]
    assert set(made) <= set(documented), set(made) - set(documented)
    steps = [documented[name] for name in made]
    assert steps == sorted(steps)
    assert set(steps) == set(range(1, 10))


def test_every_documented_call_is_made_by_a_first_or_a_partial_run(
    respx_router: respx.MockRouter, run: Any
) -> None:
    """The list holds no call the command does not make."""
    made: set[str] = set()
    for index, partial in enumerate((False, True)):
        endpoint = f"http://logto{index}.test:3001"
        logto = FakeLogto(endpoint).install(respx_router)
        if partial:
            make_partial(logto)
        assert (
            run("--disable-pwned-password-check", env={**ENV, "LOGTO_ENDPOINT": endpoint}).status
            == 0
        )
        made |= {template(call.method, call.path, logto) for call in logto.calls}
    assert made == set(documented_calls())


# -- a half-configured tenant --------------------------------------------------------------


def make_partial(logto: FakeLogto) -> None:
    """Someone began by hand: one permission, one role with a wrong grant, alice with another
    password, Acme with alice as its admin, the application with a wrong redirect URI."""
    shopping = logto.add_resource("Shopping API", INDICATORS.shopping, ["shopping:read"])
    store = logto.add_resource("Store", INDICATORS.store, ["store:read", "store:write"])
    logto.resources[store]["accessTokenTtl"] = 600
    admin = logto.add_role("store-admin")
    logto.role_scopes.add((admin, logto.scope_id(store, "store:read")))
    logto.role_scopes.add((admin, logto.scope_id(shopping, "shopping:read")))
    alice = logto.add_user("alice", "an-old-password", "alice@example.com")
    bob = logto.add_user("bob", "bob-password", "bob@example.com")
    logto.user_roles.add((bob, admin))
    member = logto.add_org_role("member")
    admin_org_role = logto.add_org_role("admin")
    acme = logto.add_organization("Acme")
    logto.members.add((acme, alice))
    logto.member_roles.add((acme, alice, admin_org_role))
    logto.org_role_resource_scopes.add((member, logto.scope_id(store, "store:write")))
    app = logto.add_application("Client app", "Traditional", ["http://127.0.0.1:9999/callback"])
    logto.app_secrets[app][0]["expiresAt"] = 1_000  # expired in 1970


def test_a_partial_tenant_is_completed_without_duplicates(logto: FakeLogto, run: Any) -> None:
    make_partial(logto)
    result = run()
    assert result.status == 0, result.err
    assert_is_the_demo_tenant(logto)
    writes = [str(c) for c in logto.writes()]
    alice = logto.user_id("alice")
    assert f"PATCH /api/users/{alice}/password" in writes
    bob = logto.user_id("bob")
    assert f"PATCH /api/users/{bob}/password" not in writes
    # One of each: found, not created again.
    for indicator in (INDICATORS.shopping, INDICATORS.store):
        assert len([r for r in logto.resources.values() if r["indicator"] == indicator]) == 1
    assert sorted(u["username"] for u in logto.users.values()) == ["alice", "bob", "carol", "dave"]
    assert sorted(o["name"] for o in logto.organizations.values()) == ["Acme", "Globex"]
    assert len([a for a in logto.applications.values() if a["name"] == "Client app"]) == 1
    assert client_app(logto)["oidcClientMetadata"]["redirectUris"] == [
        f"{CLIENT_BASE_URL}/callback"
    ]
    # store-admin lost the shopping:read grant it should not have.
    assert logto.role_permissions("store-admin") == {
        INDICATORS.store: {"store:read", "store:write"}
    }
    assert logto.org_role_permissions("member") == {}
    assert logto.resource_by_indicator(INDICATORS.store)["name"] == "Store API"
    assert logto.resource_by_indicator(INDICATORS.store)["accessTokenTtl"] == 3600
    # The expired secret is not handed out; a new one is made.
    app = client_app(logto)
    assert result.env_lines["LOGTO_APP_SECRET"] == logto.app_secrets[app["id"]][-1]["value"]
    assert len(logto.app_secrets[app["id"]]) == 2
    assert "nothing to change" not in result.err.lower()


# -- pagination ----------------------------------------------------------------------------


def test_lists_are_read_page_by_page(logto: FakeLogto, run: Any) -> None:
    """Logto pages lists (page_size at most 100, the total in Total-Number): an object on the
    third page is found, not created twice."""
    for index in range(230):
        logto.add_user(f"user{index:03}")
    logto.add_user("alice", "alice-password", "alice@example.com")
    for index in range(120):
        logto.add_role(f"role{index:03}")
    logto.add_role("shopping-reader")
    for index in range(105):
        logto.add_organization(f"Org {index:03}")
    result = run()
    assert result.status == 0, result.err
    assert len([u for u in logto.users.values() if u["username"] == "alice"]) == 1
    assert len([r for r in logto.roles.values() if r["name"] == "shopping-reader"]) == 1
    assert len([o for o in logto.organizations.values() if o["name"] == "Acme"]) == 1
    pages = [
        (c.query.get("page"), c.query.get("page_size"))
        for c in logto.calls
        if (c.method, c.path) == ("GET", "/api/users")
    ]
    assert pages == [("1", "100"), ("2", "100"), ("3", "100")]
    assert_is_the_demo_tenant(logto)


# -- failures: a clear message, no traceback, nothing half-written -------------------------


def test_wrong_credentials(logto: FakeLogto, run: Any) -> None:
    result = run(env={**ENV, "LOGTO_M2M_APP_SECRET": "not-the-secret"})
    assert result.status == 1
    assert "LOGTO_M2M_APP_ID" in result.err
    assert "LOGTO_M2M_APP_SECRET" in result.err
    assert "invalid_client" in result.err
    assert "not-the-secret" not in result.err
    assert [str(c) for c in logto.calls] == ["POST /oidc/token"]


def test_a_role_without_management_api_access_is_named(logto: FakeLogto, run: Any) -> None:
    logto.management_access = False
    result = run()
    assert result.status == 1
    assert "403" in result.err
    assert "Logto Management API access" in result.err
    assert "GET /api/resources" in result.err
    assert logto.writes() == []


def test_logto_unreachable(run: Any) -> None:
    """A real socket: nothing listens on the port."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    result = run(env={**ENV, "LOGTO_ENDPOINT": endpoint})
    assert result.status == 1
    assert f"cannot reach Logto at {endpoint}" in result.err


def test_a_role_of_another_type_is_a_conflict(logto: FakeLogto, run: Any) -> None:
    logto.add_role("store-admin", "MachineToMachine")
    result = run()
    assert result.status == 1
    assert "store-admin" in result.err
    assert "MachineToMachine" in result.err
    assert not [c for c in logto.writes() if c.body and c.body.get("name") == "store-admin"]


def test_an_application_of_another_type_is_a_conflict(logto: FakeLogto, run: Any) -> None:
    logto.add_application("Client app", "SPA", [])
    result = run()
    assert result.status == 1
    assert "Client app" in result.err
    assert "SPA" in result.err
    assert "--app-name" in result.err


def test_two_organizations_of_one_name_are_a_conflict(logto: FakeLogto, run: Any) -> None:
    logto.add_organization("Acme")
    logto.add_organization("Acme")
    result = run()
    assert result.status == 1
    assert "2 organizations named 'Acme'" in result.err


def test_logto_refusing_an_object_is_reported_with_its_reason(logto: FakeLogto, run: Any) -> None:
    """Another user already holds alice's email address: Logto answers 422."""
    logto.add_user("mallory", "x", "alice@example.com")
    result = run()
    assert result.status == 1
    assert "POST /api/users" in result.err
    assert "422" in result.err
    assert "user.email_already_in_use" in result.err
    assert "alice-password" not in result.err


def test_a_server_error_is_reported(respx_router: respx.MockRouter, run: Any) -> None:
    respx_router.route(method="GET", host="logto.test", path="/api/organization-scopes").respond(
        500, text="boom"
    )
    FakeLogto(ENDPOINT).install(respx_router)  # after: the 500 route answers first
    result = run()
    assert result.status == 1
    assert "GET /api/organization-scopes" in result.err
    assert "500" in result.err


def test_an_endpoint_that_is_not_logto(respx_router: respx.MockRouter, run: Any) -> None:
    respx_router.post(f"{ENDPOINT}/oidc/token").respond(404, text="<html>not found</html>")
    result = run()
    assert result.status == 1
    assert f"{ENDPOINT}/oidc/token" in result.err
    assert "LOGTO_ENDPOINT" in result.err


@pytest.mark.parametrize("missing", ["LOGTO_M2M_APP_ID", "LOGTO_M2M_APP_SECRET", "LOGTO_ENDPOINT"])
def test_missing_configuration_is_a_usage_error(
    respx_router: respx.MockRouter, run: Any, missing: str
) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}
    result = run(env=env)
    assert result.status == 2
    assert missing in result.err
    assert not respx_router.calls


def test_a_malformed_endpoint_is_a_usage_error(respx_router: respx.MockRouter, run: Any) -> None:
    result = run(env={**ENV, "LOGTO_ENDPOINT": "logto.test:3001"})
    assert result.status == 2
    assert "LOGTO_ENDPOINT" in result.err


# -- the explicit pwned-password flag ------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        pytest.param(["--disable-pwned-password-check"], {}, id="flag"),
        pytest.param([], {"PROVISION_DISABLE_PWNED_PASSWORD_CHECK": "true"}, id="variable"),
    ],
)
def test_the_pwned_password_check_is_turned_off_only_when_asked(
    logto: FakeLogto, run: Any, argv: list[str], env: dict[str, str]
) -> None:
    before = logto.sign_in_exp["passwordPolicy"]
    result = run(*argv, env={**ENV, **env})
    assert result.status == 0, result.err
    after = logto.sign_in_exp["passwordPolicy"]
    assert after["rejects"]["pwned"] is False
    assert {**after, "rejects": {**after["rejects"], "pwned": True}} == before
    patches = [c for c in logto.calls if (c.method, c.path) == ("PATCH", "/api/sign-in-exp")]
    assert len(patches) == 1
    # Set before the users (whose passwords it governs).
    first_user = next(i for i, c in enumerate(logto.calls) if c.path == "/api/users")
    assert logto.calls.index(patches[0]) < first_user
    run(*argv, env={**ENV, **env})
    assert len([c for c in logto.calls if (c.method, c.path) == ("PATCH", "/api/sign-in-exp")]) == 1


def test_a_bad_value_of_the_pwned_variable_is_a_usage_error(logto: FakeLogto, run: Any) -> None:
    result = run(env={**ENV, "PROVISION_DISABLE_PWNED_PASSWORD_CHECK": "maybe"})
    assert result.status == 2
    assert "PROVISION_DISABLE_PWNED_PASSWORD_CHECK" in result.err
    assert not logto.calls


# -- other indicators and URLs -------------------------------------------------------------


def test_other_api_indicators_and_client_url(logto: FakeLogto, run: Any) -> None:
    """SHOPPING_RESOURCE / STORE_RESOURCE (as compose passes them) replace the seed's
    indicators everywhere; CLIENT_APP_BASE_URL sets the redirect URIs."""
    env = {
        **ENV,
        "SHOPPING_RESOURCE": "https://shop.example/api",
        "STORE_RESOURCE": "https://store.example/api",
        "CLIENT_APP_BASE_URL": "http://localhost:8100",
    }
    result = run(env=env)
    assert result.status == 0, result.err
    assert logto.role_permissions("shopping-reader") == {
        "https://shop.example/api": {"shopping:read"}
    }
    assert logto.org_role_permissions("admin") == {
        "https://store.example/api": {"store:read", "store:write"}
    }
    assert client_app(logto)["oidcClientMetadata"]["redirectUris"] == [
        "http://localhost:8100/callback"
    ]
    assert result.env_lines["SHOPPING_RESOURCE"] == "https://shop.example/api"


# -- the compose hand-off file --------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_env_file_hands_the_credentials_over(logto: FakeLogto, run: Any, tmp_path: Path) -> None:
    path = tmp_path / "client-app.env"
    result = run("--env-file", str(path))
    assert result.status == 0, result.err
    values = read_env_file(path)
    app = client_app(logto)
    assert values["LOGTO_APP_ID"] == app["id"]
    assert values["LOGTO_APP_SECRET"] == logto.app_secrets[app["id"]][0]["value"]
    assert len(values["SESSION_SECRET"]) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The log (compose's) shows where the secrets went, not the secrets.
    assert values["LOGTO_APP_SECRET"] not in result.out + result.err
    assert values["SESSION_SECRET"] not in result.out + result.err
    assert M2M_SECRET not in path.read_text()
    # A second run keeps the session secret (changing it would sign everybody out).
    run("--env-file", str(path))
    assert read_env_file(path) == values


def test_env_file_takes_the_session_secret_given(
    logto: FakeLogto, run: Any, tmp_path: Path
) -> None:
    path = tmp_path / "client-app.env"
    secret = "s" * 40
    run("--env-file", str(path), env={**ENV, "SESSION_SECRET": secret})
    assert read_env_file(path)["SESSION_SECRET"] == secret


def test_manual_configuration_is_handed_over_without_calling_logto(
    respx_router: respx.MockRouter, run: Any, tmp_path: Path
) -> None:
    """The Console fallback: no M2M app, LOGTO_APP_ID/LOGTO_APP_SECRET from .env."""
    path = tmp_path / "client-app.env"
    env = {"LOGTO_ENDPOINT": ENDPOINT, "LOGTO_APP_ID": "app-id", "LOGTO_APP_SECRET": "app-secret"}
    result = run("--env-file", str(path), env=env)
    assert result.status == 0, result.err
    assert not respx_router.calls
    values = read_env_file(path)
    assert (values["LOGTO_APP_ID"], values["LOGTO_APP_SECRET"]) == ("app-id", "app-secret")
    assert "app-secret" not in result.out + result.err
    assert "manual" in result.err.lower()


def test_env_file_that_cannot_be_written(logto: FakeLogto, run: Any, tmp_path: Path) -> None:
    path = tmp_path / "missing-directory" / "client-app.env"
    result = run("--env-file", str(path))
    assert result.status == 1
    assert str(path) in result.err
