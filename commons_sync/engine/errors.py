"""Why the engine refuses something: a reason code a person can be told about, and its figures.

The engine never builds sentences; `commons_sync.texts` turns each code into French or English.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every refusal the engine raises.

    Attributes:
        code: a stable reason code (see `REASONS`), used to pick the translated sentence.
        params: the figures the sentence needs (amounts are integer cents).
    """

    code = "invalid"

    def __init__(self, code: str | None = None, **params: object) -> None:
        self.code = code or self.code
        self.params = params
        super().__init__(self.code, params)

    def __str__(self) -> str:  # a developer's view; people get `texts.reason()`
        return f"{self.code} {self.params}" if self.params else self.code


class AmountError(EngineError):
    """An amount typed by a person is malformed, ambiguous, has too many decimals or is not positive."""

    code = "amount_malformed"


class PledgeRefused(EngineError):
    """A pledge (or a change of one) breaks a rule; nothing changes."""

    code = "pledge_refused"


class NotFound(EngineError):
    """A round, commons, pledge or contribution that does not exist."""

    code = "not_found"


class InvalidOperation(EngineError):
    """A command that is well-formed but not allowed in the current state (e.g. close a closed round)."""

    code = "invalid_operation"


# Every reason code, in one place, so the translations and the tests can check they are complete.
REASONS = (
    "amount_empty",
    "amount_malformed",
    "amount_ambiguous",
    "amount_too_many_decimals",
    "amount_not_positive",
    "amount_too_large",
    "round_not_open",
    "round_not_started",
    "round_closed",
    "not_member",
    "over_balance",
    "over_cap",
    "commons_not_open",
    "several_pledge_lines",
    "before_commons",
    "not_found",
    "invalid_operation",
    "invalid_date",
    "closes_before_opens",
    "invalid_currency",
    "invalid_ratio",
    "invalid_threshold",
    "invalid_slug",
    "duplicate_slug",
    "duplicate_topic",
    "duplicate_wiki_title",
    "not_a_username",
    "empty_title",
    "round_already_closed",
    "payment_backwards",
    "set_below_pledged",
    "contribution_over_cap",
    "goal_required",
    "cap_below_goal",
)
