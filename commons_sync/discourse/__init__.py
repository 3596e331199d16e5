"""The Discourse adapter: webhook deliveries in, forum commands read, the allowed REST calls out.

- `signature`: `sign`, `verify` (HMAC-SHA256 of the raw body, constant-time compare);
- `events`: `parse_delivery`, `read_subject`, `classify` → `Ignored` | `Accepted`, and the
  snapshots `PostSnapshot`, `TopicSnapshot`, `GroupUserChange`;
- `commands`: `extract_commands` (Markdown-aware), `parse_commun_arguments`, `parse_switch`,
  `parse_referent`;
- `client`: `DiscourseClient`, `RateLimiter`, `LocalRateLimiter`;
- `errors`: `DiscourseError` and its children.
"""

import logging

from commons_sync.discourse.errors import (
    ApiError,
    CallNotAllowed,
    CommandSyntaxError,
    DiscourseError,
    Forbidden,
    MalformedDelivery,
    NotFound,
    PostEnqueued,
    PostRejected,
    RateLimited,
    Unavailable,
    UnexpectedResponse,
    UnsupportedEvent,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "ApiError", "CallNotAllowed", "CommandSyntaxError", "DiscourseError", "Forbidden",
    "MalformedDelivery", "NotFound", "PostEnqueued", "PostRejected", "RateLimited", "Unavailable",
    "UnexpectedResponse", "UnsupportedEvent",
]
