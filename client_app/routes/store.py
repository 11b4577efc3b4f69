"""The store API page: the global catalog, the token used, and a form to add a product."""

from __future__ import annotations

import re
from decimal import Decimal

import msgspec
from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, URLEncodedBody
from litestar.response import Redirect, Template

from client_app.api_client import ApiError, ApiFormReused, Product, call_with_token
from client_app.context import AnyRequest, SignedInUser, app_context, authenticated, page
from client_app.display import TokenSummary
from client_app.errors import BadForm
from client_app.form_keys import new_form_key, submitted_key
from client_app.gateway import TokenTarget
from client_app.routes.permissions import offer_for
from client_app.step_up import RecheckOffer, permission_notice

MAX_NAME = 100
MAX_PRICE_CENTS = 1_000_000_000
_PRICE = re.compile(r"[0-9]{1,8}(?:\.[0-9]{1,2})?")


class ProductForm(msgspec.Struct, frozen=True):
    """The product form as submitted (validated by :func:`parse_product`)."""

    name: str = ""
    price: str = ""
    csrf_token: str = ""
    idempotency_key: str = ""
    """One per rendered form (:mod:`client_app.form_keys`)."""


def parse_product(form: ProductForm) -> tuple[str, int]:
    """Name and price in cents of a valid form; :class:`BadForm` names the field at fault."""
    name = form.name.strip()
    if not 0 < len(name) <= MAX_NAME:
        raise BadForm(f"Enter a product name of 1 to {MAX_NAME} characters.")
    price = form.price.strip()
    cents = int(Decimal(price) * 100) if _PRICE.fullmatch(price) else -1
    if not 0 <= cents <= MAX_PRICE_CENTS:
        raise BadForm("Enter a price such as 12.50 (at most two decimals, up to 10,000,000).")
    return name, cents


async def store_page(
    request: AnyRequest,
    user: SignedInUser,
    *,
    notice: str | None = None,
    problem: str | None = None,
    form: ProductForm | None = None,
    status_code: int = 200,
    offer: RecheckOffer | None = None,
    checked: str | None = None,
    checked_target: str | None = None,
) -> Template:
    """Render the page: token claims, products (or why the API refused), the form."""
    context = app_context(request)
    target = TokenTarget(context.settings.store_resource)
    access_token = await context.gateway.token(user.session_id, target)
    token = TokenSummary.of(access_token)
    products: list[Product] = []
    load_problem = None
    load_offer = None
    try:
        products = await call_with_token(
            context.gateway,
            user.session_id,
            target,
            context.api.list_products,
            token=access_token,
        )
    except ApiError as exc:
        load_problem = exc.message
        load_offer = offer_for(exc, target, "/store")
    permission = permission_notice(
        checked,
        checked_target,
        cache_key=target.cache_key,
        token_scopes=token.scopes if token else (),
    )
    return page(
        request,
        "store.html",
        user=user,
        title="Store",
        status_code=status_code,
        token=token,
        token_rows=token.rows(context.clock()) if token else [],
        can_write=token is not None and "store:write" in token.scopes,
        products=products,
        load_problem=load_problem,
        load_offer=load_offer,
        notice=notice,
        problem=problem,
        offer=offer,
        permission=permission,
        form=_with_key(form or ProductForm()),
    )


@get("/store", name="store", dependencies={"user": authenticated()})
async def store(
    request: AnyRequest,
    user: NamedDependency[SignedInUser],
    created: FromQuery[int | None] = None,
    checked: FromQuery[str | None] = None,
    target: FromQuery[str | None] = None,
) -> Template:
    """``GET /store/products`` with the store token; after "Check my permissions again"
    (``?checked=…&target=…``), whether the token now grants them."""
    notice = f"Product #{created} was added." if created is not None else None
    return await store_page(request, user, notice=notice, checked=checked, checked_target=target)


@post("/store/products", name="add_product", dependencies={"user": authenticated()})
async def add_product(
    request: AnyRequest, user: NamedDependency[SignedInUser], data: URLEncodedBody[ProductForm]
) -> Template | Redirect:
    """``POST /store/products``; a refusal is shown on the page with the form kept."""
    context = app_context(request)
    try:
        name, price_cents = parse_product(data)
        product = await call_with_token(
            context.gateway,
            user.session_id,
            TokenTarget(context.settings.store_resource),
            lambda token: context.api.create_product(
                token, name, price_cents, idempotency_key=submitted_key(data.idempotency_key)
            ),
        )
    except (BadForm, ApiError) as exc:
        if isinstance(exc, ApiFormReused):  # these values are a new request: a new key
            data = msgspec.structs.replace(data, idempotency_key=new_form_key())
        return await store_page(
            request,
            user,
            problem=exc.message,
            form=data,
            status_code=exc.status_code,
            offer=offer_for(exc, TokenTarget(context.settings.store_resource), "/store"),
        )
    return Redirect(f"/store?created={product.id}", status_code=303)


def _with_key(form: ProductForm) -> ProductForm:
    """The form to render, with a key: its own if it has one, else a fresh one."""
    if submitted_key(form.idempotency_key) is not None:
        return form
    return msgspec.structs.replace(form, idempotency_key=new_form_key())
