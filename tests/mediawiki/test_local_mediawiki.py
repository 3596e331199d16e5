"""The throwaway wiki itself: it starts, serves several workers, and leaves nothing behind."""

from __future__ import annotations

import os
import socket

import pytest

from commons_sync.devtools.local_mediawiki import LocalMediaWiki, available, live_processes_in_group
from commons_sync.mediawiki import Wiki

pytestmark = pytest.mark.mediawiki


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_stop_leaves_no_process_no_port_and_no_folder():
    if not available():
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's mediawiki and php are not installed")
        pytest.skip("Debian's mediawiki and php are not installed")
    local = LocalMediaWiki(workers=2).start()
    try:
        folder, port, pgid = local.dir, local.port, local._server.pid
        assert len(live_processes_in_group(pgid)) >= 3  # the server and its two workers
        wiki = Wiki.connect(local.api_url, local.bot_username, local.bot_password)
        assert wiki.site.username == "Robot"
        human = Wiki.connect(local.api_url, local.human_username, local.human_password)
        assert human.site.username == "Camille" and "bot" not in human.site.groups
        local.stop_server()
        assert not port_open(port) and live_processes_in_group(pgid) == []
        local.start_server()
        assert local.port == port and local.dir == folder
        assert Wiki.connect(local.api_url, local.bot_username, local.bot_password).site.username == "Robot"
        pgid = local._server.pid
    finally:
        local.stop()
    assert live_processes_in_group(pgid) == []
    assert not port_open(port)
    assert not folder.exists()
