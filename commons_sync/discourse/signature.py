"""Webhook signatures, so that only the forum holding the shared secret can feed the service.

Discourse signs each delivery with `X-Discourse-Event-Signature: sha256=<hex HMAC-SHA256(secret,
raw body)>`. Both functions work on the exact bytes received: a body parsed and re-serialised no
longer matches.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="
HEADER = "X-Discourse-Event-Signature"


def sign(secret: bytes, body: bytes) -> str:
    """The header value Discourse sends for `body` under `secret` (`sha256=<hex>`)."""
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether `header` is the signature of `body` under `secret`, compared in constant time.

    A missing, empty or differently-prefixed header is simply not valid. The hex digits are
    compared case-insensitively, as a hex string is the same number either way.
    """
    if not secret or not header:
        return False
    header = header.strip()
    if not header.startswith(PREFIX):
        return False
    given = header[len(PREFIX):].lower().encode("ascii", "replace")
    expected = sign(secret, body)[len(PREFIX):].encode("ascii")
    return hmac.compare_digest(given, expected)
