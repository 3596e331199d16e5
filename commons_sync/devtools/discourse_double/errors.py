"""Errors of the Discourse double, so its callers branch on what went wrong."""

from __future__ import annotations


class DoubleError(Exception):
    """Base class of every error the Discourse double raises."""


class InvalidRequest(DoubleError):
    """What the forum refuses as Discourse would (422): `errors` holds Discourse's messages."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


class NotFound(DoubleError):
    """The user, group, topic or post does not exist (or the actor may not see it)."""


class Forbidden(DoubleError):
    """The actor may not do this (e.g. a non-staff user editing a locked post)."""


class ControlError(DoubleError):
    """A test-control call answered with an error: `status` and `body` say which."""

    def __init__(self, status: int, body: str):
        super().__init__(f"{status}: {body[:500]}")
        self.status = status
        self.body = body


class StartError(DoubleError):
    """The double could not be started."""
