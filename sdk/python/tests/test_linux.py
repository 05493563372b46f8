"""The snapboxd API on the Linux guest (the agent): exec, files, one-shot runs, pre-warmed builds.

Needs SNAPBOX_KERNEL and SNAPBOX_INITRD (the nested lab sets them); a Linux guest
cannot run at useful speed on KVM-PVM.
"""
import base64
import os
import subprocess
import time

import pytest

import snapbox
from conftest import Daemon, _need, kvm_or_skip, put_asset, scaled


@pytest.fixture(scope="module")
def linux(tmp_path_factory):
    """A daemon with template "linux" built through the API (pre-warm and a file included)."""
    kvm_or_skip()
    kernel = _need("SNAPBOX_KERNEL", "/nonexistent/vmlinux")
    initrd = _need("SNAPBOX_INITRD", "/nonexistent/initrd")
    wd = str(tmp_path_factory.mktemp("linux"))
    # Assets are names in the daemon's asset directory, never host paths.
    kernel, initrd = put_asset(wd, kernel, "vmlinux"), put_asset(wd, initrd, "initrd.cpio.gz")
    d = Daemon(wd)
    c = d.client()
    t = c.build_template("linux", kernel=kernel, initrd=initrd, mem_mib=128,
                         boot_timeout_ms=int(scaled(300000)), pool_size=1,
                         prewarm=["echo warmed > /tmp/prewarm"],
                         files={"/tmp/hello.txt": b"hello from the build\n"}, timeout=scaled(900))
    assert t.status == "ready"
    yield c
    assert d.stop() == 0


def test_exec_output_exit_code_and_timings(linux):
    with linux.create("linux") as sb:
        r = sb.exec(["sh", "-c", "echo 42; echo oops >&2; exit 3"])
        assert (r.exit_code, r.signal, r.timed_out) == (3, None, False)
        assert r.stdout == b"42\n" and r.stderr == b"oops\n"
        assert r.timings["exec_ns"] > 0


def test_exec_env_cwd_stdin(linux):
    with linux.create("linux") as sb:
        r = sb.exec(["sh", "-c", 'echo "$GREETING $(pwd)"; cat'], env={"GREETING": "hi"},
                    cwd="/tmp", stdin=b"from stdin")
        assert r.stdout == b"hi /tmp\nfrom stdin"


def test_exec_as_a_user(linux):
    """user: a bare UID:GID runs as itself (this initramfs has no /etc/passwd); an unknown name is 422."""
    with linux.create("linux") as sb:
        r = sb.exec(["sh", "-c", "echo $(id -u) $(id -g) $HOME $USER; touch /tmp/mine; ls -n /tmp/mine"],
                    user="4321:4322")
        assert r.exit_code == 0, r.stderr
        lines = r.stdout.decode().splitlines()
        assert lines[0] == "4321 4322 / 4321"
        assert lines[1].split()[2:4] == ["4321", "4322"]
        # Root's own files stay out of its reach.
        r = sb.exec(["sh", "-c", "echo x > /init"], user="4321")
        assert r.exit_code != 0
        with pytest.raises(snapbox.Unprocessable):
            sb.exec(["true"], user="no-such-user")
        assert sb.exec(["id", "-u"]).stdout == b"0\n"


def test_exec_timeout_kills_and_the_sandbox_lives(linux):
    with linux.create("linux") as sb:
        r = sb.exec(["sleep", "30"], timeout_ms=500)
        assert r.timed_out and r.exit_code is None and r.signal == 9
        assert sb.exec(["true"]).exit_code == 0


def test_a_command_never_outlives_its_sandbox(linux):
    """timeout_ms past the TTL is cut to the time left (the review: exec outlived --max-ttl)."""
    sb = linux.create("linux", ttl_s=int(scaled(5)))
    t0 = time.monotonic()
    try:
        r = sb.exec(["sleep", "600"], timeout_ms=int(scaled(600000)))
        assert r.timed_out and r.signal == 9
    except (snapbox.NotFound, snapbox.GuestFailed, snapbox.GuestTimeout):
        pass                                   # reaped at its TTL while it ran: also ended
    assert time.monotonic() - t0 < scaled(120)


def test_binary_output_has_no_text(linux, ):
    with linux.create("linux") as sb:
        r = sb.exec(["printf", "\\377\\376"])
        assert r.stdout == b"\xff\xfe"
        d = linux.request("POST", f"/v1/sandboxes/{sb.id}/exec", {"argv": ["printf", "\\377"]})
        assert d["stdout_text"] is None and base64.b64decode(d["stdout"]) == b"\xff"


def test_output_caps_truncate(linux):
    with linux.create("linux") as sb:
        r = sb.exec(["sh", "-c", "head -c 10000 /dev/zero"], stdout_cap=100)
        assert len(r.stdout) == 100 and r.stdout_truncated


def test_prewarm_and_build_files_are_in_the_template(linux):
    with linux.create("linux") as sb:
        assert sb.read_file("/tmp/prewarm") == b"warmed\n"
        assert sb.read_file("/tmp/hello.txt") == b"hello from the build\n"


def test_files_round_trip_and_missing(linux):
    with linux.create("linux") as sb:
        data = bytes(range(256)) * 100
        sb.write_file("/tmp/blob", data, mode=0o600)
        assert sb.read_file("/tmp/blob") == data
        assert sb.exec(["stat", "-c", "%a", "/tmp/blob"]).stdout == b"600\n"
        with pytest.raises(snapbox.NotFound):
            sb.read_file("/nonexistent/file")


def test_one_shot_run(linux):
    r = linux.run("linux", ["sh", "-c", "echo $((6*7))"])
    assert r.exit_code == 0 and r.stdout == b"42\n"
    assert r.restore_profile["restore_to_ready_ns"] > 0
    assert linux.sandboxes() == []


def test_clones_do_not_share_writes(linux):
    with linux.create("linux") as a, linux.create("linux") as b:
        a.write_file("/tmp/mine", b"a")
        with pytest.raises(snapbox.NotFound):
            b.read_file("/tmp/mine")


def test_snapshot_keeps_user_state(linux):
    with linux.create("linux") as sb:
        sb.write_file("/tmp/state", b"kept")
        t = sb.snapshot("saved-state", pool_size=0)
    try:
        with linux.create("saved-state") as again:
            assert again.read_file("/tmp/state") == b"kept"
    finally:
        t.delete()


def test_every_clone_is_a_new_machine(linux):
    """Clones of one snapshot get their own entropy and the host's wall clock (REFRESH)."""
    time.sleep(3)   # the snapshot's clock is now seconds behind the host's
    seen = set()
    for _ in range(3):
        with linux.create("linux") as sb:
            r = sb.exec(["sh", "-c", "head -c 16 /dev/urandom | od -An -tx1; date +%s"])
            rnd, guest_now = r.stdout.decode().rsplit("\n", 2)[:2]
            seen.add(rnd)
            assert abs(int(guest_now) - time.time()) < 2.5, (guest_now, time.time())
            assert sb.restore_profile["guest_refresh_ns"] > 0
    assert len(seen) == 3, seen


def test_cli_snapshot_prewarm_and_add_file(tmp_path):
    """`snapbox snapshot --add-file --prewarm`: the snapshot holds their effects; a failing one refuses."""
    kvm_or_skip()
    cli = _need("SNAPBOX_CLI", "build/snapbox")
    kernel, initrd = _need("SNAPBOX_KERNEL", "/x"), _need("SNAPBOX_INITRD", "/x")
    src = tmp_path / "tool.sh"
    src.write_text("#!/bin/sh\necho tool-ran\n")
    src.chmod(0o750)
    snap = str(tmp_path / "snap")
    base = [cli, "snapshot", "--kernel", kernel, "--initrd", initrd, "--timeout", str(int(scaled(300000)))]
    subprocess.run(base + ["--out", snap, "--add-file", f"{src}:/opt/tool.sh",
                           "--prewarm", "/opt/tool.sh > /tmp/warm", "--prewarm", "echo second >> /tmp/warm"],
                   check=True, stdout=subprocess.DEVNULL)
    r = subprocess.run([cli, "run", "--snapshot", snap, "--mode", "cow", "--",
                        "sh", "-c", "cat /tmp/warm; stat -c %a /opt/tool.sh"], capture_output=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"tool-ran\nsecond\n750\n"
    bad = subprocess.run(base + ["--out", str(tmp_path / "bad"), "--prewarm", "exit 3"],
                         capture_output=True)
    assert bad.returncode == 1 and b"exited with status 3" in bad.stderr
    assert not os.path.exists(tmp_path / "bad")


def test_exec_round_trip_counts(linux):
    """Exact costs of one exec: frame bytes both ways and vCPU exits (docs/benchmarks.md, "Costs")."""
    with linux.create("linux") as sb:
        for label, cmd in (("true", ["true"]), ("64 KiB out", ["head", "-c", "65536", "/dev/zero"])):
            r = sb.exec(cmd)
            c = r.counts
            assert c["wire_out"] > 16 and c["wire_in"] >= 16 + 32 + len(r.stdout)
            # On vsock the channel's exits are the guest's kicks and its interrupt
            # status reads (MMIO), a handful per exec whatever the output's size.
            # Port I/O is the kernel's console, which prints when it likes (under
            # load, a clocksource warning is a few hundred exits): not counted here.
            assert c["exits"] >= c["io_exits"]
            assert 0 < c["exits"] - c["io_exits"] < 300, c
            print(f"COUNTS exec {label}: wire_out {c['wire_out']} wire_in {c['wire_in']} "
                  f"exits {c['exits']} io_exits {c['io_exits']}")
