"""A route's access declaration and its OpenAPI contract, written once.

``@get("/orders", **protected(requires("shopping", "shopping:read")))`` passes the declaration
to the auth middleware (``opt``) and derives from the same object what the OpenAPI document says:
the Bearer security requirement with its scopes, and every error the route can answer, with
the :class:`~resource_api.http_errors.ErrorBody` schema. The document cannot drift from
what the middleware enforces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec

# Litestar's own schema plugin for msgspec Structs (not public API); extended below and
# pinned by tests/resource_api/test_openapi.py.
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.datastructures import ResponseHeader
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Components, Example, Schema, SecurityScheme
from litestar.typing import FieldDefinition
from litestar_logto import Requirement
from litestar_logto.requirements import OPT_KEY

from resource_api.http_errors import ErrorBody

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

BEARER_SCHEME: Final = "BearerAuth"

SECURITY_COMPONENTS: Final = Components(
    security_schemes={
        BEARER_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description=(
                "A Logto access token (JWT, `typ: at+jwt`) sent as `Authorization: Bearer "
                "<token>`. Each operation lists the permissions (scopes) the token must grant; "
                "its description says which audience the token must be issued for."
            ),
        )
    }
)


def protected(
    opt: dict[str, Any],
    *,
    not_found: str | None = None,
    with_body: bool = False,
    idempotent: bool = False,
) -> dict[str, Any]:
    """Route-decorator keyword arguments for a route declared with ``requires(...)`` or
    ``requires_organization(...)``: its ``opt``, ``security`` and error ``responses``.

    ``not_found`` documents a 404 with that description; ``with_body`` documents the
    request-body errors (400 ``invalid_body``, 413); ``idempotent`` the ``Idempotency-Key``
    answers (400 for a malformed key, 409, 422, and the ``Idempotent-Replayed`` header; the
    header itself is declared by the handler's ``IdempotencyKeyHeader`` parameter).
    """
    requirement = opt[OPT_KEY]
    if not isinstance(requirement, Requirement):
        msg = "protected() takes the opt of requires() or requires_organization()"
        raise TypeError(msg)
    responses = {
        400: _error(
            "The request is malformed: `invalid_request` (e.g. two Authorization headers, or "
            "a token in the URL)"
            + (
                ", or `invalid_body` for a body that is not valid JSON for this operation "
                "(the description names the field)."
                if with_body
                else "."
            )
            + (
                " A malformed `Idempotency-Key` (empty, over 255 characters, not printable "
                "ASCII, sent twice) is `invalid_idempotency_key`."
                if idempotent
                else ""
            ),
            "invalid_body" if with_body else "invalid_request",
        ),
        401: _error(
            "No bearer token (body error `unauthorized`; the `WWW-Authenticate: Bearer` "
            "challenge then carries no error code), or `invalid_token`: malformed, expired, "
            "not signed by the issuer, or issued for another audience. "
            f"{_audience_sentence(requirement)} The challenge's `resource_metadata` points to "
            "the RFC 9728 protected-resource metadata.",
            "invalid_token",
        ),
        403: _error(
            "`insufficient_scope`: the token lacks a permission this operation needs"
            f"{_organization_clause(requirement)}; the challenge's `scope` lists what is "
            "missing.",
            "insufficient_scope",
        ),
        503: _error(
            "`temporarily_unavailable`: the issuer's signing keys cannot be obtained, or the "
            "token names a key the API cannot look up yet (the token may be valid); retry "
            "after `Retry-After` seconds.",
            "temporarily_unavailable",
        ),
    }
    if not_found is not None:
        responses[404] = _error(f"`not_found`: {not_found}", "not_found")
    if with_body:
        responses[413] = _error(
            "`request_too_large`: the request body exceeds 64 KiB.", "request_too_large"
        )
    extra: dict[str, Any] = {}
    if idempotent:
        responses[409] = _error(
            "`idempotency_key_in_use`: a request with this `Idempotency-Key` is still being "
            "processed; retry after `Retry-After` seconds to get its answer.",
            "idempotency_key_in_use",
        )
        responses[422] = _error(
            "`idempotency_key_reused`: this `Idempotency-Key` was already used (by this "
            "subject, on this operation) with a different request body.",
            "idempotency_key_reused",
        )
        extra["response_headers"] = [
            ResponseHeader(
                name="Idempotent-Replayed",
                documentation_only=True,
                description=(
                    "`true` when this is the stored answer to an earlier request with the same "
                    "`Idempotency-Key` and body (nothing was created this time)."
                ),
            )
        ]
    return {
        "opt": opt,
        "security": [{BEARER_SCHEME: list(requirement.scopes)}],
        "responses": responses,
        "description": _operation_description(requirement),
        **extra,
    }


def _operation_description(requirement: Requirement) -> str:
    scopes = ", ".join(f"`{scope}`" for scope in requirement.scopes)
    return f"{_audience_sentence(requirement)} Required permissions: {scopes}."


def _audience_sentence(requirement: Requirement) -> str:
    if requirement.organization_token:
        return (
            "The token must be an organization token for this organization "
            f"(`aud` = `urn:logto:organization:{{{requirement.organization_param}}}`)."
        )
    if requirement.organization_param is not None:
        return (
            f"The token must be an organization-level token of the `{requirement.resource}` "
            "API resource (`aud` = its resource indicator) whose `organization_id` claim is "
            f"`{{{requirement.organization_param}}}`."
        )
    if requirement.organization_tokens:
        return (
            f"The token must be issued for the `{requirement.resource}` API resource "
            "(`aud` = its resource indicator), globally or for any organization."
        )
    return (
        f"The token must be a global token of the `{requirement.resource}` API resource "
        "(`aud` = its resource indicator, no `organization_id` claim)."
    )


def _organization_clause(requirement: Requirement) -> str:
    if requirement.organization_token or requirement.organization_tokens:
        return ""
    if requirement.organization_param is None:
        return ", or it is an organization-level token (it carries `organization_id`)"
    return ", or it is not an organization-level token for this organization"


def _error(description: str, example_code: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=ErrorBody,
        description=description,
        generate_examples=False,
        examples=[
            Example(
                summary=example_code,
                value={"error": example_code, "error_description": "A short explanation."},
            )
        ],
    )


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    """Document a ``forbid_unknown_fields`` Struct as ``additionalProperties: false``, which is
    what the API enforces on request bodies (Litestar's own plugin omits it)."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        """Structs that refuse unknown fields."""
        return super().is_plugin_supported_field(field_definition) and bool(
            _struct_config(field_definition.type_).forbid_unknown_fields
        )

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        """Litestar's Struct schema, closed to unknown properties."""
        schema = super().to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema


def _struct_config(struct_type: type[msgspec.Struct]) -> msgspec.structs.StructConfig:
    return struct_type.__struct_config__
