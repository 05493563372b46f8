"""snapboxd's trust boundaries (docs/hardening.md, "The service"): no host path from a
client, raw agent requests only for instruments, a private state directory, deletes that
never follow a link, and an SDK that checks whom it talks to and quotes what it sends."""
import json
import signal
import os
import resource
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

import snapbox
from conftest import BUILD, Daemon, _need, free_port, raw, scaled

PROTO_T_HASH = 0x0022
PROTO_T_SPIN = 0x0024


def snapboxd(*args, timeout=20):
    """Run snapboxd expecting it to refuse to start: (exit status, its output)."""
    p = subprocess.run([_need("SNAPBOXD", os.path.join(BUILD, "snapboxd")), *args],
                       capture_output=True, timeout=scaled(timeout))
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def test_shadow_exploit_is_refused_and_nothing_reads_it(daemon, probe):
    """The exploit of the review: probe as kernel, /etc/shadow as initrd, HASH to read it."""
    c = daemon.client()
    for initrd in ("/etc/shadow", "../../../../etc/shadow", "/proc/self/root/etc/shadow"):
        with pytest.raises(snapbox.BadRequest):
            c.build_template("exploit", kernel="probe.elf", initrd=initrd, wait=False)
    # A link planted in the asset directory is not followed either.
    os.symlink("/etc/shadow", os.path.join(daemon.workdir, "assets", "shadow"))
    with pytest.raises(snapbox.Forbidden):
        c.build_template("exploit", kernel="probe.elf", initrd="shadow", wait=False)
    assert [t.name for t in c.templates()] == ["probe"]
    # And a sandbox whose template is not an instrument cannot send the probe's HASH.
    c.build_template("plain", kernel="probe.elf", mem_mib=32, pool_size=0)
    with c.create("plain") as sb:
        with pytest.raises(snapbox.Forbidden):
            sb.request(PROTO_T_HASH, struct.pack("<QQ", 0, 1))


def test_a_fifo_asset_is_refused_at_once(daemon):
    os.mkfifo(os.path.join(daemon.workdir, "assets", "fifo"))
    t0 = time.monotonic()
    with pytest.raises(snapbox.Forbidden):
        daemon.client().build_template("f", kernel="fifo", wait=False)
    assert time.monotonic() - t0 < scaled(10)
    assert daemon.client().health()["status"] == "ok"


def test_no_roots_no_paths(tmp_path, probe_snapshot):
    """A daemon without --asset-dir and --snapshot-root takes neither builds nor registrations."""
    d = Daemon(str(tmp_path), roots=False)
    try:
        c = d.client()
        with pytest.raises(snapbox.Forbidden):
            c.build_template("b", kernel="probe.elf", wait=False)
        with pytest.raises(snapbox.Forbidden):
            c.register_template("r", os.path.basename(probe_snapshot))
    finally:
        assert d.stop() == 0


def test_registration_stays_beneath_the_snapshot_root(daemon, probe_snapshot):
    c = daemon.client()
    link = os.path.join(os.path.dirname(probe_snapshot), "link-snap")
    if not os.path.lexists(link):
        os.symlink(probe_snapshot, link)
    with pytest.raises(snapbox.Forbidden):
        c.register_template("l", "link-snap")
    with pytest.raises(snapbox.Forbidden):
        c.register_template("u", "../" + os.path.basename(os.path.dirname(probe_snapshot)) + "/probe-snap")
    with pytest.raises(snapbox.BadRequest):
        c.register_template("a", probe_snapshot)
    t = c.register_template("ok", os.path.basename(probe_snapshot), pool_size=0)
    assert t.snapshot == os.path.basename(probe_snapshot)


def test_replies_carry_no_host_paths(daemon, probe, probe_snapshot):
    c = daemon.client()
    c.build_template("built", kernel="probe.elf", mem_mib=32, pool_size=0)
    with c.create("built") as sb:
        sb.snapshot("saved", pool_size=0)
    text = json.dumps([raw(daemon, "GET", f"/v1/templates/{n}")[1] for n in ("probe", "built", "saved")])
    text += json.dumps(raw(daemon, "GET", "/v1/templates")[1])
    for secret in (daemon.workdir, os.path.dirname(probe_snapshot), "/proc/self", BUILD):
        assert secret not in text, f"{secret} in a reply: {text}"
    assert raw(daemon, "GET", "/v1/templates/built")[1]["inspect"]["kernel"] == "probe.elf"


def test_raw_requests_are_off_unless_allowed(tmp_path, probe_snapshot):
    d = Daemon(str(tmp_path), "--template", f"p={probe_snapshot}", roots=False)
    try:
        with d.client().create("p") as sb:
            with pytest.raises(snapbox.Forbidden):
                sb.request(PROTO_T_HASH, struct.pack("<QQ", 0, 1))
            assert sb.ping() > 0
    finally:
        assert d.stop() == 0


def test_snapshot_during_a_request_is_a_conflict(probe):
    with probe.create("probe") as sb:
        t = threading.Thread(target=lambda: sb.request(PROTO_T_SPIN, struct.pack("<I", int(scaled(1500))),
                                                       timeout_ms=int(scaled(10000))))
        t.start()
        time.sleep(scaled(0.3))
        with pytest.raises(snapbox.Conflict):
            sb.snapshot("during", pool_size=0)
        t.join(scaled(20))
        assert sb.snapshot("after", pool_size=0).status == "ready"


def test_planted_state_directories_refuse_the_start(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "templates").mkdir()
    (victim / "templates" / "precious").write_text("keep")
    sock = str(tmp_path / "d.sock")
    link = tmp_path / "state-link"
    link.symlink_to(victim)
    st, out = snapboxd("--socket", sock, "--state-dir", str(link))
    assert st == 2 and "symlink" in out, out
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    (open_dir / "templates").mkdir()
    (open_dir / "templates" / "precious").write_text("keep")
    st, out = snapboxd("--socket", sock, "--state-dir", str(open_dir))
    assert st == 2 and "private" in out, out
    assert (open_dir / "templates" / "precious").exists()
    if os.geteuid() == 0:
        os.chown(victim, 65534, 65534)
        st, out = snapboxd("--socket", sock, "--state-dir", str(victim))
        assert st == 2 and "uid 65534" in out, out
    assert (victim / "templates" / "precious").read_text() == "keep"
    # A socket directory others may enter is refused too.
    st, out = snapboxd("--socket", str(open_dir / "d.sock"), "--state-dir", str(tmp_path / "s"))
    assert st == 2 and "socket's directory" in out, out
    st, out = snapboxd("--socket", sock, "--listen", "tcp:127.0.0.1:1", "--token-file", "/dev/null")
    assert st == 2 and "one or the other" in out, out


def test_start_removes_a_planted_link_not_its_target(tmp_path, probe_snapshot):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep")
    tdir = tmp_path / "state" / "templates"
    tdir.mkdir(parents=True, mode=0o700)
    (tmp_path / "state").chmod(0o700)
    (tdir / "planted").symlink_to(victim)
    d = Daemon(str(tmp_path), "--template", f"p={probe_snapshot}")
    try:
        assert not os.path.lexists(tdir / "planted")
        assert (victim / "precious").read_text() == "keep"
    finally:
        assert d.stop() == 0


def test_sdk_refuses_a_socket_of_another_user(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to give a socket to another uid")
    path = str(tmp_path / "impostor.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(1)
    os.chown(path, 65534, 65534)
    try:
        with pytest.raises(snapbox.Unavailable, match="uid 65534"):
            snapbox.Client(socket_path=path, timeout=scaled(5)).health()
    finally:
        s.close()


def test_sdk_quotes_names_and_ids(probe):
    with pytest.raises(snapbox.NotFound):
        probe.template("probe?x")
    with pytest.raises(snapbox.NotFound):
        snapbox.Template(probe, "probe?x", None, "ready", None, 0, None).delete()
    with pytest.raises(snapbox.NotFound):
        snapbox.Template(probe, "../sandboxes", None, "ready", None, 0, None).delete()
    assert probe.template("probe").status == "ready"


def test_token_file_open_to_others_is_refused(tmp_path):
    tf = tmp_path / "token"
    tf.write_text("t0ken-" + "x" * 20 + "\n")
    tf.chmod(0o644)
    st, out = snapboxd("--listen", "tcp:127.0.0.1:1", "--token-file", str(tf),
                       "--state-dir", str(tmp_path / "s"))
    assert st == 2 and "open to others" in out, out


def test_builds_and_templates_count_against_the_limits(tmp_path, probe_snapshot):
    # p's pool of 2 shells holds 128M of the 256M.
    d = Daemon(str(tmp_path), "--max-sandboxes", "1", "--max-guest-mem", "256M", "--max-templates", "2",
               "--template", f"p={probe_snapshot}")
    try:
        c = d.client()
        with pytest.raises(snapbox.LimitReached):       # a build's guest memory counts
            c.build_template("big", kernel="probe.elf", mem_mib=256, wait=False)
        with c.create("p"):
            with pytest.raises(snapbox.LimitReached):   # a build is a VM: it takes a sandbox slot
                c.build_template("b", kernel="probe.elf", mem_mib=32, wait=False)
        end = time.monotonic() + scaled(5)             # the sandbox's VM goes after its reply
        while c.health()["reserved"] and time.monotonic() < end:
            time.sleep(0.05)
        assert c.build_template("b", kernel="probe.elf", mem_mib=32, pool_size=0).status == "ready"
        with pytest.raises(snapbox.LimitReached):       # p and b: the template limit
            c.build_template("c", kernel="probe.elf", mem_mib=32, wait=False)
    finally:
        assert d.stop() == 0


def test_log_lines_name_the_peer_and_cannot_be_forged(daemon):
    st, _ = raw(daemon, "GET", "/v1/x%0asnapboxd:%20forged%1b[31m%20200%200.1%20ms")
    assert st == 404
    log = daemon.logtext()
    assert "unix local GET /v1/x\\x0asnapboxd:\\x20forged\\x1b[31m\\x20200\\x200.1\\x20ms 404" in log, log
    assert not any(line.startswith("snapboxd: forged") for line in log.splitlines())


def test_https_with_a_checked_certificate(tmp_path):
    if not shutil.which("openssl"):
        pytest.fail("openssl is missing (make deps installs it)")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    os.chmod(key, 0o644)
    token, port = "t0ken-" + "y" * 20, free_port()
    tf = tmp_path / "token"
    tf.write_text(token + "\n")
    tf.chmod(0o600)
    st, out = snapboxd("--listen", f"tcp:127.0.0.1:{port}", "--token-file", str(tf),
                       "--tls-cert", cert, "--tls-key", key, "--state-dir", str(tmp_path / "s"))
    assert st == 2 and "open to others" in out, out
    os.chmod(key, 0o600)
    d = Daemon(str(tmp_path), "--tls-cert", cert, "--tls-key", key, tcp=f"127.0.0.1:{port}",
               token=token, roots=False)
    try:
        url = f"https://127.0.0.1:{port}"
        assert snapbox.Client(url=url, token=token, cafile=cert).health()["status"] == "ok"
        with pytest.raises(ssl.SSLError):          # not signed by a CA this client trusts
            snapbox.Client(url=url, token=token, timeout=scaled(10)).health()
        with pytest.raises(Exception):             # plain HTTP is not served on a TLS port
            snapbox.Client(url=f"http://127.0.0.1:{port}", token=token, timeout=scaled(10)).health()
    finally:
        assert d.stop() == 0


def test_a_slowloris_does_not_starve_a_client_with_the_token(tmp_path):
    """2,000 connections from one address that never finish their headers: the
    per-address cap refuses all but a few, and a client with the token is served."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    token, port = "t0ken-" + "z" * 20, free_port()
    d = Daemon(str(tmp_path), tcp=f"127.0.0.1:{port}", token=token, roots=False)
    held = []
    try:
        c = snapbox.Client(url=f"http://127.0.0.1:{port}", token=token, timeout=scaled(30))
        assert c.health()["status"] == "ok"
        for _ in range(2000):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))               # the attacker's own address, on loopback
            s.settimeout(scaled(5))
            try:
                s.connect(("127.0.0.1", port))
                s.send(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            except OSError:
                s.close()
                continue
            held.append(s)
        for _ in range(20):
            t0 = time.monotonic()
            assert c.health()["status"] == "ok"
            assert time.monotonic() - t0 < scaled(5)
    finally:
        for s in held:
            s.close()
        d.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_tenants_see_only_their_own(tmp_path, probe_snapshot):
    tokens = {"alice": "alice-" + "a" * 20, "bob": "bob-" + "b" * 20}
    port = free_port()
    d = Daemon(str(tmp_path), "--template", f"p={probe_snapshot}", "--tenant-max-sandboxes", "1",
               "--tenant-max-templates", "1", "--metrics-tenant", "alice",
               tcp=f"127.0.0.1:{port}", tokens=tokens)
    url = f"http://127.0.0.1:{port}"
    alice = snapbox.Client(url=url, token=tokens["alice"], timeout=scaled(60))
    bob = snapbox.Client(url=url, token=tokens["bob"], timeout=scaled(60))
    try:
        a_tpl = alice.build_template("mine", kernel="probe.elf", mem_mib=32, pool_size=0)
        a_sb = alice.create("p")                       # the operator's template: everyone's
        assert [t.name for t in bob.templates()] == ["p"]
        with pytest.raises(snapbox.NotFound):
            bob.template("mine")
        with pytest.raises(snapbox.NotFound):
            bob.create("mine")
        with pytest.raises(snapbox.NotFound):
            a_tpl.__class__(bob, "mine", None, "ready", None, 0, None).delete()
        assert bob.sandboxes() == []
        with pytest.raises(snapbox.NotFound):
            snapbox.Sandbox(bob, a_sb.id, "p").ping()
        with pytest.raises(snapbox.NotFound):
            snapbox.Sandbox(bob, a_sb.id, "p").delete()
        with pytest.raises(snapbox.Forbidden):         # the operator's template stays
            bob.template("p").delete()
        # Names are per tenant: bob has a "mine" of his own; one template each.
        assert bob.build_template("mine", kernel="probe.elf", mem_mib=32, pool_size=0).status == "ready"
        with pytest.raises(snapbox.LimitReached):
            alice.build_template("second", kernel="probe.elf", mem_mib=32, wait=False)
        # A tenant's share of the sandboxes: alice has hers; bob still gets one.
        with pytest.raises(snapbox.LimitReached):
            alice.create("p")
        with bob.create("p") as b_sb:
            assert b_sb.ping() > 0
        assert a_sb.ping() > 0
        text = alice.metrics()                        # the operator's (--metrics-tenant)
        assert 'tenant="alice"' in text and 'tenant="bob"' in text
        with pytest.raises(snapbox.Forbidden):
            bob.metrics()
        assert "127.0.0.1" in d.logtext() and " alice POST /v1/sandboxes " in d.logtext()
    finally:
        d.stop()


def test_disk_shm_and_bytes_in_flight_are_limited(tmp_path, probe_snapshot):
    # A snapshot being written holds its guest memory of the disk budget until it is measured.
    d = Daemon(str(tmp_path), "--max-disk", "40M", "--max-shm", "100M", "--max-inflight", "1M",
               "--max-body", "4M")
    try:
        c = d.client()
        rel = os.path.basename(probe_snapshot)
        c.register_template("cow", rel, pool_size=0)                  # 64M decoded in /dev/shm
        with pytest.raises(snapbox.LimitReached):                     # a second 64M: over 100M
            c.register_template("cow2", rel, pool_size=0)
        assert c.register_template("eager", rel, pool_size=0, mode="eager").status == "ready"
        eager = {"pool_size": 0, "mode": "eager"}                     # (no /dev/shm copy)
        assert c.build_template("b1", kernel="probe.elf", mem_mib=32, **eager).status == "ready"
        with pytest.raises(snapbox.LimitReached):                     # 64M could not fit in 40M
            c.build_template("b2", kernel="probe.elf", mem_mib=64, wait=False, **eager)
        assert c.build_template("b3", kernel="probe.elf", mem_mib=32, **eager).status == "ready"
        with c.create("eager") as sb:
            with pytest.raises(snapbox.LimitReached):                 # 2 MiB held at once: over 1M
                sb.write_file("/x", b"x" * (2 << 20))
        text = c.metrics()
        for limit in ("max-shm", "max-disk", "max-inflight"):
            assert f'snapbox_limit_refusals_total{{limit="{limit}"}} 1' in text, text
        assert "snapbox_inflight_body_bytes 0" in text
    finally:
        assert d.stop() == 0


def test_every_5xx_says_why(tmp_path, probe_snapshot):
    """Each 5xx the service can give, provoked: its kind and its reason."""
    d = Daemon(str(tmp_path), "--template", f"p={probe_snapshot}", "--allow-raw-requests",
               "--pool-size", "0", nofile=64, roots=False)
    try:
        c = d.client()
        with c.create("p") as sb:                             # 502: the guest died
            with pytest.raises(snapbox.GuestFailed, match="the guest failed"):
                sb.request(0x0025, struct.pack("<IIQ", 1, 0, 0))
        with c.create("p") as sb:                             # 504: the guest never answered
            with pytest.raises(snapbox.GuestTimeout, match="did not answer in time"):
                sb.request(0x0025, struct.pack("<IIQ", 8, 0, 0), timeout_ms=300)
        held, err = [], None                                  # 500: the host failed (descriptors)
        try:
            for _ in range(64):
                held.append(c.create("p"))
        except snapbox.InternalError as e:
            err = e
        assert err is not None and err.kind == "internal", err
        assert "Too many open files" in err.message, err.message
        for sb in held:
            sb.delete()
        sb = c.create("p")                                    # 503: draining, a request running
        t = threading.Thread(target=lambda: sb.request(0x0024, struct.pack("<I", int(scaled(1500))),
                                                       timeout_ms=int(scaled(10000))))
        t.start()
        time.sleep(scaled(0.3))
        d.proc.send_signal(signal.SIGTERM)
        time.sleep(scaled(0.2))
        with pytest.raises(snapbox.Unavailable, match="shutting down"):
            c.health()
        t.join(scaled(20))
    finally:
        d.stop()


def test_a_rebuilt_name_gets_a_directory_of_its_own(daemon):
    c = daemon.client()
    tdir = os.path.join(daemon.workdir, "state", "templates")
    c.build_template("x", kernel="probe.elf", mem_mib=32, pool_size=0)
    first = set(os.listdir(tdir))
    c.template("x").delete()
    c.build_template("x", kernel="probe.elf", mem_mib=32, pool_size=0)
    second = set(os.listdir(tdir))
    assert len(first) == 1 and len(second) == 1 and first != second, (first, second)


def test_two_snapshots_to_one_name_one_wins(probe):
    a, b = probe.create("probe"), probe.create("probe")
    results = []

    def snap(sb):
        try:
            results.append(sb.snapshot("same", pool_size=0).status)
        except snapbox.Conflict:
            results.append("conflict")
    try:
        ts = [threading.Thread(target=snap, args=(x,)) for x in (a, b)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(scaled(60))
        assert sorted(results) == ["conflict", "ready"], results
    finally:
        a.delete()
        b.delete()


def test_the_template_listing_has_no_cap(tmp_path, probe_snapshot):
    """The listing stopped silently at 256."""
    d = Daemon(str(tmp_path), "--max-templates", "300")
    try:
        c = d.client()
        rel = os.path.basename(probe_snapshot)
        for i in range(260):
            c.register_template(f"t{i}", rel, pool_size=0, mode="eager")
        assert len(c.templates()) == 260
    finally:
        assert d.stop() == 0


def test_no_default_lives_in_tmp():
    st, out = snapboxd("--help")
    assert st == 0 and "/tmp" not in out, out


def test_only_the_operator_marks_instruments(tmp_path, probe_snapshot):
    token, port = "t0ken-" + "i" * 20, free_port()
    d = Daemon(str(tmp_path), "--allow-raw-requests", tcp=f"127.0.0.1:{port}", token=token)
    try:
        c = snapbox.Client(url=f"http://127.0.0.1:{port}", token=token, timeout=scaled(60))
        with pytest.raises(snapbox.Forbidden):
            c.register_template("i", os.path.basename(probe_snapshot), instrument=True)
    finally:
        d.stop()
