"""What can go wrong when the service talks to the wiki, as classes callers branch on."""

from __future__ import annotations


class WikiError(Exception):
    """Base of every error of the wiki adapter."""


class WikiUnavailable(WikiError):
    """The wiki cannot be reached or asks us to wait (connection refused, 5xx, 429, maxlag, read-only).

    `retry_after` is the wait in seconds the wiki asked for (`Retry-After`), or None.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LoginFailed(WikiError):
    """The bot password was refused (wrong `User@botname` or secret, or missing grants)."""


class InvalidTitle(WikiError):
    """MediaWiki does not accept `title` as a page title."""

    def __init__(self, title: str) -> None:
        super().__init__(f"invalid page title: {title!r}")
        self.title = title


class EditConflict(WikiError):
    """The page changed (or disappeared) since the revision the edit was based on."""

    def __init__(self, title: str) -> None:
        super().__init__(f"edit conflict on {title!r}")
        self.title = title


class PageExists(WikiError):
    """A page creation found the page already there."""

    def __init__(self, title: str) -> None:
        super().__init__(f"page already exists: {title!r}")
        self.title = title


class EditRefused(WikiError):
    """The wiki refused the edit for a reason retrying will not fix (protection, block, filter).

    `code` is MediaWiki's error code (`protectedpage`, `blocked`, `abusefilter-disallowed`…).
    """

    def __init__(self, title: str, code: str, info: str = "") -> None:
        super().__init__(f"edit of {title!r} refused: {code} {info}".strip())
        self.title = title
        self.code = code
        self.info = info
