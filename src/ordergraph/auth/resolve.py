"""Turns a request's credentials into a Viewer."""

from __future__ import annotations

from ordergraph.auth.keys import viewer_for_key
from ordergraph.auth.tokens import viewer_for_token
from ordergraph.auth.viewer import ANONYMOUS, Viewer


class InvalidCredentials(Exception):
    """Credentials were presented but are not valid: the request is refused (401)."""


async def viewer_from_credentials(authorization: str | None, api_key: str | None) -> Viewer:
    credential = api_key
    if not credential and authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise InvalidCredentials("Authorization must be 'Bearer <api key or token>'")
        credential = value.strip()
    if not credential:
        return ANONYMOUS
    if credential.startswith("og_"):
        viewer = await viewer_for_key(credential)
    else:
        viewer = viewer_for_token(credential)
    if viewer is None:
        raise InvalidCredentials("invalid or revoked credentials")
    return viewer
