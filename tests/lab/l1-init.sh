#!/bin/busybox sh
# tests/lab/l1-init.sh - /init of the lab's L1 VM: load kvm-amd, mount the lab's disks, run the planned test groups on real KVM, print markers, power off.
#
# The plan is /lab/plan (one group per line, written by tests/lab/lab.sh);
# lab_from=N on the kernel command line skips its first N groups (a rerun
# after a freeze). Console (ttyS0) lines the host reads:
#   SNAPBOX-LAB-HEARTBEAT <uptime>              every 5 s, whatever runs
#   SNAPBOX-LAB-SCALE <factor> <how>            the deadline factor, before any group
#   SNAPBOX-LAB-BEGIN <index> <group>           a group starts
#   SNAPBOX-LAB <name>: PASS|FAIL|SKIP - <detail>   one per test
#   SNAPBOX-LAB-END <index> <group> <seconds>   a group ended
#   SNAPBOX-LAB-RESULT: PASS|FAIL (<n> passed, <n> failed, <n> skipped)
# A test's own output is echoed with a "| " prefix and kept in /out/<name>.out;
# /out goes back to the host as a tar on /dev/vdb. Timings here mean nothing
# (everything is emulated); verdicts do.
set -eu
export PATH=/bin:/sbin
/bin/busybox mkdir -p /bin /sbin /proc /sys /dev /tmp /lab /out
# Applets into /bin only: /usr is a link into the read-only in disk.
for a in $(/bin/busybox --list); do [ -e "/bin/$a" ] || /bin/busybox ln -s busybox "/bin/$a"; done
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs -o size=1g tmp /tmp
mkdir -p /dev/shm && mount -t tmpfs -o size=1g shm /dev/shm
# Pseudo-terminals: bench/peer-qemu runs snapbox on a pty (os.openpty).
mkdir -p /dev/pts && mount -t devpts -o ptmxmode=0666 devpts /dev/pts
# Kernel errors (OOM, hung tasks, oopses) reach the console; chatter does not.
dmesg -n 4
cd /tmp

# The heartbeat the host's watchdog listens for: it stops only when L1 stops.
(while :; do echo "SNAPBOX-LAB-HEARTBEAT $(cut -d' ' -f1 /proc/uptime)"; sleep 5; done) &
heartbeat=$!

# Per-test time limit (seconds, before scaling below); the host has its own overall limit too.
T=${lab_timeout:-900}
FROM=${lab_from:-0}
pass=0 fail=0 skip=0
mark() { # mark NAME VERDICT DETAIL
	echo "SNAPBOX-LAB $1: $2 - $3"
	case $2 in PASS) pass=$((pass + 1)) ;; FAIL) fail=$((fail + 1)) ;; *) skip=$((skip + 1)) ;; esac
}
# show FILE: a test's output, prefixed, at most the last 200 lines.
show() { tail -n 200 "$1" | sed 's/^/| /'; }
# run NAME CMD...: run CMD with the time limit, output to /tmp/NAME.out, kept
# in /out and shown on the console as it comes (so a freeze shows what ran
# last), status in $rc.
run() {
	n=$1; shift
	echo "== $n: $*"
	: >"/tmp/$n.out"
	tail -n +1 -f "/tmp/$n.out" | awk '{ print "| " $0; fflush() }' &
	limit "$n" "$@" >>"/tmp/$n.out" 2>&1
	sleep 1
	pkill -f "tail -n +1 -f /tmp/$n.out" 2>/dev/null || true
	cp "/tmp/$n.out" "/out/$n.out" 2>/dev/null || true
}
# limit NAME CMD...: run CMD (output as is), status in $rc. Every 60 s it is
# still running, print what its processes are blocked on (console, live);
# after T seconds: the same, then SIGTERM, and SIGKILL 20 s later.
limit() {
	ln=$1; shift
	"$@" &
	lp=$!
	(
		s=0
		while kill -0 "$lp" 2>/dev/null; do
			sleep 5; s=$((s + 5))
			[ $((s % 60)) = 0 ] || [ "$s" -ge "$T" ] || continue
			echo "lab-watchdog: $ln still running after ${s}s:" >/dev/console
			stacks "$lp" >/dev/console
			if [ "$s" -ge $((T + 20)) ]; then kill -KILL "$lp"; echo "lab-watchdog: $ln: SIGKILL" >/dev/console
			elif [ "$s" -ge "$T" ]; then kill -TERM "$lp"; echo "lab-watchdog: $ln: SIGTERM after ${T}s" >/dev/console; fi
		done
	) &
	lw=$!
	rc=0
	wait "$lp" || rc=$?
	kill "$lw" 2>/dev/null || true
	wait "$lw" 2>/dev/null || true
}
# stacks PID: the state, wait channel and kernel stack of PID's children's threads.
stacks() {
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null) "$1"; do
		for t in /proc/"$c"/task/*; do
			[ -r "$t/stat" ] || continue
			echo "|   $(cat "$t/comm" 2>/dev/null) tid ${t##*/}: state $(cut -d' ' -f3 "$t/stat") wchan $(cat "$t/wchan" 2>/dev/null)"
			sed 's/^/|     /' "$t/stack" 2>/dev/null | head -n 12
		done
	done
}
finish() {
	if [ "$fail" = 0 ] && [ "$pass" -gt 0 ]; then v=PASS; else v=FAIL; fi
	# /out back to the host: a tar written over the blank out disk.
	if [ -b /dev/vdb ]; then tar -cf /dev/vdb -C /out . 2>/dev/null || echo "lab: writing /out to /dev/vdb failed"; fi
	echo "SNAPBOX-LAB-RESULT: $v ($pass passed, $fail failed, $skip skipped)"
	sync
	poweroff -f
}
has() { [ -e "$1" ]; }
# uptime_cs: L1's uptime in centiseconds.
uptime_cs() { cut -d' ' -f1 /proc/uptime | tr -d . | sed 's/^0*//'; }

echo "SNAPBOX-LAB L1: Linux $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(grep -c ^processor /proc/cpuinfo) vCPU, $(grep MemTotal /proc/meminfo | tr -s ' ')"

# 1. Real KVM (SVM and NPT in the TCG-emulated CPU, kvm-amd), the disks, the network.
flags=$(grep -m1 '^flags' /proc/cpuinfo)
for f in svm npt; do
	case " $flags " in *" $f "*) ;; *) mark kvm FAIL "CPU flag $f missing in L1"; finish ;; esac
done
for m in $(cat /modules.order); do
	insmod "/modules/$m.ko" || { mark kvm FAIL "insmod $m failed"; dmesg | tail -n 20 | sed 's/^/| /'; finish; }
done
# The in disk appears asynchronously after virtio_blk probes it (before the
# deadline factor is known: a generous 60 s).
for i in $(seq 600); do [ -b /dev/vda ] && break; sleep 0.1; done
mount -t ext4 -o ro /dev/vda /lab || { mark lab-disk FAIL "cannot mount the in disk /dev/vda"; dmesg | tail -n 20 | sed 's/^/| /'; finish; }
# Libraries, Python and QEMU from the host, at their own paths.
ln -s /lab/sys/usr /usr
ln -s /lab/sys/lib /lib
ln -s /lab/sys/lib64 /lib64
. /lab/lab-env
export BUILD BUILD_ASAN
export PATH=/bin:/sbin:/lab/$BUILD:/usr/bin
export SNAPBOX_PROBE=/lab/$BUILD/guest/probe.elf SNAPBOX_KERNEL=/lab/vmlinux SNAPBOX_INITRD=/lab/$BUILD/guest/initramfs.cpio.gz
export SNAPBOX_KVM_REQUIRED=1 SNAPBOX_EMULATED=1
# Loopback always: the service's tests listen on 127.0.0.1.
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
	ip link set eth0 up
	ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2 || echo "lab: network setup failed"
fi
# The deadline factor. Every deadline of the tests and of this script is
# multiplied by it: the library's defaults and the CLI's, snapboxd's, the C
# and Python suites' own (SNAPBOX_TIME_SCALE), the per-test limit T and the
# scripts' --timeout values (ms below). Set by hand on the host
# (SNAPBOX_TIME_SCALE, passed as lab_scale), or calibrated here: a fixed
# shell loop timed in L1 against its time in a quiet L1 (LAB_CALIB_REF_MS,
# 550 ms measured in a quiet L1 on the development machine, December 2026).
# A quiet lab gets 2, an L1 that runs it at half speed (a loaded host) 4,
# and so on, up to 100.
LAB_CALIB_REF_MS=600
calibrate_ms() {
	c0=$(uptime_cs); i=0
	while [ $i -lt 20000 ]; do i=$((i + 1)); done
	c1=$(uptime_cs)
	echo $(((c1 - c0) * 10))
}
if [ -n "${lab_scale:-}" ]; then
	SCALE=$lab_scale how="set by hand (SNAPBOX_TIME_SCALE on the host)"
else
	cal=$(calibrate_ms)
	SCALE=$(awk -v c="$cal" -v r=$LAB_CALIB_REF_MS 'BEGIN { f = 2 * c / r; if (f < 2) f = 2; if (f > 100) f = 100; printf "%.1f", f }')
	how="calibrated: a 20000-step shell loop took ${cal} ms, ${LAB_CALIB_REF_MS} ms in a quiet L1"
fi
export SNAPBOX_TIME_SCALE=$SCALE
# ms N: N milliseconds times the factor (whole ms, rounded up).
ms() { awk -v m="$1" -v f="$SNAPBOX_TIME_SCALE" 'BEGIN { printf "%d", m * f + 0.999 }'; }
T=$(awk -v t="$T" -v f="$SCALE" 'BEGIN { printf "%d", t * f + 0.999 }')
echo "SNAPBOX-LAB-SCALE $SCALE $how; per-test limit ${T}s"

if [ -c /dev/kvm ]; then
	dmesg | grep -iE 'kvm|svm' | tail -n 5 | sed 's/^/| /' || true
	mark kvm PASS "kvm_amd loaded, /dev/kvm is char $(stat -c '%t:%T' /dev/kvm)"
else
	mark kvm FAIL "/dev/kvm missing after insmod"
	dmesg | tail -n 20 | sed 's/^/| /'
	finish
fi

# criterion NAME BIN ARGS...: a Criterion binary; PASS only with exit 0 and no skipped test.
criterion() {
	cn=$1; shift
	run "$cn" "$@"
	syn=$(grep -m1 'Synthesis' "/tmp/$cn.out" | sed 's/^\[[^]]*\] *//' || true)
	nsk=$(grep -c '\[SKIP\]' "/tmp/$cn.out" || true)
	if [ "$rc" = 0 ] && [ "$nsk" = 0 ]; then mark "$cn" PASS "${syn:-exit 0}"
	elif [ "$rc" = 0 ]; then mark "$cn" FAIL "$nsk test(s) skipped: $syn"
	else mark "$cn" FAIL "exit $rc: $syn"; fi
}
# suites BIN PREFIX: BIN's Criterion suites, one marker each (a freeze names its suite).
suites() {
	for s in $("$1" --list 2>/dev/null | sed -n 's/^\([A-Za-z0-9_]*\): [0-9]* tests\{0,1\}$/\1/p'); do
		criterion "$2.$s" "$1" --jobs 1 --filter "$s/*"
	done
}
group_kvm_suite() { suites "/lab/$BUILD/tests/kvm" kvm; }
group_kvm_suite_asan() {
	SNAPBOX_PROBE=/lab/$BUILD_ASAN/guest/probe.elf ASAN_OPTIONS=detect_leaks=1 suites "/lab/$BUILD_ASAN/tests/kvm" kvm-asan
}
group_peer_check() {
	run peer-check sh -c "cd /lab && BUILD=$BUILD python3 bench/peer-qemu --qemu /usr/bin/qemu-system-x86_64 --iterations 2 --warmup 0 --pool-runs 2 --json /out/bench-peer-check.json"
	if [ "$rc" = 0 ]; then mark peer-check PASS "QEMU -M microvm and snapbox both reached PONG (2 pairs; emulated timings)"
	else mark peer-check FAIL "bench/peer-qemu exited $rc"; fi
}
# make bench and make peer on a host without /dev/kvm: the same programs in
# L1, fewer runs, JSON into /out (every report there says "emulated").
group_bench() {
	r=${lab_runs:-10}
	run bench sh -c "cd /lab && B=/lab/$BUILD P=\$SNAPBOX_PROBE &&
		\$B/bench/coldboot --kernel \$P --runs $r --json /out/bench-coldboot.json &&
		\$B/bench/restore --kernel \$P --runs $r --samples --json /out/bench-restore.json &&
		snapbox bench cold --iterations $r &&
		snapbox bench restore --mode cow --pooled --iterations $r --json >/out/snapbox-bench-restore-pooled.json &&
		PYTHONDONTWRITEBYTECODE=1 BUILD=/lab/$BUILD python3 bench/api --iterations $r --json /out/bench-api.json"
	if [ "$rc" = 0 ]; then mark bench PASS "bench/coldboot, bench/restore, snapbox bench, bench/api ($r runs each; emulated)"
	else mark bench FAIL "exit $rc"; fi
}
group_peer() {
	run peer sh -c "cd /lab && BUILD=$BUILD python3 bench/peer-qemu --qemu /usr/bin/qemu-system-x86_64 --iterations ${lab_runs:-10} --json /out/bench-peer.json"
	if [ "$rc" = 0 ]; then mark peer PASS "bench/peer-qemu, ${lab_runs:-10} pairs (emulated)"
	else mark peer FAIL "bench/peer-qemu exited $rc"; fi
}
group_demo() {
	# The demo writes its snapshot beside the build outputs: a writable view of them.
	mkdir -p /tmp/demo/build
	for f in /lab/$BUILD/*; do ln -s "$f" "/tmp/demo/build/$(basename "$f")"; done
	run demo sh -c "cd /lab && BUILD=/tmp/demo/build SNAPBOX_DEMO_IN_LAB=1 sh tools/demo.sh"
	if [ "$rc" = 0 ]; then mark demo PASS "cold boot, snapshot, inspect, cow restore + PING, restore bench"
	else mark demo FAIL "tools/demo.sh exited $rc"; fi
}
# The host watchdog's own test: in the first L1, go silent as a frozen L1
# would (no heartbeat, no output); in the rerun, pass.
group_watchdog_selftest() {
	if [ "${lab_attempt:-1}" = 1 ]; then
		kill "$heartbeat"
		sleep 100000
	fi
	mark watchdog-selftest PASS "rerun after the host's watchdog killed a silent L1 (attempt ${lab_attempt:-1})"
}
group_cmd() {
	run cmd sh -c "cd /lab && sh /lab/lab-cmd.sh"
	if [ "$rc" = 0 ]; then mark cmd PASS "LAB_CMD exited 0"; else mark cmd FAIL "LAB_CMD exited $rc"; fi
}
group_probe() {
	# 2. The probe guest: cold boot to READY, then snapshot -> restore -> PING.
	run probe-boot snapbox boot --kernel $SNAPBOX_PROBE --timeout $(ms 120000)
	if [ "$rc" = 0 ] && grep -q 'reached READY' /tmp/probe-boot.out; then
		mark probe-boot PASS "$(grep 'reached READY' /tmp/probe-boot.out)"
	else
		mark probe-boot FAIL "snapbox boot exited $rc"
	fi

	run probe-snapshot snapbox snapshot --kernel $SNAPBOX_PROBE --out /tmp/snap-probe --fill 8 --timeout $(ms 120000)
	if [ "$rc" = 0 ]; then
		mark probe-snapshot PASS "snapshot of the probe (8 MiB filled) written"
		for mode in eager cow; do
			run "probe-restore-$mode" snapbox restore /tmp/snap-probe --mode "$mode" --resume
			if [ "$rc" = 0 ]; then
				mark "probe-restore-$mode" PASS "restored ($mode) and answered PING: $(grep -m1 restore_to_ready "/tmp/probe-restore-$mode.out" | tr -s ' ')"
			else
				mark "probe-restore-$mode" FAIL "snapbox restore --mode $mode --resume exited $rc"
			fi
		done
	else
		mark probe-snapshot FAIL "snapbox snapshot exited $rc"
	fi
}
# l2_boot NAME KERNEL: boot KERNEL with the lab's shell init; PASS when it reached
# READY and its console greeting came through COM1.
l2_boot() {
	run "$1" snapbox boot --kernel "$2" --initrd /lab/l2-init.cpio.gz --timeout $(ms 300000) --console
	if [ "$rc" = 0 ] && grep -q 'lab-l2-init: hello from the L2 guest' "/tmp/$1.out"; then
		mark "$1" PASS "$(grep -m1 'reached READY' "/tmp/$1.out"); console: $(grep -m1 'lab-l2-init: hello' "/tmp/$1.out" | sed 's/.*lab-l2-init: //')"
	else
		mark "$1" FAIL "snapbox boot exited $rc"
	fi
}
group_linux() {
	# 4. Our Linux guest kernel with the lab's shell init: boot to READY, console,
	#    then snapshot -> restore -> PING of a real Linux guest.
	if has /lab/vmlinux; then
		l2_boot linux-boot /lab/vmlinux
		run linux-snapshot snapbox snapshot --kernel /lab/vmlinux --initrd /lab/l2-init.cpio.gz --timeout $(ms 300000) --out /tmp/snap-linux
		if [ "$rc" = 0 ]; then
			mark linux-snapshot PASS "snapshot of the Linux guest at READY written"
			for mode in eager cow; do
				run "linux-restore-$mode" snapbox restore /tmp/snap-linux --mode "$mode" --resume --console
				if [ "$rc" = 0 ]; then
					mark "linux-restore-$mode" PASS "restored ($mode), the Linux guest answered PING: $(grep -m1 restore_to_ready "/tmp/linux-restore-$mode.out" | tr -s ' ')"
				else
					mark "linux-restore-$mode" FAIL "snapbox restore --mode $mode --resume exited $rc"
				fi
			done
			rm -rf /tmp/snap-linux
		else
			mark linux-snapshot FAIL "snapbox snapshot exited $rc"
		fi
	else
		mark linux-boot SKIP "no guest vmlinux (make guest)"
	fi
}
group_bzimage() {
	# 4b. A user's bzImage instead of our vmlinux: Debian's cloud kernel (the L1
	#     kernel itself) through snapbox's bzImage loader, with the same shell init.
	if has /lab/bzImage; then
		l2_boot bzimage-boot /lab/bzImage
	else
		mark bzimage-boot SKIP "no bzImage in the lab (LAB_BZIMAGE=0)"
	fi
}
group_agent() {
	# 5. The real agent (build/guest/initramfs.cpio.gz), when it exists.
	stages="init_entry mounts_done uart_access_done init_ok ready command_loop"
	if has /lab/vmlinux && has $SNAPBOX_INITRD; then
		run agent-boot snapbox boot --kernel /lab/vmlinux --initrd $SNAPBOX_INITRD --timeout $(ms 300000) --console
		missing=""
		for s in $stages; do grep -q "guest\.$s " /tmp/agent-boot.out || missing="$missing $s"; done
		if [ "$rc" = 0 ] && [ -z "$missing" ]; then
			mark agent-boot PASS "$(grep -m1 'reached READY' /tmp/agent-boot.out); all 6 BOOT_TIME stages"
		else
			mark agent-boot FAIL "snapbox boot exited $rc; BOOT_TIME stages missing:${missing:- none}"
		fi
	else
		mark agent-boot SKIP "no build/guest/initramfs.cpio.gz (make initramfs)"
	fi
}
group_run() {
	# 6. `snapbox run`, when the CLI has it: a cold boot, then a snapshot of the
	#    agent at READY and the rest of the checks as restore -> run round trips.
	# runx NAME WANT_RC WANT_STDOUT WANT_STDERR ARGS...: snapbox run ARGS, checking
	#    the exit status and the exact stdout and stderr ("-" = do not check).
	runx() {
		# Names of their own: the callers keep $want for checksums.
		n=$1 wrc=$2 wout=$3 werr=$4; shift 4
		echo "== $n: snapbox run $*"
		limit "$n" snapbox run --boot-timeout $(ms 300000) "$@" >"/tmp/$n.stdout" 2>"/tmp/$n.stderr"
		show "/tmp/$n.stdout" | head -n 20; show "/tmp/$n.stderr"
		why=""
		[ "$rc" = "$wrc" ] || why="exit $rc, want $wrc"
		[ "$wout" = - ] || [ "$(cat "/tmp/$n.stdout")" = "$wout" ] || why="$why; stdout differs"
		[ "$werr" = - ] || [ "$(cat "/tmp/$n.stderr")" = "$werr" ] || why="$why; stderr differs"
		if [ -z "$why" ]; then return 0; fi
		mark "$n" FAIL "${why#; }"
		return 1
	}
	if has /lab/vmlinux && has $SNAPBOX_INITRD && snapbox run --help >/dev/null 2>&1; then
		K="--kernel /lab/vmlinux --initrd $SNAPBOX_INITRD"
		# shellcheck disable=SC2086
		runx run-echo 0 hello "" $K -- /bin/echo hello &&
			mark run-echo PASS "cold boot: 'echo hello' gave hello, exit 0, empty stderr"
		# shellcheck disable=SC2086
		run agent-snapshot snapbox snapshot $K --timeout $(ms 300000) --out /tmp/snap-agent
		if [ "$rc" = 0 ]; then
			mark agent-snapshot PASS "snapshot of the agent at READY written"
			S="--snapshot /tmp/snap-agent"
			for mode in eager cow; do
				runx "run-restored-$mode" 0 hello "" $S --mode "$mode" -- /bin/echo hello &&
					mark "run-restored-$mode" PASS "snapshot -> restore ($mode) -> 'echo hello': hello, exit 0"
			done
			runx run-exit3 3 out err $S -- /bin/sh -c 'echo out; echo err >&2; exit 3' &&
				mark run-exit3 PASS "stdout and stderr separate, exit code 3"
			runx run-signal 137 - - $S -- /bin/sh -c 'kill -9 $$' &&
				mark run-signal PASS "SIGKILL reported as 128+9"
			runx run-timeout 124 - - $S --timeout 1 -- /bin/sleep 10 &&
				mark run-timeout PASS "sleep 10 with --timeout 1: exit 124"
			runx run-envcwd 0 "lab42 /tmp" "" $S --env LABVAR=lab42 --cwd /tmp -- /bin/sh -c 'echo "$LABVAR $(pwd)"' &&
				mark run-envcwd PASS "env and cwd honoured"
			runx run-notfound 127 "" - $S -- /no/such/command &&
				mark run-notfound PASS "missing command: exit 127"
			# Every byte the guest's 8250 driver sends is one port write (one exit),
			# which nested TCG makes slow (1 MiB takes about 2 minutes there): the
			# CLI gets 256 KiB; build/tests/linux checks a whole MiB.
			big=262144
			want=$(yes snapbox-lab | head -c $big | md5sum | cut -d' ' -f1)
			t0=$(cut -d' ' -f1 /proc/uptime)
			if runx run-bigout 0 - "" $S --timeout $(($(ms 600000) / 1000)) -- /bin/sh -c "yes snapbox-lab | head -c $big"; then
				got=$(md5sum </tmp/run-bigout.stdout | cut -d' ' -f1)
				t1=$(cut -d' ' -f1 /proc/uptime)
				if [ "$got" = "$want" ]; then mark run-bigout PASS "$((big / 1024)) KiB of stdout intact (md5 $got; $t0 -> $t1 s L1 uptime)"
				else mark run-bigout FAIL "$((big / 1024)) KiB of stdout: md5 $got, want $want ($(wc -c </tmp/run-bigout.stdout) bytes)"; fi
			fi
			rm -rf /tmp/snap-agent
		else
			mark agent-snapshot FAIL "snapbox snapshot exited $rc"
		fi
	else
		mark run SKIP "no agent initramfs or no 'snapbox run' yet"
	fi
}
group_linux_tests() {
	# 7. Any Linux end-to-end test binaries (build/tests/linux*), given the guest
	#    assets by SNAPBOX_KERNEL, SNAPBOX_INITRD and SNAPBOX_PROBE.
	for t in /lab/$BUILD/tests/linux*; do
		[ -x "$t" ] && has /lab/vmlinux && has $SNAPBOX_INITRD || continue
		criterion "$(basename "$t")" "$t" --jobs 1
	done
}

# pytest NAME FILE: one file of snapboxd's API tests, PASS only when none failed or skipped.
pytest_api() {
	run "$1" sh -c "cd /lab/sdk/python && PYTHONDONTWRITEBYTECODE=1 SNAPBOXD=/lab/$BUILD/snapboxd \
		SNAPBOX_CLI=/lab/$BUILD/snapbox python3 -m pytest -q -rs -s -p no:cacheprovider --basetemp=/tmp/pytest $2"
	syn=$(grep -E '[0-9]+ (passed|failed)' "/tmp/$1.out" | tail -n 1 || true)
	if [ "$rc" = 0 ] && ! grep -q 'skipped' "/tmp/$1.out"; then mark "$1" PASS "$syn"
	else mark "$1" FAIL "exit $rc: $syn"; fi
}
group_api() { pytest_api api "tests/test_api.py tests/test_security.py"; }
group_api_linux() { pytest_api api-linux tests/test_linux.py; }

# 8. The python guest image (make image): python3 runs, a pre-warmed snapshot's
#    clones are unique, and what it costs (sizes, PSS per clone; into /out).
group_image() {
	img=/lab/image.cpio.gz K=/lab/vmlinux B=/lab/$BUILD
	run image-run sh -c "snapbox run --kernel $K --image $img --boot-timeout $(ms 300000) -- python3 -c 'print(6*7)'"
	if [ "$rc" = 0 ] && [ "$(tail -n 1 /tmp/image-run.out)" = 42 ]; then mark image-run PASS "python3 -c 'print(6*7)' printed 42"
	else mark image-run FAIL "exit $rc"; fi
	for v in plain free; do
		cl="console=ttyS0 quiet panic=-1"; [ $v = free ] && cl="$cl init_on_free=1"
		run "image-snap-$v" sh -c "snapbox snapshot --kernel $K --initrd $img --mem 256M --timeout $(ms 300000) \
			--cmdline '$cl' --prewarm 'python3 -c \"import json, decimal, uuid\"' --out /tmp/py-$v >/dev/null &&
			snapbox inspect /tmp/py-$v --json > /out/image-inspect-$v.json && du -sk /tmp/py-$v"
		if [ "$rc" = 0 ]; then mark "image-snap-$v" PASS "$(tail -n 1 "/tmp/image-snap-$v.out" | cut -f1) KiB on disk ($cl)"
		else mark "image-snap-$v" FAIL "exit $rc"; fi
	done
	run image-unique sh -c "for i in 1 2 3; do snapbox run --snapshot /tmp/py-free --mode cow -- python3 -c 'import uuid, time; print(uuid.uuid4(), int(time.time()))'; done"
	n=$(grep -cE '^[0-9a-f-]{36} ' /tmp/image-unique.out || true)
	u=$(grep -E '^[0-9a-f-]{36} ' /tmp/image-unique.out | cut -d' ' -f1 | sort -u | wc -l)
	if [ "$rc" = 0 ] && [ "$n" = 3 ] && [ "$u" = 3 ]; then mark image-unique PASS "3 clones, 3 different uuid4()"
	else mark image-unique FAIL "exit $rc, $u distinct of $n"; fi
	# What real programs expect (issue 21), in a clone of the pre-warmed snapshot.
	run image-real sh -c "snapbox run --snapshot /tmp/py-free --mode cow --timeout $(ms 600) \
		--stdin /lab/tests/lab/guest-real.sh -- sh -s"
	if [ "$rc" = 0 ]; then mark image-real PASS "$(grep -c '^ok ' /tmp/image-real.out) checks: users, names, locale, TCP/UDP on 127.0.0.1 and ::1, http.server, pty, shm"
	else mark image-real FAIL "exit $rc: $(grep '^FAIL' /tmp/image-real.out | head -n 3 | tr '\n' ' ')"; fi
	run image-user sh -c "snapbox run --snapshot /tmp/py-free --mode cow --user user -- \
		sh -c 'echo \$(id -un) \$(id -G) \$HOME; touch \$HOME/f; ls -n \$HOME/f; touch /root/f'"
	# Expected: user, its groups (user, users), its home, writable; /root is not (exit 1).
	if [ "$rc" = 1 ] && grep -qx 'user 1000 100 /home/user' /tmp/image-user.out &&
		grep -q ' 1000 *1000 .*/home/user/f' /tmp/image-user.out; then mark image-user PASS "--user user: uid 1000, groups 1000 100, HOME /home/user writable, /root not"
	else mark image-user FAIL "exit $rc: $(tail -n 3 /tmp/image-user.out | tr '\n' ' ')"; fi
	# The node image (make node-image): Node.js serves HTTP on 127.0.0.1 to itself.
	run image-node sh -c "snapbox run --kernel $K --image /lab/image-node.cpio.gz --mem 512M \
		--boot-timeout $(ms 300000) --timeout $(ms 300) -- node -e \"
		const http = require('http'), os = require('os');
		const s = http.createServer((q, r) => r.end('node ' + process.version)).listen(0, '127.0.0.1', () =>
			http.get({ host: '127.0.0.1', port: s.address().port }, (r) => {
				let d = ''; r.on('data', (c) => d += c);
				r.on('end', () => { console.log(d, os.userInfo().username, os.hostname()); s.close(); });
			}));\""
	nl=$(grep '^node v' /tmp/image-node.out | tail -n 1)
	case $rc:$nl in
	"0:node v"*" root snapbox") mark image-node PASS "$nl (HTTP on 127.0.0.1 inside the sandbox)" ;;
	*) mark image-node FAIL "exit $rc: $(tail -n 3 /tmp/image-node.out | tr '\n' ' ')" ;;
	esac
	pyb="snapbox bench restore --kernel $K --initrd $img --mem 256M --timeout $(ms 300000) --clones 4"
	run image-clones sh -c "$pyb --exec 'python3 -c \"print(1)\"' --json > /out/bench-clones-python.json &&
		$pyb --json > /out/bench-clones-python-idle.json &&
		sed -n 's/.*first_clone_pss_kib.: \([0-9]*\), .marginal_pss_median_kib.: \([0-9]*\).*/first clone: \1 KiB PSS; each further clone: median \2 KiB PSS/p' /out/bench-clones-python*.json"
	[ "$rc" = 0 ] && run image-clones-linux sh -c "snapbox bench restore --kernel $K --initrd $B/guest/initramfs.cpio.gz --timeout $(ms 300000) --clones 4 --json > /out/bench-clones-linux.json && snapbox bench restore --clones 8 --json > /out/bench-clones-probe.json"
	if [ "$rc" = 0 ]; then mark image-clones PASS "$(grep 'first clone' /tmp/image-clones.out | tail -n 2 | tr '\n' ' ')"
	else mark image-clones FAIL "exit $rc"; fi
}

# CPython's own tests in a cow clone of a pre-warmed snapshot of the test-only
# image (issue 21); the verdict is regrtest's, the skips are listed with reasons.
group_cpython() {
	img=/lab/image-tests.cpio.gz K=/lab/vmlinux
	run cpython-snap sh -c "snapbox snapshot --kernel $K --initrd $img --mem 768M --timeout $(ms 300000) \
		--prewarm-timeout $(ms 300000) --prewarm 'python3 -c \"import test.support, test.libregrtest\"' \
		--out /tmp/cpy-snap >/dev/null"
	if [ "$rc" != 0 ]; then mark cpython-snap FAIL "exit $rc"; return 0; fi
	mark cpython-snap PASS "python-tests image pre-warmed and snapshotted (768 MiB guest)"
	run cpython sh -c "snapbox run --snapshot /tmp/cpy-snap --mode cow --timeout $(ms 5400) \
		--env CPY_TIMEOUT=$(ms 1800) --stdin /lab/tests/lab/cpython-tests.sh -- sh -s"
	cp /tmp/cpython.out /out/cpython.out 2>/dev/null || true
	ns=$(grep -c '^  .*skipped' /tmp/cpython.out || true)
	res=$(grep -E '^(All [0-9]+ tests OK|[0-9]+ tests? failed|Total duration)' /tmp/cpython.out | tr '\n' ' ' || true)
	if [ "$rc" = 0 ]; then mark cpython PASS "$res; $ns skips listed with reasons (out/cpython.out)"
	else mark cpython FAIL "exit $rc: $res; $(grep -A3 '^== failures' /tmp/cpython.out | tail -n 3 | tr '\n' ' ')"; fi
}

# The plan: each group between BEGIN and END lines (the host's watchdog names
# the group L1 froze in from the last BEGIN).
i=0
for g in $(cat /lab/plan); do
	if [ "$i" -ge "$FROM" ]; then
		echo "SNAPBOX-LAB-BEGIN $i $g"
		# Names of their own: groups use t0/t1 for their timings. The ||
		# keeps a group's own error from ending PID 1 (a kernel panic).
		plan_t0=$(uptime_cs)
		"group_$(echo "$g" | tr - _)" || mark "$g" FAIL "the group's script failed (exit $?)"
		plan_t1=$(uptime_cs)
		echo "SNAPBOX-LAB-END $i $g $(((plan_t1 - plan_t0) / 100)).$(((plan_t1 - plan_t0) % 100 / 10))"
	fi
	i=$((i + 1))
done
finish
