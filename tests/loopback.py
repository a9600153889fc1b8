"""A real HTTP server on loopback for download tests: serves files from memory with byte
ranges, ETag, Last-Modified and If-Range, and injects faults per path: a status code,
a redirect, a connection cut half way, a byte-trickling answer, a lying 206."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"


def etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:16] + '"'


@dataclass
class Loopback:
    files: dict[str, bytes] = field(default_factory=dict)       # "/path" -> content
    status: dict[str, int] = field(default_factory=dict)        # answered with this status, empty body
    redirect: dict[str, str] = field(default_factory=dict)      # answered 302 to this location
    cut_once: set[str] = field(default_factory=set)             # first GET closes half way
    trickle: dict[str, str] = field(default_factory=dict)       # "headers" or "body": sent a byte at a time
    lying_206: dict[str, bytes] = field(default_factory=dict)   # a Range request gets 206 of these bytes instead
    ignore_if_range: bool = False                               # an old server: ranges even when the file changed
    requests: list[tuple[str, str | None]] = field(default_factory=list)   # (path, Range header)
    if_range: list[str | None] = field(default_factory=list)               # the If-Range header of each request
    url: str = ""

    def __post_init__(self) -> None:
        served = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:   # keep test output clean
                pass

            def answer(self, code: int, headers: dict[str, str], body: bytes = b"", cut: bool = False) -> None:
                self.send_response(code)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                if cut:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def do_GET(self) -> None:
                path, wanted = self.path, self.headers.get("Range")
                served.requests.append((path, wanted))
                served.if_range.append(self.headers.get("If-Range"))
                if path in served.status:
                    return self.answer(served.status[path], {})
                if path in served.redirect:
                    return self.answer(302, {"Location": served.redirect[path]})
                content = served.files.get(path)
                if content is None:
                    return self.answer(404, {})
                match = re.fullmatch(r"bytes=(\d+)-", wanted or "")
                if match and path in served.lying_206:
                    content = served.lying_206[path]       # another file's bytes and validators
                validators = {"ETag": etag(content), "Last-Modified": LAST_MODIFIED, "Accept-Ranges": "bytes"}
                condition = self.headers.get("If-Range")
                if condition and condition not in (validators["ETag"], LAST_MODIFIED) and not served.ignore_if_range \
                        and path not in served.lying_206:
                    match = None                            # the file changed: all of it
                start = int(match.group(1)) if match else 0
                if match and start >= len(content):
                    return self.answer(416, {"Content-Range": f"bytes */{len(content)}"})
                code, headers = 200, dict(validators)
                if match:
                    code, headers["Content-Range"] = 206, f"bytes {start}-{len(content) - 1}/{len(content)}"
                body = content[start:]
                if path in served.trickle:
                    return self.send_slowly(code, headers, body, served.trickle[path])
                cut = path in served.cut_once
                served.cut_once.discard(path)
                self.answer(code, headers, body, cut)

            def send_slowly(self, code: int, headers: dict[str, str], body: bytes, part: str) -> None:
                head = f"HTTP/1.1 {code} OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                head = (head + f"Content-Length: {len(body)}\r\n\r\n").encode()
                slow = head + body if part == "headers" else body
                if part == "body":
                    self.wfile.write(head)
                self.close_connection = True
                try:
                    for index in range(len(slow)):
                        self.wfile.write(slow[index:index + 1])
                        self.wfile.flush()
                        time.sleep(0.05)
                except OSError:   # the client hung up
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
