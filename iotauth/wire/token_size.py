"""The longest bearer token (a JWT) the authorizer looks at, in characters.

Contract: :data:`MAX_TOKEN_CHARS`, read by the event parser (:mod:`iotauth.connect.event`)
and the JWS decoder (:mod:`iotauth.wire.jws`); longer tokens are refused before any decoding.

The one reason that matters: the event parser needs the bound on every CONNECT, and it must
not import the JWS code to get it, which a deployment without token auth never runs.
"""

from __future__ import annotations

__all__ = ["MAX_TOKEN_CHARS"]

#: Real ID and access tokens are 0.8-4 KB; IoT forwards at most 8 KB of HTTP data.
MAX_TOKEN_CHARS = 8192
