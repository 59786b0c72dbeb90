"""The server: a socket on loopback, uvicorn running the app, a clean stop.

    server = Server("runs/pets", port=8000)      # models found, the default one loaded, port bound
    print(server.url)                             # http://127.0.0.1:8000/
    server.run()                                  # until Ctrl-C (or SIGTERM, or server.stop())

    with Server("model.tflite", port=0) as server:   # in a background thread, on a free port
        urllib.request.urlopen(server.url + "api/models")

The port is bound before anything is served, so a port in use is a one-line
error and `port=0` gets a free one whose URL is known at once. uvicorn
(one process, one event loop) answers HTTP/1.1 with keep-alive; on Ctrl-C it
stops accepting, lets requests in progress finish (at most a few seconds) and
returns, and `run` returns with it.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time

from mobilenets.errors import MobilenetsError
from mobilenets.serve.app import MAX_UPLOAD_BYTES, QUEUE, create_app
from mobilenets.serve.registry import MAX_PIXELS, Registry


class Server:
    """`mobilenets serve` as an object: the app on a bound socket, run in the foreground or a thread.

    Attributes:
        registry: the models (`serve.registry.Registry`).
        url: where the page is, e.g. `http://127.0.0.1:8000/`.
    """

    def __init__(self, target: "str | os.PathLike", host: str = "127.0.0.1", port: int = 8000, *,
                 labels=None, input_range=None, threads: int | None = None,
                 max_upload_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS, queue: int = QUEUE):
        """Load the models, build the app and bind the port.

        Args:
            target: a run folder, `.keras`, full-model `.h5` or `.tflite`.
            host: the address to listen on; the default answers this machine only.
            port: the TCP port; 0 takes any free one.
            labels, input_range, threads: as `mobilenets predict` takes them.
            max_upload_bytes: the largest upload accepted (413 above).
            max_pixels: the largest image decoded (413 above).
            queue: predictions in progress or waiting at most (503 above).

        Raises:
            MobilenetsError: the model cannot be loaded, or the port cannot be bound.
        """
        import uvicorn

        if queue < 1:
            raise MobilenetsError(f"queue must be >= 1. Received {queue}")
        self.socket = _bind(host, port)  # first: a port in use is said at once, not after loading
        try:
            self.registry = Registry(target, labels=labels, input_range=input_range, threads=threads,
                                     max_pixels=max_pixels)
        except BaseException:
            self.socket.close()
            raise
        self.app = create_app(self.registry, max_upload_bytes=max_upload_bytes, queue=queue)
        bound = self.socket.getsockname()[1]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{bound}/"
        self._server = uvicorn.Server(uvicorn.Config(
            # log_config=None: a library leaves the caller's logging as it is (errors still reach stderr).
            self.app, log_config=None, log_level="warning", access_log=False, lifespan="off",
            timeout_graceful_shutdown=5))
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until Ctrl-C, SIGTERM or `stop()`; then close the socket and return."""
        try:
            self._server.run(sockets=[self.socket])
        except KeyboardInterrupt:  # uvicorn raises the Ctrl-C it caught again once it has stopped
            pass
        finally:
            self.socket.close()

    def stop(self) -> None:
        """Ask a running server to stop (it finishes the requests in progress)."""
        self._server.should_exit = True

    def __enter__(self) -> "Server":
        self._thread = threading.Thread(target=self.run, name="mobilenets-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise MobilenetsError(f"the server at {self.url} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port`, or one line saying why there cannot be one."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as e:
        raise MobilenetsError(f"cannot listen on {host!r}: {e.strerror}") from None
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say they are
    # TCP, and with Nagle on, every keep-alive response waited ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(256)
    except (OSError, OverflowError) as e:
        sock.close()
        hint = ("; choose another with --port, or --port 0 for any free one"
                if getattr(e, "errno", None) == errno.EADDRINUSE else "")
        raise MobilenetsError(f"cannot listen on {host}:{port}: {getattr(e, 'strerror', None) or e}{hint}") from None
    return sock
