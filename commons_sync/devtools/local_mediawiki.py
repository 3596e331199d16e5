"""A throwaway real MediaWiki (Debian's 1.39 on SQLite, served by `php -S`) for tests and the demo.

The wiki lives in a temporary folder: `install.php` creates it in French with ParserFunctions, a
bot account `Robot` and an ordinary account `Camille`, each with a bot password (the secrets use
the `[0-9a-w]` alphabet, the only one MediaWiki takes for bot passwords). `php -S` serves it on a
free loopback port with stdin closed and its output in `server.log`, so no caller ever waits on
its pipes. `stop()` kills the server's process group (the server and its workers) and removes the
folder; `stop_server()`/`start_server()` take the same wiki down and up again for outage tests.

    with LocalMediaWiki() as wiki:
        Wiki.connect(wiki.api_url, wiki.bot_username, wiki.bot_password)
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from commons_sync.devtools.served import stop_process_group

MEDIAWIKI_DIR = Path("/usr/share/mediawiki")
BOT_PASSWORD_ALPHABET = "0123456789abcdefghijklmnopqrstuvw"
GRANTS = "basic,highvolume,editpage,createeditmovepage"

EXTRA_SETTINGS = """<?php
// Added by commons_sync.devtools.local_mediawiki: a quiet wiki for tests and demos.
$wgPasswordAttemptThrottle = [];
$wgAccountCreationThrottle = [];
$wgGroupPermissions['user']['noratelimit'] = true;
$wgGroupPermissions['bot']['noratelimit'] = true;
$wgEnableEmail = false;
$wgEnableUserEmail = false;
$wgEnableUploads = false;
$wgUploadDirectory = __DIR__ . '/images';
$wgCacheDirectory = __DIR__ . '/cache';
$wgShowExceptionDetails = true;
$wgJobRunRate = 0;
wfLoadExtension('ParserFunctions', '{ip}/extensions-core/ParserFunctions/extension.json');
"""


class LocalMediaWikiError(RuntimeError):
    """The local wiki could not be created or did not start; the message says which step."""


def available(mediawiki_dir: Path = MEDIAWIKI_DIR) -> bool:
    """Whether Debian's mediawiki package and the PHP command line are installed here."""
    return (
        shutil.which("php") is not None
        and (mediawiki_dir / "maintenance" / "install.php").is_file()
        and (mediawiki_dir / "extensions-core" / "ParserFunctions" / "extension.json").is_file()
    )


def live_processes_in_group(pgid: int) -> list[int]:
    """Processes of the process group `pgid` that are not yet dead (zombies excluded: a worker
    orphaned under an init that does not reap stays a zombie, holding no port and no CPU)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _secret(length: int = 32) -> str:
    return "".join(secrets.choice(BOT_PASSWORD_ALPHABET) for _ in range(length))


class LocalMediaWiki:
    """A real MediaWiki in a temporary folder, served on 127.0.0.1 while started.

    Args:
        lang: the wiki's content language (`fr` like the network's wiki).
        workers: `PHP_CLI_SERVER_WORKERS` (requests served at once).
        base_dir: where to create the wiki (a new temporary folder by default; removed by
            `stop()` only when it was created here).
    """

    bot_name = "Robot"
    human_name = "Camille"

    def __init__(self, *, lang: str = "fr", workers: int = 1, base_dir: Path | None = None,
                 mediawiki_dir: Path = MEDIAWIKI_DIR) -> None:
        self.lang = lang
        self.workers = workers
        self.mediawiki_dir = Path(mediawiki_dir)
        self._own_dir = base_dir is None
        self.dir: Path | None = Path(base_dir) if base_dir else None
        self.port: int | None = None
        self.admin_password = "Admin-" + _secret(16)
        self.bot_username = f"{self.bot_name}@commons-sync"
        self.bot_password = _secret()
        self.human_username = f"{self.human_name}@navigateur"
        self.human_password = _secret()
        self._server: subprocess.Popen | None = None
        self._installed = False

    available = staticmethod(available)

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> "LocalMediaWiki":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.server_url}/api.php"

    @property
    def log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "server.log"

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.poll() is None

    def start(self) -> "LocalMediaWiki":
        """Create the wiki (first time only) and serve it; returns when api.php answers."""
        if not available(self.mediawiki_dir):
            raise LocalMediaWikiError("MediaWiki or PHP is not installed (bash scripts/setup.sh --test)")
        if not self._installed:
            self._install()
        self.start_server()
        return self

    def stop(self) -> None:
        """Stop the server and its workers, then remove the wiki's folder if it was made here."""
        self.stop_server()
        if self._own_dir and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            self._installed = False

    def start_server(self, timeout: float = 20.0) -> None:
        """Serve the (already created) wiki on its port and wait until api.php answers."""
        if self.running:
            return
        assert self.dir is not None and self.port is not None
        env = dict(os.environ, MW_CONFIG_FILE=str(self.dir / "LocalSettings.php"))
        if self.workers > 1:
            env["PHP_CLI_SERVER_WORKERS"] = str(self.workers)
        with open(self.log_path, "ab") as log:
            self._server = subprocess.Popen(
                ["php", "-S", f"127.0.0.1:{self.port}", "-t", str(self.mediawiki_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=self.dir, start_new_session=True,
            )
        self._wait_until_ready(timeout)

    def stop_server(self) -> None:
        """Stop serving (the wiki's data stays): kills the server's whole process group."""
        server, self._server = self._server, None
        if server is None:
            return
        stop_process_group(server, signal.SIGTERM, timeout=5)
        # Workers (PHP_CLI_SERVER_WORKERS) are in the same group; make sure none outlived it.
        deadline = time.monotonic() + 5
        while live_processes_in_group(server.pid) and time.monotonic() < deadline:
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.02)

    # -- creation ---------------------------------------------------------------------------

    def _php(self, script: str, *args: str) -> None:
        assert self.dir is not None
        env = dict(os.environ, MW_CONFIG_FILE=str(self.dir / "LocalSettings.php"))
        result = subprocess.run(
            ["php", str(self.mediawiki_dir / "maintenance" / script), *args],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, cwd=self.dir,
            timeout=120,
        )
        if result.returncode != 0:
            raise LocalMediaWikiError(
                f"{script} failed ({result.returncode}): {(result.stdout + result.stderr)[-2000:]}"
            )

    def _install(self) -> None:
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="commons-sync-wiki-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("data", "images", "cache"):
            (self.dir / sub).mkdir(exist_ok=True)
        if self.port is None:
            self.port = _free_port()
        self._php(
            "install.php", "--dbtype", "sqlite", "--dbpath", str(self.dir / "data"),
            "--dbname", "wiki", "--server", self.server_url, "--scriptpath", "",
            "--lang", self.lang, "--skins", "Vector", "--pass", self.admin_password,
            "--confpath", str(self.dir), "Wiki de test", "Admin",
        )
        (self.dir / "commons_sync_settings.php").write_text(
            EXTRA_SETTINGS.replace("{ip}", str(self.mediawiki_dir)), encoding="utf-8"
        )
        with open(self.dir / "LocalSettings.php", "a", encoding="utf-8") as settings:
            settings.write("\nrequire_once __DIR__ . '/commons_sync_settings.php';\n")
        self._php("createAndPromote.php", "--bot", self.bot_name, "Robot-" + _secret(16))
        self._php("createBotPassword.php", "--appid", "commons-sync", "--grants", GRANTS,
                  self.bot_name, self.bot_password)
        self._php("createAndPromote.php", self.human_name, "Camille-" + _secret(16))
        self._php("createBotPassword.php", "--appid", "navigateur", "--grants", GRANTS,
                  self.human_name, self.human_password)
        self._installed = True

    def _wait_until_ready(self, timeout: float) -> None:
        url = f"{self.api_url}?action=query&meta=siteinfo&format=json"
        deadline = time.monotonic() + timeout
        while True:
            if self._server is not None and self._server.poll() is not None:
                raise LocalMediaWikiError(f"php -S exited: {self._log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # nosec B310: our own http://127.0.0.1 test wiki
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop_server()
                raise LocalMediaWikiError(f"api.php did not answer in {timeout:.0f} s: {self._log_tail()}")
            time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"
