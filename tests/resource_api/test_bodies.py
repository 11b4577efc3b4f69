"""Request bodies: strict JSON of the declared shape or 400 invalid_body naming the field,
413 beyond 64 KiB, and authentication always decided before the body is looked at."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from resource_api.app import MAX_BODY_BYTES
from tests.resource_api.conftest import Client
from tests.resource_api.helpers import STORE_WRITE

Auth = Callable[..., dict[str, str]]
JSON = "application/json"
ITEM = b'{"sku":"tea","quantity":1}'


def _order(*, items: bytes = ITEM, extra: bytes = b"") -> bytes:
    return b'{"items":[' + items + b"]" + extra + b"}"


def _invalid(description: str) -> dict[str, str]:
    return {"error": "invalid_body", "error_description": description}


@pytest.mark.parametrize(
    ("content", "content_type", "description"),
    [
        pytest.param(
            b"{}", JSON, "The request body is invalid: Object missing required field `items`.",
            id="missing-field",
        ),
        pytest.param(
            _order(items=b'{"sku":"tea","quantity":"2"}'), JSON,
            "The request body is invalid: Expected `int`, got `str` at `$.items[0].quantity`.",
            id="quantity-as-string",
        ),
        pytest.param(
            _order(items=b'{"sku":"tea","quantity":2.0}'), JSON,
            "The request body is invalid: Expected `int`, got `float` at `$.items[0].quantity`.",
            id="quantity-as-float",
        ),
        pytest.param(
            _order(items=b'{"sku":"tea","quantity":true}'), JSON,
            "The request body is invalid: Expected `int`, got `bool` at `$.items[0].quantity`.",
            id="quantity-as-bool",
        ),
        pytest.param(
            _order(items=b'{"sku":"tea","quantity":0}'), JSON,
            "The request body is invalid: Expected `int` >= 1 at `$.items[0].quantity`.",
            id="quantity-zero",
        ),
        pytest.param(
            _order(items=b'{"sku":"tea","quantity":1001}'), JSON,
            "The request body is invalid: Expected `int` <= 1000 at `$.items[0].quantity`.",
            id="quantity-too-large",
        ),
        pytest.param(
            _order(items=b'{"sku":"","quantity":1}'), JSON,
            "The request body is invalid: Expected `str` of length >= 1 at `$.items[0].sku`.",
            id="sku-empty",
        ),
        pytest.param(
            _order(items=b'{"sku":"' + b"s" * 65 + b'","quantity":1}'), JSON,
            "The request body is invalid: Expected `str` of length <= 64 at `$.items[0].sku`.",
            id="sku-too-long",
        ),
        pytest.param(
            _order(items=b""), JSON,
            "The request body is invalid: Expected `array` of length >= 1 at `$.items`.",
            id="no-items",
        ),
        pytest.param(
            _order(items=b",".join([ITEM] * 51)), JSON,
            "The request body is invalid: Expected `array` of length <= 50 at `$.items`.",
            id="too-many-items",
        ),
        pytest.param(
            _order(extra=b',"note":"' + b"n" * 501 + b'"'), JSON,
            "The request body is invalid: Expected `str` of length <= 500 at `$.note`.",
            id="note-too-long",
        ),
        pytest.param(
            _order(extra=b',"coupon":"FREE"'), JSON,
            "The request body is invalid: Object contains unknown field `coupon`.",
            id="unknown-field",
        ),
        pytest.param(
            _order(items=b'{"sku":"tea","quantity":1,"price":0}'), JSON,
            "The request body is invalid: Object contains unknown field `price` at `$.items[0]`.",
            id="unknown-item-field",
        ),
        pytest.param(
            b"[]", JSON, "The request body is invalid: Expected `object`, got `array`.",
            id="array-instead-of-object",
        ),
        pytest.param(
            b'{"items": [', JSON, "The request body is not valid JSON.", id="malformed-json",
        ),
        pytest.param(
            b"\xff\xfe{}", JSON, "The request body is not valid JSON.", id="not-utf-8",
        ),
        pytest.param(
            b"", JSON, "The request body is empty; send a JSON object.", id="empty-body",
        ),
        pytest.param(
            _order(), "text/plain",
            "The request body must be JSON (Content-Type: application/json).",
            id="text-plain",
        ),
        pytest.param(
            b"items=tea", "application/x-www-form-urlencoded",
            "The request body must be JSON (Content-Type: application/json).",
            id="form-encoded",
        ),
        pytest.param(
            _order(), None, "The request body must be JSON (Content-Type: application/json).",
            id="no-content-type",
        ),
    ],
)  # fmt: skip
async def test_an_invalid_order_body_is_refused(
    client: Client, auth: Auth, content: bytes, content_type: str | None, description: str
) -> None:
    """A body that is not a valid order is 400 invalid_body with the offending field named."""
    headers = auth(scope="shopping:write")
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await client.post("/shopping/orders", content=content, headers=headers)
    assert (response.status_code, response.json()) == (400, _invalid(description))


@pytest.mark.parametrize(
    ("content", "description"),
    [
        pytest.param(
            b'{"price_cents":1}',
            "The request body is invalid: Object missing required field `name`.",
            id="missing-name",
        ),
        pytest.param(
            b'{"name":"","price_cents":1}',
            "The request body is invalid: Expected `str` of length >= 1 at `$.name`.",
            id="empty-name",
        ),
        pytest.param(
            b'{"name":"' + b"n" * 101 + b'","price_cents":1}',
            "The request body is invalid: Expected `str` of length <= 100 at `$.name`.",
            id="name-too-long",
        ),
        pytest.param(
            b'{"name":"Tea","price_cents":-1}',
            "The request body is invalid: Expected `int` >= 0 at `$.price_cents`.",
            id="negative-price",
        ),
        pytest.param(
            b'{"name":"Tea","price_cents":1000000001}',
            "The request body is invalid: Expected `int` <= 1000000000 at `$.price_cents`.",
            id="price-too-large",
        ),
        pytest.param(
            b'{"name":"Tea","price_cents":4.5}',
            "The request body is invalid: Expected `int`, got `float` at `$.price_cents`.",
            id="fractional-price",
        ),
        pytest.param(
            b'{"name":"Tea","price_cents":"450"}',
            "The request body is invalid: Expected `int`, got `str` at `$.price_cents`.",
            id="price-as-string",
        ),
        pytest.param(
            b'{"name":"Tea","price_cents":1,"organization_id":"acme"}',
            "The request body is invalid: Object contains unknown field `organization_id`.",
            id="unknown-field",
        ),
    ],
)
async def test_an_invalid_product_body_is_refused(
    client: Client, auth: Auth, content: bytes, description: str
) -> None:
    """A body that is not a valid product is 400 invalid_body with the offending field named."""
    headers = {**auth(**STORE_WRITE), "Content-Type": JSON}
    response = await client.post("/store/products", content=content, headers=headers)
    assert (response.status_code, response.json()) == (400, _invalid(description))


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("application/json; charset=utf-8", id="with-charset"),
        pytest.param("Application/JSON", id="any-case"),
        pytest.param("application/vnd.order+json", id="structured-syntax-suffix"),
    ],
)
async def test_json_media_type_variants_are_accepted(
    client: Client, auth: Auth, content_type: str
) -> None:
    """Any JSON media type (parameters, case, +json suffix) is accepted."""
    headers = {**auth(scope="shopping:write"), "Content-Type": content_type}
    response = await client.post("/shopping/orders", content=_order(), headers=headers)
    assert response.status_code == 201


async def test_a_huge_unknown_field_name_is_not_echoed(client: Client, auth: Auth) -> None:
    """The description stays short and printable even when the input is neither."""
    name = "\u202e" + "k" * 10_000
    content = _order(extra=f',"{name}":1'.encode())
    headers = {**auth(scope="shopping:write"), "Content-Type": JSON}
    response = await client.post("/shopping/orders", content=content, headers=headers)
    description = response.json()["error_description"]
    assert response.status_code == 400
    assert len(description) == 200
    assert description.startswith("The request body is invalid: Object contains unknown field `?k")
    assert description.isascii()
    assert description.endswith("...")


@pytest.mark.parametrize(
    ("size", "status", "error"),
    [
        pytest.param(MAX_BODY_BYTES, 400, "invalid_body", id="exactly-64-KiB-is-read"),
        pytest.param(MAX_BODY_BYTES + 1, 413, "request_too_large", id="one-byte-over"),
        pytest.param(10 * MAX_BODY_BYTES, 413, "request_too_large", id="far-over"),
    ],
)
async def test_the_body_size_limit_is_64_kib(
    client: Client, auth: Auth, size: int, status: int, error: str
) -> None:
    """Up to 64 KiB a body is parsed (here: a note far too long); one byte more is 413."""
    prefix, suffix = b'{"items":[' + ITEM + b'],"note":"', b'"}'
    content = prefix + b"n" * (size - len(prefix) - len(suffix)) + suffix
    headers = {**auth(scope="shopping:write"), "Content-Type": JSON}
    response = await client.post("/shopping/orders", content=content, headers=headers)
    assert len(content) == size
    assert (response.status_code, response.json()["error"]) == (status, error)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        pytest.param(b'{"items": [', JSON, id="malformed-json"),
        pytest.param(_order(extra=b',"coupon":1'), JSON, id="unknown-field"),
        pytest.param(_order(), "text/plain", id="wrong-content-type"),
        pytest.param(b"x" * (MAX_BODY_BYTES + 1), JSON, id="oversized"),
    ],
)
async def test_authentication_is_decided_before_the_body(
    client: Client, content: bytes, content_type: str
) -> None:
    """Without a token a bad body is still 401: the body is not read for strangers."""
    response = await client.post(
        "/shopping/orders", content=content, headers={"Content-Type": content_type}
    )
    assert (response.status_code, response.json()["error"]) == (401, "unauthorized")


async def test_a_token_without_write_scope_is_refused_before_the_body(
    client: Client, auth: Auth
) -> None:
    """A read-only token posting a malformed body gets 403, not 400: scope comes first."""
    headers = {**auth(scope="shopping:read"), "Content-Type": JSON}
    response = await client.post("/shopping/orders", content=b"{", headers=headers)
    assert (response.status_code, response.json()["error"]) == (403, "insufficient_scope")
