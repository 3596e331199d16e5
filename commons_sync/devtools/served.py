"""A WSGI app served on a loopback port in a thread (the demo and the tests run the service so)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading

from werkzeug.serving import WSGIRequestHandler, make_server


class _Quiet(WSGIRequestHandler):
    def log(self, *args, **kwargs) -> None:
        return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServedApp:
    """`app` answering on http://host:port until `stop()`."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = make_server(host, port, app, threaded=True, request_handler=_Quiet)
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def stop_process_group(process: subprocess.Popen | None, sig: int = signal.SIGKILL,
                       timeout: float = 15) -> None:
    """Send `sig` to the process group of `process` (started with `start_new_session=True`) and
    wait for it; SIGKILL if it is still there after `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
