"""Fault tests: real processes (the service under gunicorn, workers, peers) killed, stopped or
broken on loopback. The shared fixtures (`postgres_url`, `local_wiki`…) come from tests/conftest.py."""
