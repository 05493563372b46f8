# tests/lab/guest-real.sh - run inside a restored python-image clone (sh -s, as root): what real programs expect of the guest; prints one "ok NAME" or "FAIL NAME: why" line per check, exits non-zero on any failure.
fails=0
ok() { echo "ok $1"; }
bad() { echo "FAIL $1: $2"; fails=$((fails + 1)); }
check() { name=$1; shift; if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$(echo "$out" | tail -n 3 | tr '\n' ' ')"; fi; }

# Names and users (/etc/passwd, /etc/group, NSS through libc-bin's getent).
[ "$(id -un user 2>&1)" = user ] && [ "$(id -u user)" = 1000 ] && ok id-user || bad id-user "$(id user 2>&1)"
[ "$(getent group 0 2>&1)" = "root:x:0:" ] && ok getent-group || bad getent-group "$(getent group 0 2>&1)"
g=$(python3 -c 'import getpass; print(getpass.getuser())' 2>&1)
[ "$g" = root ] && ok getpass || bad getpass "$g"
[ "$(hostname)" = snapbox ] && ok hostname || bad hostname "$(hostname)"
check locale python3 -c 'import locale, sys; locale.setlocale(locale.LC_ALL, "C.UTF-8"); assert sys.getfilesystemencoding() == "utf-8"'

# Loopback, both families: a server and its client in one sandbox.
check tcp4-tcp6 python3 - <<'EOF'
import socket, threading
for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((addr, 0)); s.listen(1)
    port = s.getsockname()[1]
    t = threading.Thread(target=lambda: (lambda c: (c.sendall(c.recv(5).upper()), c.close()))(s.accept()[0]))
    t.start()
    c = socket.create_connection((addr, port), timeout=30)
    c.sendall(b"hello")
    assert c.recv(5) == b"HELLO", fam
    t.join()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", u.getsockname())
assert u.recv(1) == b"x"
assert socket.getaddrinfo("localhost", 80, socket.AF_INET)[0][4][0] == "127.0.0.1"
assert socket.getservbyname("http", "tcp") == 80
EOF

# The issue's own check: python3 -m http.server answers a request from inside.
cd /tmp && echo served > index.txt
python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 &
srv=$!
r=$(python3 - <<'EOF' 2>&1
import time, urllib.request
end = time.monotonic() + 300
while True:
    try:
        print(urllib.request.urlopen("http://127.0.0.1:8000/index.txt", timeout=30).read().decode().strip())
        break
    except OSError as e:
        if time.monotonic() > end:
            print(e)
            break
        time.sleep(0.2)
EOF
)
kill $srv 2>/dev/null
[ "$r" = served ] && ok http-server || bad http-server "127.0.0.1:8000: $r"

# PTYs, shared memory, the /dev links.
check pty python3 -c 'import os, pty; m, s = pty.openpty(); os.write(s, b"x\n"); r = os.read(m, 16); assert r == b"x\r\n", r; assert os.ttyname(s).startswith("/dev/pts/")'
check shm python3 -c 'import multiprocessing.shared_memory as m; s = m.SharedMemory(create=True, size=4096); s.buf[0] = 7; s.close(); s.unlink()'
check semaphore python3 -c 'import multiprocessing as mp; l = mp.Lock(); l.acquire(); l.release()'
check dev-links sh -c 'test -L /dev/fd && test -L /dev/stdin && echo x | cat /dev/stdin >/dev/null'
exit $fails
