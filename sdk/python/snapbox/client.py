"""Client, Template and Sandbox for snapboxd over its Unix socket or TCP with a bearer token."""
from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import stat
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union


class SnapboxError(Exception):
    """An error reply from snapboxd: `status` (HTTP), `kind` and `message` from its body."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(f"{status} {kind}: {message}")
        self.status = status
        self.kind = kind
        self.message = message


class BadRequest(SnapboxError):
    """400: malformed body, wrong types, missing fields."""


class Unauthorized(SnapboxError):
    """401: missing or wrong bearer token (TCP)."""


class Forbidden(SnapboxError):
    """403: not allowed here: a host path, a link or escape, raw requests that are off."""


class NotFound(SnapboxError):
    """404: unknown route, template or sandbox."""


class Conflict(SnapboxError):
    """409: the name is taken, or the template is still building."""


class TooLarge(SnapboxError):
    """413: the body exceeds the daemon's limit."""


class Unprocessable(SnapboxError):
    """422: a snapshot that does not open, a template that is not ready."""


class LimitReached(SnapboxError):
    """429: too many sandboxes or too much guest memory."""


class InternalError(SnapboxError):
    """500: the host failed."""


class GuestFailed(SnapboxError):
    """502: the guest died or refused; the sandbox is gone."""


class Unavailable(SnapboxError):
    """503: the daemon is draining, or KVM is unusable."""


class GuestTimeout(SnapboxError):
    """504: the guest did not answer in time; the sandbox is gone."""


_KINDS = {
    "bad_request": BadRequest, "unauthorized": Unauthorized, "forbidden": Forbidden,
    "not_found": NotFound,
    "method_not_allowed": BadRequest, "conflict": Conflict, "too_large": TooLarge,
    "unprocessable": Unprocessable, "limit": LimitReached, "internal": InternalError,
    "guest_failed": GuestFailed, "unavailable": Unavailable, "guest_timeout": GuestTimeout,
}


@dataclass
class PoolState:
    """A template's pool: its settings and counters."""
    size: int
    mode: str
    ready: int = 0
    hits: int = 0
    misses: int = 0
    refills: int = 0
    refill_failures: int = 0


@dataclass
class ExecResult:
    """What a command did: exit code or signal, output (bytes) and timings in ns."""
    exit_code: Optional[int]
    signal: Optional[int]
    timed_out: bool
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    timings: Dict[str, int] = field(default_factory=dict)
    counts: Dict[str, int] = field(default_factory=dict)

    @property
    def stdout_text(self) -> str:
        """stdout decoded as UTF-8 (invalid bytes replaced)."""
        return self.stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "ExecResult":
        return cls(d.get("exit_code"), d.get("signal"), bool(d.get("timed_out")),
                   base64.b64decode(d.get("stdout", "")), base64.b64decode(d.get("stderr", "")),
                   bool(d.get("stdout_truncated")), bool(d.get("stderr_truncated")),
                   dict(d.get("timings", {})), dict(d.get("counts", {})))


@dataclass
class RunResult(ExecResult):
    """A one-shot run: the exec result (or ping_ns) plus the restore's profile."""
    restore_profile: Dict[str, Any] = field(default_factory=dict)
    ping_ns: Optional[int] = None

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "RunResult":
        e = ExecResult._from(d)
        return cls(**e.__dict__, restore_profile=dict(d.get("restore_profile", {})),
                   ping_ns=d.get("ping_ns"))


def _q(part: str) -> str:
    """One path segment (a template name, a sandbox id), percent-quoted: 'a?x' never means 'a'."""
    return urllib.parse.quote(str(part), safe="")


def _check_socket_owner(path: str) -> None:
    """Talk only to a socket of this user's or root's: another user's could be an impostor."""
    st = os.stat(path)
    if not stat.S_ISSOCK(st.st_mode):
        raise Unavailable(0, "unavailable", f"{path} is not a socket")
    if st.st_uid not in (os.geteuid(), 0):
        raise Unavailable(0, "unavailable",
                          f"{path} belongs to uid {st.st_uid}, neither you nor root: not connecting")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        _check_socket_owner(self._path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def _default_socket() -> str:
    """snapboxd's own default: the user's runtime directory, else root's /run/snapboxd."""
    rt = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(rt, "snapboxd.sock") if rt else "/run/snapboxd/snapboxd.sock"


class Client:
    """A connection to snapboxd.

    Client() talks to the default Unix socket (only when it is this user's or
    root's); Client(socket_path=P) to another; Client(url="http://HOST:PORT",
    token=T) over TCP with a bearer token, or "https://..." over TLS with the
    server's certificate checked (against cafile, else the system's CAs).
    Each call opens one connection, so a Client may be shared by threads.
    timeout (s) bounds each call; a call with its own timeout_ms waits that
    long plus a margin when that is longer.
    """

    def __init__(self, socket_path: Optional[str] = None, url: Optional[str] = None,
                 token: Optional[str] = None, timeout: float = 120.0,
                 cafile: Optional[str] = None):
        self.socket_path = None if url else (socket_path or _default_socket())
        self.url = urllib.parse.urlsplit(url) if url else None
        if self.url and self.url.scheme not in ("http", "https"):
            raise ValueError(f"url must be http:// or https://, not {url}")
        self.token = token
        self.timeout = timeout
        self._tls = ssl.create_default_context(cafile=cafile) if self.url and self.url.scheme == "https" \
            else None

    def _conn(self, timeout: float) -> http.client.HTTPConnection:
        if self._tls:
            return http.client.HTTPSConnection(self.url.hostname, self.url.port or 443,
                                               timeout=timeout, context=self._tls)
        if self.url:
            return http.client.HTTPConnection(self.url.hostname, self.url.port or 80, timeout=timeout)
        return _UnixConnection(self.socket_path, timeout)

    def request(self, method: str, path: str, body: Any = None, raw: Optional[bytes] = None,
                query: Optional[Mapping[str, str]] = None) -> Any:
        """One HTTP request: JSON (or raw bytes) in, decoded JSON (or bytes) out; errors raise."""
        timeout = self.timeout
        if isinstance(body, dict) and isinstance(body.get("timeout_ms"), int):
            timeout = max(timeout, body["timeout_ms"] / 1000 + 30)
        headers = {}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif raw is not None:
            headers["Content-Type"] = "application/octet-stream"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        conn = self._conn(timeout)
        try:
            try:
                conn.request(method, path, body=data, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                # The daemon may refuse a body (413, 401) before reading it
                # all, then close: its reply is still there to read.
                pass
            resp = conn.getresponse()
            payload = resp.read()
            ctype = resp.getheader("Content-Type", "")
        finally:
            conn.close()
        if resp.status >= 400:
            try:
                err = json.loads(payload)
                kind, msg = err.get("error", "internal"), err.get("message", "")
            except ValueError:
                kind, msg = "internal", payload.decode("utf-8", "replace")
            raise _KINDS.get(kind, SnapboxError)(resp.status, kind, msg)
        if resp.status == 204:
            return None
        if ctype.startswith("application/json"):
            return json.loads(payload)
        if ctype.startswith("text/"):
            return payload.decode()
        return payload

    # --- service ---
    def health(self) -> Dict[str, Any]:
        return self.request("GET", "/v1/health")

    def metrics(self) -> str:
        """The Prometheus text of /v1/metrics."""
        return self.request("GET", "/v1/metrics")

    # --- templates ---
    def register_template(self, name: str, snapshot: str, pool_size: int = 2,
                          mode: str = "cow", instrument: bool = False) -> "Template":
        """Register a snapshot directory under name: snapshot is its path beneath the
        daemon's --snapshot-root. instrument: a test instrument's (raw requests allowed
        when the daemon allows them)."""
        d = self.request("POST", "/v1/templates", {"name": name, "snapshot": snapshot,
                                                   "instrument": instrument,
                                                   "pool": {"size": pool_size, "mode": mode}})
        return Template._from(self, d)

    def build_template(self, name: str, kernel: str, initrd: Optional[str] = None,
                       prewarm: Sequence[str] = (), files: Mapping[str, bytes] = {},
                       pool_size: int = 2, mode: str = "cow", wait: bool = True,
                       timeout: float = 600.0, **boot: Any) -> "Template":
        """Cold-boot kernel (+initrd), write files, run prewarm shell commands, snapshot.

        kernel and initrd are file names in the daemon's --asset-dir, never paths.
        With wait, poll until the build is ready (or raise Unprocessable if it failed).
        boot takes cmdline, mem_mib and boot_timeout_ms.
        """
        build: Dict[str, Any] = {"kernel": kernel, "prewarm": list(prewarm),
                                 "files": [{"path": p, "data": base64.b64encode(b).decode()}
                                           for p, b in files.items()]}
        if initrd:
            build["initrd"] = initrd
        build.update(boot)
        d = self.request("POST", "/v1/templates", {"name": name, "build": build,
                                                   "pool": {"size": pool_size, "mode": mode}})
        t = Template._from(self, d)
        return t.wait(timeout) if wait else t

    def template(self, name: str) -> "Template":
        return Template._from(self, self.request("GET", f"/v1/templates/{_q(name)}"))

    def templates(self) -> List["Template"]:
        return [Template._from(self, d) for d in self.request("GET", "/v1/templates")["templates"]]

    # --- sandboxes ---
    def create(self, template: str, ttl_s: int = 300) -> "Sandbox":
        """Restore a sandbox from template (pooled when a shell is ready)."""
        d = self.request("POST", "/v1/sandboxes", {"template": template, "ttl_s": ttl_s})
        return Sandbox._from(self, d)

    def sandboxes(self) -> List["Sandbox"]:
        return [Sandbox._from(self, d) for d in self.request("GET", "/v1/sandboxes")["sandboxes"]]

    def run(self, template: str, argv: Optional[Sequence[str]] = None, ping: bool = False,
            **exec_opts: Any) -> RunResult:
        """One-shot: restore, exec argv (or ping), destroy, in one request."""
        body: Dict[str, Any] = {"template": template}
        if ping:
            body["ping"] = True
        else:
            body.update(_exec_body(argv or [], **exec_opts))
        return RunResult._from(self.request("POST", "/v1/run", body))


def _exec_body(argv: Sequence[str], env: Union[Mapping[str, str], Sequence[str], None] = None,
               cwd: Optional[str] = None, stdin: Union[bytes, str, None] = None,
               timeout_ms: Optional[int] = None, stdout_cap: Optional[int] = None,
               stderr_cap: Optional[int] = None, user: Optional[str] = None) -> Dict[str, Any]:
    b: Dict[str, Any] = {"argv": list(argv)}
    if env is not None:
        b["env"] = dict(env) if isinstance(env, Mapping) else list(env)
    if cwd is not None:
        b["cwd"] = cwd
    if user is not None:
        b["user"] = user
    if isinstance(stdin, str):
        b["stdin_text"] = stdin
    elif stdin is not None:
        b["stdin"] = base64.b64encode(stdin).decode()
    for k, v in (("timeout_ms", timeout_ms), ("stdout_cap", stdout_cap), ("stderr_cap", stderr_cap)):
        if v is not None:
            b[k] = v
    return b


@dataclass
class Template:
    """A named snapshot with its pool, as the daemon reports it."""
    client: Client = field(repr=False)
    name: str
    snapshot: Optional[str]          # its name beneath the snapshot root, or None (never a host path)
    status: str
    error: Optional[str]
    mem_bytes: int
    pool: PoolState
    inspect: Optional[Dict[str, Any]] = None
    instrument: bool = False

    @classmethod
    def _from(cls, c: Client, d: Mapping[str, Any]) -> "Template":
        return cls(c, d["name"], d.get("snapshot"), d["status"], d.get("error"), d.get("mem_bytes", 0),
                   PoolState(**d["pool"]), d.get("inspect"), bool(d.get("instrument")))

    def refresh(self) -> "Template":
        return self.client.template(self.name)

    def wait(self, timeout: float = 600.0) -> "Template":
        """Poll until ready; raise Unprocessable when the build failed, TimeoutError after timeout."""
        end = time.monotonic() + timeout
        t = self
        while t.status == "building":
            if time.monotonic() > end:
                raise TimeoutError(f"template {self.name} still building after {timeout} s")
            time.sleep(0.2)
            t = t.refresh()
        if t.status == "failed":
            raise Unprocessable(422, "unprocessable", f"build of {self.name} failed: {t.error}")
        return t

    def delete(self) -> None:
        self.client.request("DELETE", f"/v1/templates/{_q(self.name)}")


@dataclass
class Sandbox:
    """A live sandbox. As a context manager it is deleted on exit."""
    client: Client = field(repr=False)
    id: str
    template: str
    restore_profile: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _from(cls, c: Client, d: Mapping[str, Any]) -> "Sandbox":
        return cls(c, d["id"], d["template"], dict(d.get("restore_profile", {})))

    @property
    def pooled(self) -> bool:
        """True when the restore found a ready shell in the template's pool."""
        return bool(self.restore_profile.get("pooled"))

    @property
    def warm(self) -> bool:
        """True when the pool's shell was warm: restored and resumed before the request."""
        return bool(self.restore_profile.get("warm"))

    def exec(self, argv: Sequence[str], **opts: Any) -> ExecResult:
        """Run argv (env, cwd, user, stdin, timeout_ms, stdout_cap, stderr_cap as keywords)."""
        return ExecResult._from(self.client.request("POST", f"/v1/sandboxes/{_q(self.id)}/exec",
                                                    _exec_body(argv, **opts)))

    def ping(self, timeout_ms: Optional[int] = None) -> int:
        """PING the guest; the round trip in ns. timeout_ms None: the service's default."""
        body = {} if timeout_ms is None else {"timeout_ms": timeout_ms}
        return self.client.request("POST", f"/v1/sandboxes/{_q(self.id)}/ping", body)["ping_ns"]

    def request(self, type: int, payload: bytes = b"", timeout_ms: Optional[int] = None) -> bytes:
        """One raw agent-protocol request (probe-guest commands); the reply payload.
        timeout_ms None: the service's default."""
        body = {"type": type, "payload": base64.b64encode(payload).decode()}
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        d = self.client.request("POST", f"/v1/sandboxes/{_q(self.id)}/request", body)
        return base64.b64decode(d["payload"])

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.client.request("PUT", f"/v1/sandboxes/{_q(self.id)}/files", raw=data,
                            query={"path": path, "mode": f"{mode:o}"})

    def read_file(self, path: str) -> bytes:
        return self.client.request("GET", f"/v1/sandboxes/{_q(self.id)}/files", query={"path": path})

    def snapshot(self, template: str, pool_size: int = 2, mode: str = "cow") -> Template:
        """Snapshot this sandbox into a new template; it keeps running."""
        d = self.client.request("POST", f"/v1/sandboxes/{_q(self.id)}/snapshot",
                                {"template": template, "pool": {"size": pool_size, "mode": mode}})
        return Template._from(self.client, d)

    def delete(self) -> None:
        self.client.request("DELETE", f"/v1/sandboxes/{_q(self.id)}")

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.delete()
        except (NotFound, GuestFailed, GuestTimeout):
            pass
