"""The snapboxd API on the probe guest: every endpoint and error status, hostile guests, load, drain, restart."""
import json
import os
import shutil
import signal
import struct
import subprocess
import threading
import time

import pytest

import snapbox
from conftest import Daemon, free_port, raw, scaled

PROTO_T_SPIN = 0x0024
PROTO_T_FAULT = 0x0025
FAULT_TRIPLE = 1
FAULT_SPIN_FOREVER = 8


def fault(kind, arg=0):
    return struct.pack("<IIQ", kind, 0, arg)


def wait_pool(c, name, ready, timeout=20):
    end = time.monotonic() + scaled(timeout)
    while c.template(name).pool.ready < ready:
        assert time.monotonic() < end, "the pool never filled"
        time.sleep(0.05)


def test_health(daemon):
    h = daemon.client().health()
    assert h["status"] == "ok" and h["sandboxes"] == 0 and h["templates"] == 0
    assert h["kvm_backend"] in ("hardware", "pvm")


def test_socket_is_private(daemon):
    assert os.stat(daemon.sock).st_mode & 0o777 == 0o600


def test_template_lifecycle(probe, probe_snapshot):
    t = probe.template("probe")
    assert t.status == "ready" and t.mem_bytes == 64 << 20 and t.pool.size == 2
    assert t.inspect["mem_bytes"] == 64 << 20
    assert [x.name for x in probe.templates()] == ["probe"]
    with pytest.raises(snapbox.Conflict):
        probe.register_template("probe", os.path.basename(probe_snapshot))
    t.delete()
    with pytest.raises(snapbox.NotFound):
        probe.template("probe")
    with pytest.raises(snapbox.NotFound):
        t.delete()


@pytest.mark.parametrize("body,status", [
    (b"not json", 400),
    (b'{"name": "x"}', 400),                                   # neither snapshot nor build
    (b'{"name": 5, "snapshot": "s"}', 400),                    # wrong type
    (b'{"name": "-bad", "snapshot": "s"}', 400),               # bad name
    (b'{"name": "x", "snapshot": "/tmp"}', 400),               # a host path, never
    (b'{"name": "x", "snapshot": "no-such-snapshot"}', 404),   # not beneath the root
    (b'{"name": "x", "snapshot": "../.."}', 403),              # out of the root
    (b'{"name": "x", "snapshot": "s", "instrument": 1}', 400),
    (b'{"name": "x", "snapshot": "s", "build": {"kernel": "k"}}', 400),
    (b'{"name": "x", "build": {}}', 400),
    (b'{"name": "x", "build": {"kernel": "/etc/shadow"}}', 400),
    (b'{"name": "x", "build": {"kernel": "probe.elf", "initrd": "../x"}}', 400),
    (b'{"name": "x", "build": {"kernel": "probe.elf", "boot_timeout_ms": -1}}', 400),
    (b'{"name": "x", "build": {"kernel": "probe.elf", "mem_mib": 1000000}}', 400),
    (b'{"name": "x", "build": {"kernel": "no-such-asset"}}', 404),
    (b'{"name": "x", "build": {"kernel": "probe.elf", "prewarm": ["true"' + b', "true"' * 32 + b']}}', 400),
    (b'{"name": "x", "snapshot": "s", "pool": {"size": 99}}', 400),
    (b'{"name": "x", "snapshot": "s", "pool": {"mode": "fast"}}', 400),
    (b'[1, 2]', 400),
])
def test_template_create_errors(daemon, body, status):
    st, err = raw(daemon, "POST", "/v1/templates", body)
    assert st == status, err
    assert set(err) == {"error", "message"}


def test_unknown_routes_and_methods(daemon):
    assert raw(daemon, "GET", "/v2/health")[0] == 404
    assert raw(daemon, "GET", "/v1/sandboxes/sb-nope")[0] == 404
    assert raw(daemon, "POST", "/v1/health")[1]["error"] == "method_not_allowed"
    assert raw(daemon, "PUT", "/v1/templates")[0] == 405


def test_sandbox_lifecycle_pooled(probe):
    wait_pool(probe, "probe", 2)
    with probe.create("probe") as sb:
        assert sb.id.startswith("sb-")
        assert sb.pooled
        assert sb.restore_profile["restore_to_ready_ns"] > 0
        assert sb.ping() > 0
        assert [s.id for s in probe.sandboxes()] == [sb.id]
        assert probe.health()["sandboxes"] == 1
    with pytest.raises(snapbox.NotFound):
        sb.ping()
    assert probe.sandboxes() == []


@pytest.mark.parametrize("body,status", [
    (b'{"template": "nope"}', 404),
    (b'{}', 400),
    (b'{"template": 5}', 400),
    (b'{"template": "probe", "ttl_s": "long"}', 400),
    (b'{"template": "probe", "ttl_s": -1}', 400),
    (b'{"template": "probe", "ttl_s": 0}', 400),                # no sandbox lives for ever
    (b'{"template": "probe", "ttl_s": 86401}', 400),
    (b'{"template": ', 400),
])
def test_sandbox_create_errors(probe, daemon, body, status):
    assert raw(daemon, "POST", "/v1/sandboxes", body)[0] == status


def test_ttl_reaps(probe):
    sb = probe.create("probe", ttl_s=1)
    end = time.monotonic() + scaled(5)
    while probe.sandboxes():
        assert time.monotonic() < end, "TTL did not reap the sandbox"
        time.sleep(0.1)
    with pytest.raises(snapbox.NotFound):
        sb.ping()


def test_oversized_bodies(probe, daemon):
    big = b"x" * (6 << 20)
    st, err = raw(daemon, "POST", "/v1/sandboxes", big)
    assert st == 413 and err["error"] == "too_large"
    with probe.create("probe") as sb:
        # Within --max-body but beyond what one file may hold.
        with pytest.raises(snapbox.TooLarge):
            sb.write_file("/x", b"y" * (4186112 + 1))


def test_exec_on_the_probe_is_refused_and_the_sandbox_lives(probe):
    with probe.create("probe") as sb:
        with pytest.raises(snapbox.SnapboxError) as e:
            sb.exec(["true"])
        assert e.value.status in (422, 500, 502)
        assert sb.ping() > 0


@pytest.mark.parametrize("body", [
    {"argv": []}, {"argv": "true"}, {"argv": [1]}, {"argv": ["a"], "cwd": "rel"},
    {"argv": ["a"], "stdin": "%%%"}, {"argv": ["a"], "timeout_ms": -5}, {"argv": ["a"], "env": 3},
    {"argv": ["a"], "timeout_ms": 3600001},                   # past an hour: past --max-ttl
    {"argv": ["a"], "user": 1000}, {"argv": ["a"], "user": ""},
])
def test_exec_validation(probe, daemon, body):
    with probe.create("probe") as sb:
        st, err = raw(daemon, "POST", f"/v1/sandboxes/{sb.id}/exec", json.dumps(body).encode())
        assert st == 400, err


def test_files_need_an_absolute_path(probe, daemon):
    with probe.create("probe") as sb:
        assert raw(daemon, "GET", f"/v1/sandboxes/{sb.id}/files?path=rel")[0] == 400
        assert raw(daemon, "GET", f"/v1/sandboxes/{sb.id}/files")[0] == 400


def test_triple_fault_is_contained(probe):
    wait_pool(probe, "probe", 2)
    victim, neighbour = probe.create("probe"), probe.create("probe")
    with pytest.raises(snapbox.GuestFailed):
        victim.request(PROTO_T_FAULT, fault(FAULT_TRIPLE))
    with pytest.raises(snapbox.NotFound):
        victim.ping()
    assert neighbour.ping() > 0
    assert probe.health()["status"] == "ok"
    neighbour.delete()


def test_guest_that_never_answers_times_out(probe):
    with probe.create("probe") as sb:
        with pytest.raises(snapbox.GuestTimeout):
            sb.request(PROTO_T_FAULT, fault(FAULT_SPIN_FOREVER), timeout_ms=500)
    assert probe.sandboxes() == []


def test_one_shot_run_is_pooled_and_leaves_nothing(probe):
    wait_pool(probe, "probe", 2)
    r = probe.run("probe", ping=True)
    assert r.ping_ns > 0 and r.restore_profile["pooled"] is True
    # A refill's shell (the newest) is warm: restored and resumed ahead.
    assert r.restore_profile["warm"] is True
    assert r.timings["total_ns"] >= r.timings["restore_ns"]
    assert probe.sandboxes() == [] and probe.health()["sandboxes"] == 0


def test_limits(tmp_path, probe_snapshot):
    d = Daemon(str(tmp_path), "--max-sandboxes", "1", "--template", f"p={probe_snapshot}")
    try:
        c = d.client()
        a = c.create("p")
        with pytest.raises(snapbox.LimitReached):
            c.create("p")
        with pytest.raises(snapbox.LimitReached):
            c.run("p", ping=True)
        a.delete()
        # A deleted VM is destroyed off the request path and counts until then.
        end = time.monotonic() + scaled(5)
        while True:
            try:
                assert c.run("p", ping=True).ping_ns > 0
                break
            except snapbox.LimitReached:
                assert time.monotonic() < end, "the deleted sandbox never released its slot"
                time.sleep(0.05)
    finally:
        assert d.stop() == 0


def test_metrics(probe, daemon):
    probe.run("probe", ping=True)
    raw(daemon, "POST", "/v1/sandboxes", b"{")
    text = probe.metrics()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"}
    assert names and all(n.startswith("snapbox_") for n in names)
    assert 'snapbox_restores_total{template="probe",tenant="local",mode="cow"' in text
    assert 'snapbox_errors_total{kind="bad_request"} 1' in text
    assert "snapbox_restore_to_ready_seconds_count 1" in text
    assert "snapbox_run_seconds_count 1" in text
    assert "snapbox_daemon_rss_bytes" in text
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool is missing: make deps installs Debian's prometheus")
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_tcp_needs_the_token(tmp_path, probe_snapshot):
    token = "t0ken-" + "x" * 20
    port = free_port()
    d = Daemon(str(tmp_path), tcp=f"127.0.0.1:{port}", token=token)
    try:
        url = f"http://127.0.0.1:{port}"
        assert snapbox.Client(url=url, token=token).health()["status"] == "ok"
        for bad in (None, "wrong-" + "x" * 20, token + "x"):
            with pytest.raises(snapbox.Unauthorized):
                snapbox.Client(url=url, token=bad).health()
        assert d.logtext().count("missing or wrong bearer token") == 3
        assert token not in d.logtext()
    finally:
        d.stop()


def test_tcp_without_a_token_is_refused(tmp_path):
    p = subprocess.run([os.environ.get("SNAPBOXD", "build/snapboxd"), "--listen", "tcp:127.0.0.1:1"],
                       capture_output=True)
    assert p.returncode == 2 and b"token" in p.stderr


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def test_load_eight_clients(probe, daemon):
    """8 clients x 12 one-shot runs: no errors, no fd leak, RSS within 16 MiB."""
    pid = daemon.proc.pid
    for _ in range(4):                     # warm: pools, caches, thread stacks
        probe.run("probe", ping=True)
    wait_pool(probe, "probe", 2)           # a ready shell holds descriptors: compare like with like
    time.sleep(0.2)
    fds, rss = fd_count(pid), rss_kib(pid)
    errors = []

    def client():
        c = daemon.client()
        for _ in range(12):
            try:
                assert c.run("probe", ping=True).ping_ns > 0
            except Exception as e:         # noqa: BLE001 - counted, then asserted
                errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(scaled(120))
    assert errors == []
    assert probe.health()["sandboxes"] == 0
    wait_pool(probe, "probe", 2)
    # Closed connections end on the daemon's side a moment after the client's.
    end = time.monotonic() + scaled(5)
    while fd_count(pid) != fds and time.monotonic() < end:
        time.sleep(0.05)
    assert fd_count(pid) == fds, [os.readlink(f"/proc/{pid}/fd/{f}") for f in os.listdir(f"/proc/{pid}/fd")]
    assert rss_kib(pid) - rss < 16 * 1024, f"RSS {rss} -> {rss_kib(pid)} KiB"


def test_drain_on_sigterm(probe, daemon):
    sb = probe.create("probe")
    result = {}

    def spin():
        try:
            result["reply"] = sb.request(PROTO_T_SPIN, struct.pack("<I", 1500), timeout_ms=int(scaled(10000)))
        except Exception as e:             # noqa: BLE001
            result["error"] = e

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.4)
    daemon.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    with pytest.raises(snapbox.Unavailable):
        probe.health()
    t.join(scaled(20))
    assert "reply" in result, result
    assert daemon.proc.wait(scaled(20)) == 0
    assert not os.path.exists(daemon.sock)


def test_restart_after_kill_is_clean(tmp_path, probe_snapshot):
    d = Daemon(str(tmp_path), "--template", f"p={probe_snapshot}")
    d.client().create("p")
    old = d.proc.pid
    assert [n for n in os.listdir("/dev/shm") if n.startswith(f"snapboxd-{old}-")]
    d.stop(signal.SIGKILL)
    assert os.path.exists(d.sock)          # the stale socket is left behind
    junk = os.path.join(str(tmp_path), "state", "templates", ".half.tmp-1-abcd")
    os.makedirs(junk)
    open(os.path.join(junk, "memory"), "w").close()
    d2 = Daemon(str(tmp_path), "--template", f"p={probe_snapshot}")
    try:
        assert d2.client().run("p", ping=True).ping_ns > 0
        assert not os.path.exists(junk)
        assert "stale socket" in d2.logtext()
        # The killed daemon's cow templates in /dev/shm are RAM: the next start frees them.
        assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"snapboxd-{old}-")]
    finally:
        assert d2.stop() == 0


def test_second_daemon_on_a_live_socket_is_refused(daemon):
    p = subprocess.run([os.environ.get("SNAPBOXD", "build/snapboxd"), "--socket", daemon.sock,
                        "--state-dir", daemon.workdir + "/s2"], capture_output=True, timeout=scaled(20))
    assert p.returncode == 4 and b"another daemon" in p.stderr
    assert daemon.client().health()["status"] == "ok"


def test_build_and_snapshot_templates(daemon, probe_snapshot):
    c = daemon.client()
    probe_elf = os.environ.get("SNAPBOX_PROBE", "build/guest/probe.elf")
    t = c.build_template("built", kernel=os.path.basename(probe_elf), mem_mib=32, pool_size=1)
    assert t.status == "ready" and t.mem_bytes == 32 << 20
    assert t.snapshot is None                # a built template's directory is never shown
    tdir = os.path.join(daemon.workdir, "state", "templates")
    snap = [os.path.join(tdir, n) for n in os.listdir(tdir) if n.startswith("built.")]
    assert len(snap) == 1 and os.path.isdir(snap[0])
    assert t.refresh().inspect is None or t.refresh().inspect.get("kernel") == "probe.elf"
    with c.create("built") as sb:
        t2 = sb.snapshot("saved", pool_size=0)
        assert t2.status == "ready"
        assert sb.ping() > 0                 # it runs on after the snapshot
    r = c.run("saved", ping=True)
    assert r.ping_ns > 0 and r.restore_profile["pooled"] is False
    with open(os.path.join(daemon.workdir, "assets", "junk"), "wb") as f:
        f.write(b"not a kernel")
    bad = c.build_template("broken", kernel="junk", wait=False)
    with pytest.raises(snapbox.Unprocessable):
        bad.wait(scaled(30))
    t.delete()
    assert not os.path.exists(snap[0])
