"""Errors of the Discourse adapter, one tree under `DiscourseError`, each carrying what a caller branches on.

Webhook side: `MalformedDelivery` (answer 400) and `UnsupportedEvent` (answer 200, ignored).
Forum commands: `CommandSyntaxError`, whose text exists in French and English.
REST side: `ApiError` and its children; none of them ever holds the API key, a request or a
response object (a `requests` request carries the `Api-Key` header).
"""

from __future__ import annotations

from collections.abc import Sequence

from commons_sync.i18n import DEFAULT_LANGUAGE, t


class DiscourseError(Exception):
    """Base class of every error raised by `commons_sync.discourse`."""


# --- webhook deliveries -------------------------------------------------------------------------


class MalformedDelivery(DiscourseError):
    """A delivery whose headers or body are not the JSON shape Discourse sends (answer 400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedEvent(DiscourseError):
    """A well-formed delivery of an event the service does not handle (answer 200, ignored)."""

    def __init__(self, event_type: str, event: str) -> None:
        super().__init__(f"the Discourse event {event_type}/{event} isn't supported; ignoring")
        self.event_type = event_type
        self.event = event


# --- forum commands -----------------------------------------------------------------------------


class CommandSyntaxError(DiscourseError):
    """A forum command line whose arguments cannot be read; `message(lang)` explains it to the poster.

    `template` is the French message id (translated by `commons_sync.i18n.t`), `params` fill it.
    """

    def __init__(self, template: str, **params: object) -> None:
        self.template = template
        self.params = params
        super().__init__(self.message(DEFAULT_LANGUAGE))

    def message(self, lang: str) -> str:
        """The explanation in `lang` (`fr` or `en`)."""
        return t(lang, self.template, **self.params)


# --- REST API -----------------------------------------------------------------------------------


class CallNotAllowed(DiscourseError):
    """A request outside the API calls CONTRACT §3 allows; a programming error, never sent."""

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"{method} {path} is not one of the Discourse calls the service may make")
        self.method = method
        self.path = path


class ApiError(DiscourseError):
    """The forum answered a request with an error; `status` is the HTTP status (0 if none came)."""

    def __init__(self, method: str, path: str, status: int, errors: Sequence[str] = (),
                 detail: str = "") -> None:
        self.method = method
        self.path = path
        self.status = status
        self.errors = tuple(errors)
        text = "; ".join(self.errors) or detail
        super().__init__(f"{method} {path} -> {status or 'no answer'}" + (f": {text}" if text else ""))


class RateLimited(ApiError):
    """Discourse answered 429; wait `wait_seconds` before the next request (the client never waits)."""

    def __init__(self, method: str, path: str, wait_seconds: float, errors: Sequence[str] = ()) -> None:
        super().__init__(method, path, 429, errors, detail=f"retry in {wait_seconds:g} s")
        self.wait_seconds = wait_seconds


class Unavailable(ApiError):
    """The forum cannot be reached or failed (5xx, timeout, connection error); try again later."""


class PostRejected(ApiError):
    """Discourse refused to create or edit a post (422); `errors` holds its reasons."""


class PostEnqueued(ApiError):
    """The post was put in the review queue instead of being published."""

    def __init__(self, method: str, path: str, pending_post_id: int | None) -> None:
        super().__init__(method, path, 200, detail="the post was queued for approval")
        self.pending_post_id = pending_post_id


class NotFound(ApiError):
    """The topic, post, user or group does not exist or is hidden (404)."""


class Forbidden(ApiError):
    """The API user may not do this, or the API key is invalid (403)."""


class UnexpectedResponse(ApiError):
    """The forum answered something that is not the documented JSON (redirect, HTML, missing keys)."""
