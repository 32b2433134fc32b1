"""Read the whole request body, bounded in size and time, before the application sees the request;
then admit at most ``concurrency`` requests with a body into the application at once.

Why: a worker must never wait on a client. Under ``dip-cds serve`` (gunicorn gevent workers) a
slow client costs one greenlet, not a worker; this middleware adds the bounds: the body must
arrive within ``timeout`` seconds in total (else 408), and no more than ``max_bytes`` are read,
for a declared length and for a chunked body alike (else 413). Either way the connection is
closed afterwards, so the rest of an oversized or trickling body is never read.

Admission: a gevent worker accepts every connection at once, so without a limit fifty hook calls
would start together and share one core — each one's prefetch deadline would run while it waits
for the others' CPU. Waiting for admission happens before the application (and its deadline)
starts, as it does in the accept queue of a sync worker; requests without a body (health, discovery,
metrics) are not held back.

The read timeout needs the client socket, which gunicorn passes as ``gunicorn.socket``; other
WSGI servers (which buffer the body themselves, e.g. waitress) get the size bound only.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

TIMED_OUT = "dip_cds.body_timed_out"
TOO_LARGE = "dip_cds.body_too_large"
_CHUNK = 65536

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BufferedBody:
    """WSGI middleware: ``environ["wsgi.input"]`` becomes the complete body in memory."""

    def __init__(self, app: WsgiApp, max_bytes: int, timeout: float, concurrency: int = 0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        # created in the worker process (after the fork, after gevent's patching): cooperative there
        self._admission = threading.BoundedSemaphore(concurrency) if concurrency > 0 else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        declared = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not declared and not chunked:
            return self.app(environ, start_response)  # no body
        length = int(declared) if declared.isdigit() else None
        if length is not None and length > self.max_bytes:
            return self._refuse(environ, start_response, TOO_LARGE)
        try:
            body = self._read(environ, length)
        except TimeoutError:
            return self._refuse(environ, start_response, TIMED_OUT)
        except OSError:  # the client went away mid-body: nothing to answer
            return self._refuse(environ, start_response, TIMED_OUT)
        if body is None:
            return self._refuse(environ, start_response, TOO_LARGE)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = True
        if self._admission is None:
            return self.app(environ, start_response)
        with self._admission:  # the response is built in full inside (JSON bodies, no streaming)
            return self.app(environ, start_response)

    def _read(self, environ: dict[str, Any], length: int | None) -> bytes | None:
        """The body, or None when it is larger than ``max_bytes``; TimeoutError when it did not
        arrive within ``timeout``, OSError when the client stopped before its end."""
        stream = environ["wsgi.input"]
        sock = environ.get("gunicorn.socket")
        # The server's reader blocks until it holds the size asked for, so a client trickling bytes
        # would never trip a per-read timeout: at the deadline a timer stops reading from the
        # socket instead (a greenlet under gevent, a thread under sync workers).
        expired = threading.Event()
        timer = None
        if hasattr(sock, "shutdown"):
            timer = threading.Timer(self.timeout, _stop_reading, (sock, expired))
            timer.daemon = True
            timer.start()
        want = self.max_bytes + 1 if length is None else length
        parts: list[bytes] = []
        size = 0
        try:
            while size < want:
                chunk = stream.read(min(_CHUNK, want - size))
                if not chunk:
                    break
                parts.append(chunk)
                size += len(chunk)
        except Exception as exc:  # noqa: BLE001 - the server's reader: NoMoreData, socket errors
            raise (TimeoutError() if expired.is_set() else OSError(type(exc).__name__)) from None
        finally:
            if timer is not None:
                timer.cancel()
        if expired.is_set():
            raise TimeoutError("request body too slow")
        if length is not None and size < length:
            raise OSError("request body incomplete")
        return None if size > self.max_bytes else b"".join(parts)

    def _refuse(
        self, environ: dict[str, Any], start_response: Callable[..., Any], why: str
    ) -> Iterable[bytes]:
        """Let the app answer (413 / 408 as an OperationOutcome, CORS and metrics as usual) without a
        body, then stop reading from the connection."""
        environ[why] = True
        environ["wsgi.input"] = io.BytesIO(b"")
        environ["CONTENT_LENGTH"] = "0"
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return _CloseAfter(self.app(environ, start_response), environ.get("gunicorn.socket"))


class _CloseAfter:
    """The app's response, then no more reading from the client: the unread rest of the body is
    not drained, and the server closes the connection when it finds no further request."""

    def __init__(self, response: Iterable[bytes], sock: Any) -> None:
        self._response = response
        self._sock = sock

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._response)

    def close(self) -> None:
        close = getattr(self._response, "close", None)
        if close is not None:
            close()
        if hasattr(self._sock, "shutdown"):
            try:
                self._sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass


def _stop_reading(sock: Any, expired: threading.Event) -> None:
    expired.set()
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
