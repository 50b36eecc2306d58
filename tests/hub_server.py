"""A loopback stand-in for the Hugging Face Hub's file endpoint (HEAD/GET .../resolve/...)."""

import hashlib
import http.server
import threading

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    """Serves `files` ({"repo/id/filename": bytes}) the way huggingface_hub expects.

    `corrupt_bodies` makes GET send damaged bytes under the true hash, as a broken
    transfer or mirror would. `gets` counts the GET requests per file.
    """

    def __init__(self, files):
        self.files = dict(files)
        self.corrupt_bodies = False
        self.gets = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _resolve(self):
                # /<org>/<repo>/resolve/<revision>/<filename>
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return None, None
                key = f"{parts[0]}/{parts[1]}/{'/'.join(parts[4:])}"
                return key, server.files.get(key)

            def _headers(self, body):
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()

            def do_HEAD(self):
                key, body = self._resolve()
                if body is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self._headers(body)

            def do_GET(self):
                key, body = self._resolve()
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                server.gets[key] = server.gets.get(key, 0) + 1
                self.send_response(200)
                self._headers(body)
                if server.corrupt_bodies:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
