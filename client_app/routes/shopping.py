"""The shopping API page: the user's orders, the token used, and a form to place an order."""

from __future__ import annotations

import re

import msgspec
from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, URLEncodedBody
from litestar.response import Redirect, Template

from client_app.api_client import ApiError, ApiFormReused, Order, OrderItem, call_with_token
from client_app.context import AnyRequest, SignedInUser, app_context, authenticated, page
from client_app.display import TokenSummary
from client_app.errors import BadForm
from client_app.form_keys import new_form_key, submitted_key
from client_app.gateway import TokenTarget
from client_app.routes.permissions import offer_for
from client_app.step_up import RecheckOffer, permission_notice

MAX_SKU = 64
MAX_QUANTITY = 1000
MAX_NOTE = 500
_QUANTITY = re.compile(r"[0-9]{1,4}")


class OrderForm(msgspec.Struct, frozen=True):
    """The order form as submitted (validated by :func:`parse_order`)."""

    sku: str = ""
    quantity: str = ""
    note: str = ""
    csrf_token: str = ""
    idempotency_key: str = ""
    """One per rendered form (:mod:`client_app.form_keys`)."""


def parse_order(form: OrderForm) -> tuple[OrderItem, str | None]:
    """The item and note of a valid form; :class:`BadForm` names the field at fault."""
    sku = form.sku.strip()
    if not 0 < len(sku) <= MAX_SKU:
        raise BadForm(f"Enter a product code (SKU) of 1 to {MAX_SKU} characters.")
    raw_quantity = form.quantity.strip()
    quantity = int(raw_quantity) if _QUANTITY.fullmatch(raw_quantity) else 0
    if not 0 < quantity <= MAX_QUANTITY:
        raise BadForm(f"Enter a quantity between 1 and {MAX_QUANTITY}.")
    note = form.note.strip()
    if len(note) > MAX_NOTE:
        raise BadForm(f"Keep the note under {MAX_NOTE} characters.")
    return OrderItem(sku=sku, quantity=quantity), note or None


async def shopping_page(
    request: AnyRequest,
    user: SignedInUser,
    *,
    notice: str | None = None,
    problem: str | None = None,
    form: OrderForm | None = None,
    status_code: int = 200,
    offer: RecheckOffer | None = None,
    checked: str | None = None,
    checked_target: str | None = None,
) -> Template:
    """Render the page: token claims, orders (or why the API refused), the form."""
    context = app_context(request)
    target = TokenTarget(context.settings.shopping_resource)
    access_token = await context.gateway.token(user.session_id, target)
    token = TokenSummary.of(access_token)
    orders: list[Order] = []
    load_problem = None
    load_offer = None
    try:
        orders = await call_with_token(
            context.gateway, user.session_id, target, context.api.list_orders, token=access_token
        )
    except ApiError as exc:
        load_problem = exc.message
        load_offer = offer_for(exc, target, "/shopping")
    permission = permission_notice(
        checked,
        checked_target,
        cache_key=target.cache_key,
        token_scopes=token.scopes if token else (),
    )
    return page(
        request,
        "shopping.html",
        user=user,
        title="Shopping",
        status_code=status_code,
        token=token,
        token_rows=token.rows(context.clock()) if token else [],
        can_write=token is not None and "shopping:write" in token.scopes,
        orders=orders,
        load_problem=load_problem,
        load_offer=load_offer,
        notice=notice,
        problem=problem,
        offer=offer,
        permission=permission,
        form=_with_key(form or OrderForm(quantity="1")),
    )


@get("/shopping", name="shopping", dependencies={"user": authenticated()})
async def shopping(
    request: AnyRequest,
    user: NamedDependency[SignedInUser],
    created: FromQuery[int | None] = None,
    checked: FromQuery[str | None] = None,
    target: FromQuery[str | None] = None,
) -> Template:
    """``GET /shopping/orders`` with the shopping token; after "Check my permissions again"
    (``?checked=…&target=…``), whether the token now grants them."""
    notice = f"Order #{created} was placed." if created is not None else None
    return await shopping_page(request, user, notice=notice, checked=checked, checked_target=target)


@post("/shopping/orders", name="place_order", dependencies={"user": authenticated()})
async def place_order(
    request: AnyRequest, user: NamedDependency[SignedInUser], data: URLEncodedBody[OrderForm]
) -> Template | Redirect:
    """``POST /shopping/orders``; a refusal (the 403 names the missing permission) is shown
    on the page with the form kept."""
    context = app_context(request)
    try:
        item, note = parse_order(data)
        order = await call_with_token(
            context.gateway,
            user.session_id,
            TokenTarget(context.settings.shopping_resource),
            lambda token: context.api.create_order(
                token, [item], note, idempotency_key=submitted_key(data.idempotency_key)
            ),
        )
    except (BadForm, ApiError) as exc:
        if isinstance(exc, ApiFormReused):  # these values are a new request: a new key
            data = msgspec.structs.replace(data, idempotency_key=new_form_key())
        return await shopping_page(
            request,
            user,
            problem=exc.message,
            form=data,
            status_code=exc.status_code,
            offer=offer_for(exc, TokenTarget(context.settings.shopping_resource), "/shopping"),
        )
    return Redirect(f"/shopping?created={order.id}", status_code=303)


def _with_key(form: OrderForm) -> OrderForm:
    """The form to render, with a key: its own if it has one, else a fresh one."""
    if submitted_key(form.idempotency_key) is not None:
        return form
    return msgspec.structs.replace(form, idempotency_key=new_form_key())
