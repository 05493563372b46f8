#!/bin/sh
# demo.sh - the README's main demo: cold boot, snapshot, restore, a PING in the restored sandbox, a short restore benchmark; in the nested lab when this host has no usable /dev/kvm.
set -eu
B=${BUILD:-build}
SNAP="$B/demo-snapshot"

if [ "${SNAPBOX_DEMO_IN_LAB:-0}" = 1 ]; then
	echo "== KVM backend: real kvm-amd inside the nested lab (QEMU TCG emulates the CPU: every time below is emulated and means nothing)."
elif [ "$(sh tests/lab/where.sh)" = lab ]; then
	echo "No usable /dev/kvm here, so the demo runs inside an emulated KVM host (the nested lab, QEMU TCG); its timings mean nothing (real ones: docs/benchmarks.md)."
	BUILD=$B LAB_SHOW=1 LAB_TIMEOUT=${LAB_TIMEOUT:-600} exec sh tests/lab/lab.sh demo
elif grep -qE '\b(vmx|svm)\b' /proc/cpuinfo; then
	echo "== KVM backend: hardware. The demo uses the probe guest (make guest initramfs, then snapbox run, for the Linux guest: README)."
else
	echo "== KVM backend: KVM-PVM (no vmx/svm). An unmodified Linux kernel cannot run at useful speed"
	echo "   here (its ring-0 code is emulated), so the demo uses the probe guest, which runs in ring 3."
fi
echo
echo "== 1. cold boot to READY"
"$B/snapbox" boot --kernel "$B/guest/probe.elf" --mem 256M
echo
echo "== 2. cold boot, fill 32 MiB with a realistic page mix, snapshot"
"$B/snapbox" snapshot --kernel "$B/guest/probe.elf" --mem 256M --fill 32 --out "$SNAP" --no-sync
echo
echo "== 3. inspect the snapshot, verifying every chunk"
"$B/snapbox" inspect "$SNAP" --verify
echo
echo "== 4. restore (copy-on-write) and PING the restored guest"
"$B/snapbox" restore "$SNAP" --mode cow --resume
echo
echo "== 5. short restore benchmark (eager, cow, pooled cow)"
"$B/bench/restore" --snapshot "$SNAP" --runs 10 --warmup 1
