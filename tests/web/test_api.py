"""The public read API and the badge: the CLI's JSON, an OpenAPI document that holds, caching."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings as hsettings

from commons_sync.config import load_settings
from commons_sync.service import handlers as h
from commons_sync.web.app import create_app

from ..service.test_service import make_round, open_commons, pledge


@pytest.fixture
def app(sqlite_service, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    make_round(sqlite_service)
    c = open_commons(sqlite_service, 10, goal=200_000)
    pledge(sqlite_service, 1, "la-ruche", 40_000)
    h.add_contribution(sqlite_service, c.id, 1_050, "sur-adhésion", "le-pont")
    h.open_commons(sqlite_service, h.CommonsSpec(round_slug="r2026", title="Idée", goal_cents=None))
    settings = load_settings(discourse_url="https://forum.example.org", discourse_api_key="k",
                             discourse_api_username="bot", discourse_webhook_secret="secret-of-12+")
    return create_app(settings, sqlite_service)


def test_commons_json_is_the_cli_json_with_links(app, sqlite_service):
    response = app.test_client().get("/api/v1/commons/1")
    assert response.status_code == 200
    body = response.get_json()
    links = body.pop("links")
    assert body == h.show_commons(sqlite_service, 1)
    assert links["topic"] == "https://forum.example.org/t/10" and links["badge"] == "/badge/1.svg"
    assert "@" not in response.get_data(as_text=True)


def test_round_json_lists_its_commons_and_members(app):
    body = app.test_client().get("/api/v1/rounds/r2026").get_json()
    assert [c["title"] for c in body["commons"]] == ["Commun", "Idée"]
    assert body["members"] == [{"username": "la-ruche", "allocated": 500, "pledged": 400, "balance": 100}]


def test_unknown_ids_are_json_404s(app):
    client = app.test_client()
    for path in ("/api/v1/commons/99", "/api/v1/rounds/nope"):
        response = client.get(path)
        assert response.status_code == 404 and response.get_json()["error"] == "not_found"
    assert client.get("/badge/99.svg").status_code == 404


def test_badge_shows_raised_goal_and_percent_and_can_be_cached(app):
    client = app.test_client()
    response = client.get("/badge/1.svg")
    svg = response.get_data(as_text=True)
    assert response.mimetype == "image/svg+xml"
    assert "410,50 € / 2 000 € · 20 %" in svg
    assert response.headers["Cache-Control"] == "public, max-age=300"
    again = client.get("/badge/1.svg", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert "idée" in client.get("/badge/2.svg").get_data(as_text=True)


def test_openapi_document_holds_for_every_generated_request(app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @hsettings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case):
            case.call_and_validate()

        try:
            check()
        except Exception as error:  # noqa: BLE001 - collected so every operation is tried
            failures.append(f"{op.label}: {error}")
    assert failures == []


def test_a_database_that_does_not_answer_is_a_503_on_every_page_not_a_500():
    from commons_sync.storage.database import make_engine

    nowhere = h.Service(make_engine("postgresql+psycopg://postgres@127.0.0.1:9/absent"))
    settings = load_settings(language="en", secret_key="k" * 32)
    client = create_app(settings, nowhere).test_client()

    api = client.get("/api/v1/rounds/r2026")
    badge = client.get("/badge/1.svg")

    assert (api.status_code, api.headers["Retry-After"]) == (503, "5")
    assert api.get_json()["error"] == "database_unavailable"
    assert badge.status_code == 503 and "database is not answering" in badge.get_data(as_text=True)
