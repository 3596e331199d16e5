"""What every `commons-sync` command shares: one-line failures, the settings, the service, amounts, JSON.

`cli.py` and the adapter command modules (`cli_forum`, `cli_triage`, `cli_lifecycle`) import these,
so a refusal reads the same whichever command says it.
"""

from __future__ import annotations

import json

import click

from commons_sync import texts
from commons_sync.config import Settings, SettingsError, load_settings
from commons_sync.engine.errors import EngineError
from commons_sync.i18n import t


class Failure(click.ClickException):
    """One line on stderr, exit status 1."""

    def show(self, file=None) -> None:
        click.echo(f"commons-sync: {self.message}", err=True)


def settings_of(ctx: click.Context) -> Settings:
    """The settings read by the `commons-sync` group, or read now for a command run alone."""
    if isinstance(ctx.obj, dict) and "settings" in ctx.obj:
        return ctx.obj["settings"]
    try:
        return load_settings()
    except SettingsError as error:
        raise Failure(str(error)) from None


def service_of(settings: Settings):
    """The service on the configured database, or one line saying why not."""
    from commons_sync.bootstrap import SchemaOutdated, build_service
    from commons_sync.service.unit_of_work import DatabaseUnavailable

    try:
        return build_service(settings)
    except SchemaOutdated:
        raise Failure(t(settings.language, "la base de données n'est pas à jour : lancez "
                                           "« commons-sync db upgrade »")) from None
    except DatabaseUnavailable:
        raise Failure(t(settings.language, "la base de données est injoignable")) from None


def refusal(error: EngineError, lang: str) -> Failure:
    """The engine's refusal as the one line a person reads."""
    return Failure(texts.reason(error.code, lang, **error.params))


def amount_of(ctx: click.Context, value: str | None) -> int | None:
    """An amount typed on the command line, in cents (None when the option was not given)."""
    from commons_sync.engine.money import parse_amount

    if value is None:
        return None
    try:
        return parse_amount(value)
    except EngineError as error:
        raise refusal(error, settings_of(ctx).language) from None


def emit_json(data) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
