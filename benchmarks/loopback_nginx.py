"""A one-worker nginx on 127.0.0.1 answering every request with a small V2 inference body.

nginx is the fixed, cheap server under test for the load-generator benchmarks: it costs so
little per request that the generator, not the server, decides the highest rate held. Each
instance runs in a temporary directory with its own configuration, in the foreground
(``daemon off``) as a child process, and is stopped when the context exits.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
V2_BODY = (
    '{"model_name":"iris","outputs":[{"name":"predict","shape":[1,1],'
    '"datatype":"INT64","data":[0]}]}'
)
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0

CONF_TEMPLATE = """\
daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
worker_rlimit_nofile 65536;

events {{
    worker_connections 16384;
    use epoll;
    multi_accept on;
}}

http {{
    access_log off;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server_tokens off;

    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def split_cpus() -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, client CPUs): the last allowed CPU for nginx, the rest for the client.

    Pinning keeps the server and the generator off each other's core, so a figure measures
    one generator core against one server core. With a single CPU nothing is pinned.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return {allowed[-1]}, set(allowed[:-1])


class LoopbackNginx:
    """Context manager: a running nginx; `url` is its base URL."""

    def __init__(self, cpus: set[int] | None = None, port: int | None = None) -> None:
        self.cpus = cpus
        self.port = port or free_port()
        self.root: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackNginx:
        self.root = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        os.chmod(self.root, 0o755)
        conf = self.root / "nginx.conf"
        conf.write_text(CONF_TEMPLATE.format(root=self.root, port=self.port, body=V2_BODY))
        cpus = self.cpus

        def pin() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        self.process = subprocess.Popen(
            [NGINX, "-p", str(self.root), "-c", str(conf), "-e", str(self.root / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=pin,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                stderr = (
                    self.process.stderr.read().decode(errors="replace")
                    if (self.process.stderr)
                    else ""
                )
                self.stop()
                raise RuntimeError(f"nginx exited at start: {stderr.strip()}")
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not answer on {self.url} within {START_TIMEOUT_S:g} s")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/v2/models/iris/ready", timeout=1) as reply:
                return reply.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_S)
        if process is not None and process.stderr is not None:
            process.stderr.close()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> LoopbackNginx:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    with LoopbackNginx() as server:
        request = urllib.request.Request(
            server.url + "/v2/models/iris/infer", data=b"{}", method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            print(server.url, response.status, response.headers["Content-Type"])
            print(response.read().decode())
