"""Run the Discourse double: `python -m commons_sync.devtools.discourse_double --port 4200 ...`."""

from __future__ import annotations

import click
from werkzeug.serving import run_simple

from .app import create_double
from .config import DoubleConfig


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, required=True)
@click.option("--webhook-url", default=None, help="Where webhook events are POSTed.")
@click.option("--webhook-secret", default="", help="The webhook secret (signs deliveries).")
@click.option("--api-rpm", type=int, default=60, show_default=True, help="Admin-API requests per minute.")
@click.option("--api-key", default=None, help="The admin API key (random if not given; printed).")
@click.option("--api-username", default="commons-bot", show_default=True, help="The bot user, an admin.")
@click.option("--sso-secret", default="", help="DiscourseConnect provider secret.")
@click.option("--min-post-length", type=int, default=20, show_default=True)
def main(host: str, port: int, webhook_url: str | None, webhook_secret: str, api_rpm: int,
         api_key: str | None, api_username: str, sso_secret: str, min_post_length: int) -> None:
    """Serve a Discourse double until interrupted."""
    config = DoubleConfig(webhook_url=webhook_url, webhook_secret=webhook_secret, api_rpm=api_rpm,
                          api_username=api_username, sso_secret=sso_secret,
                          instance_url=f"http://{host}:{port}", min_post_length=min_post_length)
    if api_key:
        config.api_key = api_key
    click.echo(f"Discourse double on http://{host}:{port} — Api-Key {config.api_key} "
               f"Api-Username {config.api_username}", err=True)
    app = create_double(config)
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        app.extensions["discourse_double"].close()


if __name__ == "__main__":
    main()
