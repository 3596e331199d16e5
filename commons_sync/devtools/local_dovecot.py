"""A throwaway Dovecot IMAP server, so tests and the demo poll a real mailbox on loopback.

The server gets its own configuration, state and Maildir in a temporary directory and nothing in
`/etc` is read or touched. It listens on 127.0.0.1 on a free port with plaintext authentication,
and serves one user whose mail belongs to uid 5000 (Dovecot refuses uid 0; 5000 needs no
`/etc/passwd` entry). The server runs in the foreground as a child process, so `stop()` ends it
and leaves nothing behind. With `tls=True` it also gets a self-signed certificate (made with the
`openssl` program, which Dovecot's Debian package depends on): IMAPS on `imaps_port` and STARTTLS
on `port`, trusted by `ssl_context()`.

Example::

    with LocalDovecot() as server:
        server.deliver(raw_bytes)
        mailbox = Mailbox(**server.mailbox_kwargs())
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from imapclient import IMAPClient

MAIL_UID = 5000
DOVECOT_CANDIDATES = ("dovecot", "/usr/sbin/dovecot")

CONFIG_TEMPLATE = """\
# Written by commons_sync.devtools.local_dovecot: a throwaway instance, nothing in /etc is used.
protocols = imap
listen = 127.0.0.1
base_dir = {workdir}/run
state_dir = {workdir}/state
log_path = {workdir}/dovecot.log
info_log_path = {workdir}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{workdir}/mail/%u/Maildir
mail_max_userip_connections = 100
first_valid_uid = {uid}
last_valid_uid = {uid}
{extra}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {workdir}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {workdir}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
# No growing delay after failed logins: tests try a wrong password on purpose.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0600
  }}
}}
"""


class DovecotError(RuntimeError):
    """The throwaway Dovecot could not be started or driven; the message quotes its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dovecot_binary() -> str | None:
    """The path of the `dovecot` program, or None when Debian's `dovecot-imapd` is not installed."""
    for candidate in DOVECOT_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class LocalDovecot:
    """A Dovecot serving one user's Maildir on 127.0.0.1, for tests and the demo.

    Args:
        username, password: the one account (plaintext authentication).
        capabilities: when given, the exact IMAP capability list announced after login (e.g.
            without `MOVE`, to exercise a client's fallback); default: Dovecot's own.
        tls: also serve IMAPS and STARTTLS with a self-signed certificate for 127.0.0.1.

    Raises:
        DovecotError: from `start()` when Dovecot is missing or does not answer.
    """

    def __init__(self, username: str = "intake", password: str = "secret",
                 *, capabilities: str | None = None, tls: bool = False,
                 start_timeout: float = 10.0):
        self.username = username
        self.password = password
        self.host = "127.0.0.1"
        self.port = 0
        self.imaps_port = 0
        self.tls = tls
        self.capabilities = capabilities
        self.start_timeout = start_timeout
        self.workdir: Path | None = None
        self._process: subprocess.Popen | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @staticmethod
    def available() -> bool:
        """Whether Dovecot is installed and this process may run it (it needs root to switch uid)."""
        return dovecot_binary() is not None and os.geteuid() == 0

    def start(self) -> "LocalDovecot":
        """Write the configuration, create the Maildir and start Dovecot in the foreground."""
        binary = dovecot_binary()
        if binary is None:
            raise DovecotError("dovecot is not installed (Debian package dovecot-imapd)")
        if self.workdir is None:
            # mkdtemp gives 0700; Dovecot's unprivileged processes need o+x on every parent.
            self.workdir = Path(tempfile.mkdtemp(prefix="commons-sync-dovecot-"))
            self.workdir.chmod(0o755)
            self.port = free_port()
            self.imaps_port = free_port() if self.tls else 0
            self._write_files()
        self._process = subprocess.Popen(
            [binary, "-F", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self._wait_until_ready()
        return self

    def stop(self) -> None:
        """Stop Dovecot and remove its directory; nothing of it keeps running."""
        self._stop_process()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def restart(self) -> None:
        """Stop and start again on the same port, keeping the mail."""
        self._stop_process()
        self.start()

    def __enter__(self) -> "LocalDovecot":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- mail ----------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self._workdir / "dovecot.conf"

    @property
    def maildir(self) -> Path:
        """The user's Maildir (INBOX is its top level)."""
        return self._workdir / "mail" / self.username / "Maildir"

    def deliver(self, raw: bytes) -> None:
        """Drop a message into INBOX the way a mail server does: write in `tmp/`, rename into `new/`."""
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.commons-sync"
        staging = self.maildir / "tmp" / name
        staging.write_bytes(raw)
        os.chown(staging, MAIL_UID, MAIL_UID)
        staging.chmod(0o600)
        staging.rename(self.maildir / "new" / name)

    def reset_uidvalidity(self) -> None:
        """Make INBOX get a new UIDVALIDITY and UIDs from 1 again, as after a server migration.

        Dovecot keeps the UIDs in `dovecot-uidlist` and caches them in its index files: both are
        removed while the server is stopped, then the server is started again on the same port.
        """
        before = self.uidvalidity()
        for _attempt in range(3):
            self._stop_process()
            for name in os.listdir(self.maildir):
                if name == "dovecot-uidlist" or name.startswith("dovecot.index"):
                    (self.maildir / name).unlink()
            self.start()
            # Dovecot takes the clock's second as the new UIDVALIDITY: never hand back the old one.
            if self.uidvalidity() != before:
                return
            time.sleep(1)
        raise DovecotError("UIDVALIDITY did not change")

    def uidvalidity(self, folder: str = "INBOX") -> int:
        """The folder's current UIDVALIDITY."""
        with self.client() as client:
            return client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"]

    def clear(self) -> None:
        """Remove every message and every folder but INBOX, so a test starts from an empty mailbox."""
        with self.client() as client:
            for _flags, _delimiter, name in client.list_folders():
                if name.upper() == "INBOX":
                    continue
                client.delete_folder(name)
            client.select_folder("INBOX")
            uids = client.search(["ALL"])
            if uids:
                client.delete_messages(uids)
                client.expunge()

    def client(self) -> IMAPClient:
        """A logged-in IMAPClient on this server (use it as a context manager)."""
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        client.login(self.username, self.password)
        return client

    def mailbox_kwargs(self, *, implicit_tls: bool = False) -> dict:
        """The keyword arguments of `commons_sync.mail.imap.Mailbox` for this server.

        With `tls=True`, they trust its certificate; `implicit_tls` picks the IMAPS port.
        """
        kwargs = {"host": self.host, "port": self.port, "username": self.username,
                  "password": self.password, "ssl": False}
        if self.tls:
            kwargs["ssl_context"] = self.ssl_context()
        if implicit_tls:
            kwargs.update(port=self.imaps_port, ssl=True)
        return kwargs

    @property
    def certificate_path(self) -> Path:
        return self._workdir / "cert.pem"

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this server's self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.certificate_path))

    def log(self) -> str:
        """Dovecot's log so far (for error messages)."""
        path = self._workdir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- internals -------------------------------------------------------------------------------

    @property
    def _workdir(self) -> Path:
        if self.workdir is None:
            raise DovecotError("the server has not been started")
        return self.workdir

    def _write_files(self) -> None:
        workdir = self._workdir
        for sub in ("run", "state"):
            (workdir / sub).mkdir(mode=0o755)
        extra = f"imap_capability = {self.capabilities}" if self.capabilities else ""
        ssl_lines = "ssl = no"
        if self.tls:
            self._make_certificate()
            ssl_lines = (f"ssl = yes\nssl_cert = <{self.certificate_path}\n"
                         f"ssl_key = <{workdir / 'key.pem'}")
        self.config_path.write_text(CONFIG_TEMPLATE.format(
            workdir=workdir, port=self.port, imaps_port=self.imaps_port, uid=MAIL_UID,
            extra=extra, ssl=ssl_lines))
        home = workdir / "mail" / self.username
        (workdir / "passwd").write_text(
            f"{self.username}:{{PLAIN}}{self.password}:{MAIL_UID}:{MAIL_UID}::{home}::\n")
        (workdir / "passwd").chmod(0o644)
        (workdir / "mail").mkdir(mode=0o755)
        for path in (home, home / "Maildir", *(home / "Maildir" / sub for sub in ("new", "cur", "tmp"))):
            path.mkdir(mode=0o700)
            os.chown(path, MAIL_UID, MAIL_UID)

    def _make_certificate(self) -> None:
        key = self._workdir / "key.pem"
        result = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key),
             "-out", str(self.certificate_path),
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            capture_output=True, text=True)
        if result.returncode != 0:
            raise DovecotError(f"openssl could not make a certificate: {result.stderr.strip()}")
        key.chmod(0o600)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode(errors="replace")
                self._process = None
                raise DovecotError(f"dovecot exited at start: {stderr.strip()} {self.log()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        self._stop_process()
        raise DovecotError(f"dovecot did not answer on port {self.port}: {self.log()[-2000:]}")

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr:
            process.stderr.close()
