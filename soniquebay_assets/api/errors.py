"""What an API client may read in an error: messages written for it, never a host path, SQL or a traceback."""

from __future__ import annotations

import logging
import uuid

from graphql import GraphQLError

log = logging.getLogger("soniquebay.api")


class ApiError(Exception):
    """A request the client must change; the message says how."""


class NotAuthorized(ApiError):
    """The request needs the API token."""


def public_message(error: GraphQLError) -> str:
    """The error as the client sees it: ours and GraphQL's own messages verbatim, anything else masked and
    logged with an id the operator can find."""
    original = error.original_error
    if original is None or isinstance(original, ApiError):
        return error.message
    incident = uuid.uuid4().hex[:12]
    log.error("GraphQL resolver failed (incident %s) at %s", incident, error.path,
              exc_info=(type(original), original, original.__traceback__))
    return f"internal error (incident {incident}: the server log has the details)"


def internal(exc: BaseException, where: str) -> str:
    """Log an unexpected failure with its traceback; the incident line a client may see."""
    incident = uuid.uuid4().hex[:12]
    log.error("%s failed (incident %s)", where, incident, exc_info=(type(exc), exc, exc.__traceback__))
    return f"internal error (incident {incident}: the server log has the details)"
