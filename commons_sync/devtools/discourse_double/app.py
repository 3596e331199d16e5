"""The Flask app factory of the Discourse double."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from .config import DoubleConfig
from .forum import Forum
from .traffic import FailureInjector, RateLimiter
from .webhooks import WebhookSender


@dataclass
class Double:
    """The parts of one running double, kept in `app.extensions["discourse_double"]`."""

    config: DoubleConfig
    forum: Forum
    webhooks: WebhookSender
    limiter: RateLimiter
    failures: FailureInjector

    def close(self) -> None:
        """Stops the webhook thread and releases hanging requests."""
        self.failures.stopping.set()
        self.webhooks.stop()


def create_double(config: DoubleConfig | None = None) -> Flask:
    """Create a Flask app that behaves like Discourse for everything commons-sync uses."""
    config = config or DoubleConfig()
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.compact = True  # type: ignore[attr-defined]
    app.json.mimetype = "application/json; charset=utf-8"  # type: ignore[attr-defined]
    webhooks = WebhookSender(config)
    forum = Forum(config, emit=webhooks.emit)
    app.extensions["discourse_double"] = Double(config, forum, webhooks, RateLimiter(config.api_rpm),
                                                FailureInjector())

    from . import api, connect, control, pages

    app.register_blueprint(api.bp)
    app.register_blueprint(control.bp)
    app.register_blueprint(connect.bp)
    app.register_blueprint(pages.bp)
    return app
