"""GraphQL over HTTP at /graphql: POST application/json (queries and mutations) or GET ?query= (queries only).

A malformed or over-limit request is refused with 400 and a message before anything runs; a mutation without the
token gets 401. Parsing and validation are cached per query text (clients send the same few queries); execution
runs in a worker thread against one catalog snapshot."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import anyio
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute,
    parse,
    validate,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from soniquebay_assets.api import errors, limits
from soniquebay_assets.api.context import RequestContext
from soniquebay_assets.api.execution import PlainFieldsExecution, never_awaitable
from soniquebay_assets.api.schema import schema

MAX_BODY_BYTES = 64 * 1024
MAX_QUERY_CHARS = 20_000
MAX_TOKENS = 4_000
GRAPHQL_SCHEMA = schema.graphql_schema
# Root fields that may take seconds (the text model's first load, a playlist made on a large library): they run
# in the slow lane.
SLOW_FIELDS = frozenset({"similarToText", "generatePlaylist", "playlists", "playlist"})


@lru_cache(maxsize=512)
def prepared(query: str) -> tuple[DocumentNode | None, tuple[str, ...]]:
    """(document, error messages) of a query text: parsed once, validated against the schema once."""
    try:
        document = parse(query, max_tokens=MAX_TOKENS)
    except GraphQLError as exc:
        return None, (exc.message,)
    problems = validate(GRAPHQL_SCHEMA, document)
    return (None, tuple(p.message for p in problems)) if problems else (document, ())


def _refuse(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status, headers=headers)


async def _read_request(request: Request) -> dict[str, Any] | JSONResponse:
    if request.method == "GET":
        params = request.query_params
        payload: dict[str, Any] = {"query": params.get("query"), "operationName": params.get("operationName")}
        if params.get("variables"):
            try:
                payload["variables"] = json.loads(params["variables"])
            except ValueError:
                return _refuse(400, "variables is not JSON")
        return payload
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/json", "application/graphql+json"):
        return _refuse(415, "send the request as application/json: {\"query\": \"...\", \"variables\": {...}}")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _refuse(413, f"request body over {MAX_BODY_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return _refuse(413, f"request body over {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        return _refuse(400, "the request body is not JSON")
    if not isinstance(payload, dict):
        return _refuse(400, "the request body must be a JSON object with a `query`")
    return payload


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | str:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name:
        found = [o for o in operations if o.name and o.name.value == name]
        return found[0] if found else f"no operation named {name!r} in the query"
    if len(operations) != 1:
        return "the query holds several operations: say which one with operationName"
    return operations[0]


async def graphql_endpoint(request: Request) -> Response:
    payload = await _read_request(request)
    if isinstance(payload, Response):
        return payload
    query, variables, operation_name = payload.get("query"), payload.get("variables"), payload.get("operationName")
    if not isinstance(query, str) or not query.strip():
        return _refuse(400, "no query: send {\"query\": \"{ library { tracks } }\"}")
    if len(query) > MAX_QUERY_CHARS:
        return _refuse(400, f"query over {MAX_QUERY_CHARS} characters")
    if variables is not None and not isinstance(variables, dict):
        return _refuse(400, "variables must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        return _refuse(400, "operationName must be a string")
    document, problems = prepared(query)
    if document is None:
        return JSONResponse({"errors": [{"message": m} for m in problems]}, status_code=400)
    operation = _operation(document, operation_name)
    if isinstance(operation, str):
        return _refuse(400, operation)
    is_mutation = operation.operation == OperationType.MUTATION
    if is_mutation and request.method == "GET":
        return _refuse(405, "mutations are sent with POST", {"Allow": "POST"})
    if operation.operation == OperationType.SUBSCRIPTION:
        return _refuse(400, "this API has no subscriptions")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    try:
        limits.check(GRAPHQL_SCHEMA, operation, fragments, variables)
    except limits.LimitExceeded as exc:
        return _refuse(400, str(exc))
    except GraphQLError as exc:  # a variable that does not fit its argument
        return _refuse(400, exc.message)
    authorized = bool(request.scope.get("state", {}).get("authorized"))
    if is_mutation and not authorized:
        return _refuse(401, "decisions (mutations) need the API token: send `Authorization: Bearer <token>` "
                            "or sign in on the page", {"WWW-Authenticate": 'Bearer realm="soniquebay"'})
    api = request.app.state.api
    slow = is_mutation or bool(SLOW_FIELDS & limits.root_fields(operation, fragments))
    result = await anyio.to_thread.run_sync(
        _run, api, document, operation, variables, authorized, limiter=api.slow_lane if slow else api.read_lane)
    return JSONResponse(result[0], status_code=result[1])


def _run(api: Any, document: DocumentNode, operation: OperationDefinitionNode, variables: dict | None,
         authorized: bool) -> tuple[dict, int]:
    ctx = RequestContext(api.access, authorized=authorized, services=api)
    try:
        result = execute(GRAPHQL_SCHEMA, document, context_value=ctx, variable_values=variables,
                         operation_name=operation.name.value if operation.name else None,
                         execution_context_class=PlainFieldsExecution, is_awaitable=never_awaitable)
        body: dict[str, Any] = {"data": result.data}
        status = 200
        if result.errors:
            body["errors"] = [_error(e) for e in result.errors]
            if result.data is None:
                status = 400  # nothing ran: the variables did not fit the query
        if ctx.warnings:
            body["extensions"] = {"warnings": ctx.warnings}
        return body, status
    except Exception as exc:  # noqa: BLE001 - e.g. the catalog went away: the client gets an incident id
        return {"errors": [{"message": errors.internal(exc, "GraphQL request")}]}, 500
    finally:
        ctx.close()


def _error(error: GraphQLError) -> dict[str, Any]:
    out: dict[str, Any] = {"message": errors.public_message(error)}
    if error.path:
        out["path"] = error.path
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if isinstance(error.original_error, errors.NotAuthorized):
        out["extensions"] = {"code": "UNAUTHENTICATED"}
    return out
