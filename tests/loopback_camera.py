"""An MJPEG camera over HTTP on 127.0.0.1 that a test can stop, silence and restart.

It serves what an IP camera serves (``multipart/x-mixed-replace`` JPEGs), so
OpenCV reads it through FFmpeg exactly as it would read the real thing.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO

import cv2
import numpy as np

BOUNDARY = b"frame"


def card_jpeg(width: int = 320, height: int = 240) -> bytes:
    """A JPEG with some structure, so it is not a blank frame."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 1] = np.linspace(0, 255, width, dtype=np.uint8)
    cv2.rectangle(image, (40, 40), (width - 40, height - 40), (255, 255, 255), 4)
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok
    return jpeg.tobytes()


class MjpegCamera:
    """A loopback MJPEG stream: ``stop`` drops every client, ``silence`` hangs them."""

    def __init__(self, fps: float = 20.0, port: int = 0) -> None:
        self.fps = fps
        self.port = port
        self.jpeg = card_jpeg()
        self.frames_sent = 0
        self._silent = threading.Event()
        self._stopped = threading.Event()
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> None:
        """Listen (again, on the same port) and stream to every client."""
        self._stopped.clear()
        self._silent.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Close the listening socket and every stream, as an unplugged camera."""
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
            self._clients.clear()

    def silence(self) -> None:
        """Keep the connections open but send nothing: the client's read hangs."""
        self._silent.set()

    def resume(self) -> None:
        self._silent.clear()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with camera._lock:
                    camera._clients.append(self.connection)
                self.send_response(200)
                self.send_header(
                    "Content-Type",
                    f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}",
                )
                self.end_headers()
                with contextlib.suppress(OSError):
                    camera._stream(self.wfile)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _stream(self, out: BinaryIO) -> None:
        period = 1.0 / self.fps
        part = (
            b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: %d\r\n\r\n" % len(self.jpeg) + self.jpeg + b"\r\n"
        )
        while not self._stopped.is_set():
            if not self._silent.is_set():
                out.write(part)
                self.frames_sent += 1
            time.sleep(period)
