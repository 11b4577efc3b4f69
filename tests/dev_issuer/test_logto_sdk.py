"""The real logto SDK 0.2.1 against the dev issuer, over loopback (aiohttp and urllib inside)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pydantic
import pytest
from logto import LogtoClient, LogtoException

from demo.launcher import ROTATE_KEYS_HEADERS
from tests.dev_issuer.conftest import SignedIn, sdk_config, sign_in
from tests.dev_issuer.support import (
    CLIENT_ID,
    SHOPPING,
    STORE,
    DevIssuer,
    DictStorage,
    parse_form,
    start_dev_issuer,
    submit_sign_in,
)

MakeClient = Callable[..., LogtoClient]


async def verified_claims(
    issuer: DevIssuer, token: str, *, audience: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of an access token, its signature checked against the issuer's JWKS."""
    async with httpx.AsyncClient() as http:
        jwks = (await http.get(f"{issuer.issuer}/jwks")).json()
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["ES384", "RS256"], audience=audience, issuer=issuer.issuer
    )
    return header, claims


def unverified(token: str) -> dict[str, Any]:
    """Claims of a token whose signature another test already checks."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_sign_in_and_get_an_api_token(dev_issuer: DevIssuer, signed_in: SignedIn) -> None:
    """The SDK signs bob in through the HTML form and gets a verifiable ES384 at+jwt token."""
    client = await signed_in("bob")

    assert client.isAuthenticated()
    id_claims = client.getIdTokenClaims()
    assert id_claims.sub == dev_issuer.user_id("bob")
    assert id_claims.aud == CLIENT_ID
    assert id_claims.organizations == ["acme", "globex"]
    assert id_claims.organization_roles == ["acme:admin", "globex:member"]
    assert client.getRefreshToken() is not None

    token = await client.getAccessToken(SHOPPING)
    header, claims = await verified_claims(dev_issuer, token, audience=SHOPPING)
    assert header["alg"] == "ES384"
    assert header["typ"] == "at+jwt"
    assert claims["sub"] == dev_issuer.user_id("bob")
    assert claims["client_id"] == CLIENT_ID
    assert claims["scope"] == "shopping:read shopping:write"
    assert "nbf" not in claims
    assert (await client.getAccessTokenClaims(SHOPPING)).scope == "shopping:read shopping:write"


@pytest.mark.parametrize(
    ("username", "resource", "scope"),
    [
        pytest.param("alice", SHOPPING, "shopping:read", id="alice-shopping-read-only"),
        pytest.param("alice", STORE, None, id="alice-no-store"),
        pytest.param("bob", STORE, "store:read store:write", id="bob-store-everything"),
        pytest.param("carol", SHOPPING, None, id="carol-nothing"),
        pytest.param("dave", STORE, "store:read store:write", id="dave-global-token-trap"),
    ],
)
async def test_api_scopes_per_user(
    signed_in: SignedIn, username: str, resource: str, scope: str | None
) -> None:
    """Each user's API token carries exactly the permissions of their roles."""
    client = await signed_in(username)
    claims = unverified(await client.getAccessToken(resource))
    assert claims["aud"] == resource
    assert claims.get("scope") == scope
    assert "organization_id" not in claims


@pytest.mark.parametrize(
    ("username", "organization_id", "scope"),
    [
        pytest.param("alice", "acme", "read:members", id="alice-member-of-acme"),
        pytest.param("bob", "acme", "read:members invite:member remove:member", id="bob-admin"),
        pytest.param("bob", "globex", "read:members", id="bob-member-of-globex"),
    ],
)
async def test_organization_token(
    dev_issuer: DevIssuer, signed_in: SignedIn, username: str, organization_id: str, scope: str
) -> None:
    """getOrganizationToken returns a token for urn:logto:organization:<id>."""
    client = await signed_in(username)
    token = await client.getOrganizationToken(organization_id)
    _, claims = await verified_claims(
        dev_issuer, token, audience=f"urn:logto:organization:{organization_id}"
    )
    assert claims["scope"] == scope
    assert claims["sub"] == dev_issuer.user_id(username)


async def test_organization_token_refused_to_a_non_member(
    dev_issuer: DevIssuer, signed_in: SignedIn
) -> None:
    """A non-member gets the token endpoint's 403 access_denied as a LogtoException."""
    client = await signed_in("alice")
    with pytest.raises(LogtoException, match="access_denied"):
        await client.getOrganizationToken("globex")


async def test_fetch_user_info(dev_issuer: DevIssuer, signed_in: SignedIn) -> None:
    """fetchUserInfo uses the opaque default token and gets the userinfo-only claims too."""
    client = await signed_in("alice")
    info = await client.fetchUserInfo()
    assert info.sub == dev_issuer.user_id("alice")
    assert info.username == "alice"
    assert info.email == "alice@example.com"
    assert info.email_verified is True
    assert info.custom_data == {"plan": "free"}
    assert info.organizations == ["acme"]
    assert info.organization_roles == ["acme:member"]


async def test_sign_out(
    dev_issuer: DevIssuer, signed_in: SignedIn, browser: httpx.AsyncClient
) -> None:
    """signOut builds the end-session URL; the issuer's form then returns to the app."""
    client = await signed_in("alice")
    url = httpx.URL(await client.signOut(dev_issuer.post_logout_redirect_uri))
    assert str(url.copy_with(query=None)) == f"{dev_issuer.issuer}/session/end"
    assert url.params["client_id"] == CLIENT_ID
    assert url.params["post_logout_redirect_uri"] == dev_issuer.post_logout_redirect_uri
    assert not client.isAuthenticated()

    page = await browser.get(url)
    form = parse_form(page.text, str(page.url))
    done = await browser.post(form.action, data=form.fields)
    assert done.headers["location"] == dev_issuer.post_logout_redirect_uri


async def test_register_through_interaction_mode_sign_up(
    dev_issuer: DevIssuer, make_client: MakeClient, browser: httpx.AsyncClient
) -> None:
    """signIn(interactionMode='signUp') opens the registration form; the new user signs in."""
    client = make_client()
    url = await client.signIn(dev_issuer.redirect_uri, "signUp")
    callback = await submit_sign_in(
        browser,
        url,
        stop_at=dev_issuer.redirect_uri,
        form_values={"username": "sdk_user", "password": "sdk-user-password"},
    )
    await client.handleSignInCallback(callback)
    claims = client.getIdTokenClaims()
    assert claims.username == "sdk_user"
    assert claims.sub not in {dev_issuer.user_id(name) for name in ("alice", "bob", "carol")}


async def test_sdk_rejects_an_access_token_without_scope(signed_in: SignedIn) -> None:
    """SDK incompatibility (logto-tokens.md §6.9): no scope claim fails its pydantic model."""
    client = await signed_in("carol")
    with pytest.raises(pydantic.ValidationError):
        await client.getAccessTokenClaims(STORE)


async def test_sdk_cannot_decode_the_opaque_default_token(signed_in: SignedIn) -> None:
    """SDK incompatibility (§6.9): getAccessTokenClaims() with no resource hits an opaque token."""
    client = await signed_in("alice")
    with pytest.raises(jwt.DecodeError):
        await client.getAccessTokenClaims()


async def test_plain_string_organizations_scope_disables_organization_tokens(
    signed_in: SignedIn,
) -> None:
    """SDK incompatibility (§6.8): the scope as a string is refused by the SDK itself."""
    client = await signed_in("alice", scopes=["urn:logto:scope:organizations", "read:members"])
    with pytest.raises(LogtoException, match=r"UserInfoScope\.organizations"):
        await client.getOrganizationToken("acme")


@pytest.fixture
def rotating_issuer() -> Iterator[DevIssuer]:
    """A dev issuer of the test's own, whose keys the test may rotate."""
    issuer = start_dev_issuer("--development")
    try:
        yield issuer
    finally:
        issuer.stop()


async def rotate_keys(browser: httpx.AsyncClient, issuer: DevIssuer) -> str:
    """POST /dev/rotate-keys and return the new signing key's kid."""
    rotated = await browser.post(f"{issuer.endpoint}/dev/rotate-keys", headers=ROTATE_KEYS_HEADERS)
    assert rotated.status_code == 200
    return str(rotated.json()["current"]["kid"])


async def test_tokens_of_a_rotated_key_verify_with_a_fresh_sdk_client(
    rotating_issuer: DevIssuer, browser: httpx.AsyncClient
) -> None:
    """After a rotation old tokens still verify and a new SDK client (new OidcCore) goes on."""
    storage = DictStorage()
    client = LogtoClient(sdk_config(rotating_issuer), storage=storage)
    await sign_in(client, browser, rotating_issuer, "bob")
    old_token = await client.getAccessToken(SHOPPING)
    new_kid = await rotate_keys(browser, rotating_issuer)
    assert jwt.get_unverified_header(old_token)["kid"] != new_kid

    await verified_claims(rotating_issuer, old_token, audience=SHOPPING)
    fresh = LogtoClient(sdk_config(rotating_issuer), storage=storage)
    header, _ = await verified_claims(
        rotating_issuer, await fresh.getAccessToken(STORE), audience=STORE
    )
    assert header["kid"] == new_kid
    assert jwt.get_unverified_header(fresh.getIdToken())["kid"] == new_kid


@pytest.mark.skipif(
    "cooldown_duration" not in inspect.signature(jwt.PyJWKClient).parameters,
    reason="this PyJWT refetches a JWKS on an unknown kid at once",
)
async def test_sdk_rejects_id_tokens_of_a_key_rotated_moments_ago(
    rotating_issuer: DevIssuer, browser: httpx.AsyncClient
) -> None:
    """SDK incompatibility: its cached PyJWKClient refetches an unknown kid only after 30 s.

    PyJWT's PyJWKClient starts a refetch cooldown (30 s by default) at every fetch, so an ID token
    signed by a key rotated within that window fails the SDK's verification with PyJWKClientError.
    """
    client = LogtoClient(sdk_config(rotating_issuer), storage=DictStorage())
    await sign_in(client, browser, rotating_issuer, "bob")
    await rotate_keys(browser, rotating_issuer)
    with pytest.raises(jwt.PyJWKClientError, match="Unable to find a signing key"):
        await client.getAccessToken(STORE)


async def test_sdk_works_with_an_rs256_issuer(browser: httpx.AsyncClient) -> None:
    """With --alg RS256 the SDK verifies RS256 ID tokens and gets RS256 access tokens."""
    issuer = start_dev_issuer("--alg", "RS256")
    try:
        client = LogtoClient(sdk_config(issuer), storage=DictStorage())
        await sign_in(client, browser, issuer, "alice")
        assert jwt.get_unverified_header(client.getIdToken())["alg"] == "RS256"
        header, claims = await verified_claims(
            issuer, await client.getAccessToken(SHOPPING), audience=SHOPPING
        )
        assert header["alg"] == "RS256"
        assert claims["scope"] == "shopping:read"
    finally:
        issuer.stop()
