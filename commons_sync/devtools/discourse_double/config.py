"""Settings of one Discourse double: its API key, webhook target, rate ceiling and site settings."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field


@dataclass
class DoubleConfig:
    """What a Discourse admin would have configured on the forum the double imitates.

    The minimum lengths are Discourse's default site settings (`min_post_length`,
    `min_first_post_length`, `min_topic_title_length`, `min_personal_message_post_length`,
    `min_personal_message_title_length`); set one to 0 to switch that check off.
    `editing_grace_period` (Discourse's default is 300 s) makes an author's quick edits keep the
    same `version` ("ninja edits"); the double's default is 0: every edit bumps the version.
    """

    api_key: str = field(default_factory=lambda: secrets.token_hex(32))
    api_username: str = "commons-bot"
    webhook_url: str | None = None
    webhook_secret: str = ""
    webhook_timeout: float = 20.0
    retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0)
    api_rpm: int = 60
    sso_secret: str = ""
    instance_url: str | None = None
    user_agent: str = "Discourse/3.4.2"
    min_post_length: int = 20
    min_first_post_length: int = 20
    min_topic_title_length: int = 15
    min_personal_message_post_length: int = 10
    min_personal_message_title_length: int = 2
    editing_grace_period: float = 0.0
    deleted_by_author_text: str = "(message supprimé par son auteur)"
