"""Fixtures: a real snapboxd on a private Unix socket, and a probe-guest snapshot to serve.

Environment (make test sets these): SNAPBOXD (the daemon), SNAPBOX_CLI (to snapshot
the probe), SNAPBOX_PROBE (the probe guest ELF); for the Linux tests SNAPBOX_KERNEL
and SNAPBOX_INITRD. SNAPBOX_KVM_REQUIRED=1 turns a missing requirement into a failure.
"""
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import snapbox  # noqa: E402

# Every deadline of these tests, times SNAPBOX_TIME_SCALE (the lab sets it; snapboxd
# reads it too, for its own defaults).
SCALE = float(os.environ.get("SNAPBOX_TIME_SCALE", "1"))


def scaled(seconds):
    """A deadline of `seconds` on a quiet host, scaled (float seconds; int ms callers: int())."""
    return seconds * SCALE


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))


def _need(var, default):
    path = os.environ.get(var, default)
    if not os.path.exists(path):
        msg = f"{var}={path} does not exist"
        if os.environ.get("SNAPBOX_KVM_REQUIRED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def kvm_or_skip():
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as e:
        if os.environ.get("SNAPBOX_KVM_REQUIRED") == "1":
            pytest.fail(f"/dev/kvm: {e} (SNAPBOX_KVM_REQUIRED=1)")
        pytest.skip(f"/dev/kvm: {e}")


# Where the session's snapshots live: every test daemon's --snapshot-root.
SNAPSHOT_ROOT = None


def put_asset(workdir, src, name=None):
    """Copy src into the daemon's asset directory (workdir/assets) as name: assets are
    regular files there, never links. Returns the name a build gives."""
    d = os.path.join(workdir, "assets")
    os.makedirs(d, exist_ok=True)
    name = name or os.path.basename(src)
    if not os.path.exists(os.path.join(d, name)):
        shutil.copyfile(src, os.path.join(d, name))
    return name


class Daemon:
    """One snapboxd process; stopped with SIGTERM at teardown.

    By default it runs as the tests need it: the probe guest in its asset
    directory (workdir/assets), the session's snapshots as its snapshot root,
    and raw requests on (the probe is a test instrument). roots=False starts
    it with none of these, as a default deployment would be."""

    def __init__(self, workdir, *args, tcp=None, token=None, tokens=None, roots=True, expect_up=True,
                 nofile=None):
        self.workdir = workdir
        self.sock = os.path.join(workdir, "d.sock")
        self.log = os.path.join(workdir, "d.log")
        cmd = [_need("SNAPBOXD", os.path.join(BUILD, "snapboxd")),
               "--state-dir", os.path.join(workdir, "state"), *args]
        if not tcp:
            cmd += ["--socket", self.sock]
        if roots:
            probe = os.environ.get("SNAPBOX_PROBE", os.path.join(BUILD, "guest", "probe.elf"))
            if os.path.exists(probe):
                put_asset(workdir, probe)
            os.makedirs(os.path.join(workdir, "assets"), exist_ok=True)
            cmd += ["--asset-dir", os.path.join(workdir, "assets"), "--allow-raw-requests"]
            if SNAPSHOT_ROOT:
                cmd += ["--snapshot-root", SNAPSHOT_ROOT]
        if tcp:
            tf = os.path.join(workdir, "token")
            with open(os.open(tf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                if tokens:                 # tenants: NAME TOKEN per line
                    f.write("".join(f"{n} {t}\n" for n, t in tokens.items()))
                else:
                    f.write(token + "\n")
            cmd += ["--listen", f"tcp:{tcp}", "--token-file", tf]
        self.tcp = tcp
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     preexec_fn=limit)
        if expect_up:
            self.wait_up()

    def wait_up(self, timeout=20):
        end = time.monotonic() + scaled(timeout)
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"snapboxd exited {self.proc.returncode}: {self.logtext()}")
            try:
                s = socket.create_connection(self.tcp.rsplit(":", 1)) if self.tcp else socket.socket(socket.AF_UNIX)
                if not self.tcp:
                    s.connect(self.sock)
                s.close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("snapboxd did not start: " + self.logtext())

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def client(self, **kw):
        kw.setdefault("timeout", scaled(120.0))
        return snapbox.Client(socket_path=self.sock, **kw)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def raw(daemon, method, path, body=b"", headers=None):
    """A raw HTTP exchange on the daemon's Unix socket: (status, parsed JSON or bytes)."""
    c = snapbox.client._UnixConnection(daemon.sock, scaled(30))
    try:
        c.request(method, path, body=body, headers=headers or {})
    except BrokenPipeError:
        pass                               # refused early: the reply is still readable
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data


@pytest.fixture(scope="session")
def workdir():
    global SNAPSHOT_ROOT
    d = tempfile.mkdtemp(prefix="snapbox-api-")
    SNAPSHOT_ROOT = os.path.join(d, "snapshots")
    os.makedirs(SNAPSHOT_ROOT)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def probe_snapshot(workdir):
    """A snapshot of the probe guest, made once per session with the CLI."""
    kvm_or_skip()
    cli = _need("SNAPBOX_CLI", os.path.join(BUILD, "snapbox"))
    probe = _need("SNAPBOX_PROBE", os.path.join(BUILD, "guest", "probe.elf"))
    out = os.path.join(SNAPSHOT_ROOT, "probe-snap")
    subprocess.run([cli, "snapshot", "--kernel", probe, "--mem", "64M", "--out", out], check=True,
                   stdout=subprocess.DEVNULL)
    return out


@pytest.fixture
def daemon(tmp_path, workdir):
    d = Daemon(str(tmp_path), "--max-body", "5M", "--max-sandboxes", "32")
    yield d
    d.stop()


@pytest.fixture
def probe(daemon, probe_snapshot):
    """The daemon with the probe snapshot registered as template "probe" (a test instrument)."""
    c = daemon.client()
    c.register_template("probe", os.path.relpath(probe_snapshot, SNAPSHOT_ROOT), pool_size=2,
                        instrument=True)
    return c
