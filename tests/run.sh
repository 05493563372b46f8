#!/bin/sh
# tests/run.sh - `make test`: the unit tests, then every KVM test wherever KVM is (this host's /dev/kvm, else the nested lab), and a summary of where each suite ran and how long it took.
#
# Usage: tests/run.sh   (from `make test`, which builds what it names first)
#
# Where the KVM tests run, from SNAPBOX_KVM:
#   auto (default)  native when /dev/kvm opens read-write, else the lab
#   native          this host's /dev/kvm (fails when it is unusable)
#   lab             the nested lab, even with a usable /dev/kvm
#   skip            nowhere: an explicit opt-out, reported loudly; never a pass
#                   of the KVM tests, and only the unit tests decide the exit status
# Native: the probe KVM suite, its ASan + UBSan build, peer-check and the
# service's API tests on the probe here, then the lab for the Linux guest and
# the service's Linux API tests (which needs real KVM semantics). Lab: all
# of them inside one lab run. A KVM test that ran nowhere is a failure:
# SNAPBOX_KVM_REQUIRED=1 turns every KVM test's skip into a failure.
#
# Deadlines: every deadline of the suites is multiplied by SNAPBOX_TIME_SCALE
# (default 1 here; the lab calibrates its own unless it is set by hand). The
# summary prints the factors used.
#
# Environment: BUILD (default build), BUILD_ASAN (default build-asan),
# SNAPBOX_TIME_SCALE.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BUILD_ASAN=${BUILD_ASAN:-build-asan}
where=${SNAPBOX_KVM:-auto}
t_start=$(date +%s)
summary=""
failed=0

# row NAME WHERE SECONDS VERDICT: one line of the summary.
row() {
	summary="$summary$(printf '  %-34s %-8s %6ss  %s' "$1" "$2" "$3" "$4")
"
	case $4 in PASS*) ;; *) failed=1 ;; esac
}
# stage NAME WHERE CMD...: run CMD, time it, add its row.
stage() {
	n=$1 w=$2; shift 2
	printf '\n==== %s (%s): %s\n' "$n" "$w" "$*"
	t0=$(date +%s)
	if "$@"; then v=PASS; else v="FAIL (exit $?)"; fi
	row "$n" "$w" $(($(date +%s) - t0)) "$v"
}

export SNAPBOX_AGENT="$BUILD/guest/agent" SNAPBOX_MKINITRAMFS="$BUILD/mkinitramfs" SNAPBOX_CLI="$BUILD/snapbox"
stage unit native "$BUILD/tests/unit" --jobs 1

case $where in
auto)
	where=$(sh tests/lab/where.sh)
	echo "make test: KVM tests run $( [ $where = native ] && echo "natively on /dev/kvm" || echo "in the nested lab: no usable /dev/kvm here")" ;;
native | lab | skip) ;;
*) echo "make test: SNAPBOX_KVM=$where: want auto, native, lab or skip" >&2; exit 2 ;;
esac

# Lab group rows: one per SNAPBOX-LAB-END line of the lab's console log.
lab_rows() {
	awk '/^SNAPBOX-LAB-BEGIN / { g = $3; f = 0; n = 0 }
		/^SNAPBOX-LAB [^ ]*: (PASS|FAIL)/ { n++; if ($3 == "FAIL") f++ }
		/^SNAPBOX-LAB-END / { split($4, t, "."); v = f ? sprintf("FAIL (%d of %d)", f, n) : sprintf("PASS (%d)", n)
			printf "  %-34s %-8s %6ss  %s, L1 time (emulated)\n", "  lab group " $3, "lab", t[1], v }' \
		"$BUILD/lab/serial.log" 2>/dev/null
}

kvm_suite() { # kvm_suite BUILDDIR: the probe KVM suite of that build, natively
	SNAPBOX_KVM_REQUIRED=1 SNAPBOX_PROBE="$BUILD/guest/probe.elf" SNAPBOX_CLI="$1/snapbox" "$1/tests/kvm" --jobs 1
}
peer_check() {
	command -v qemu-system-x86_64 >/dev/null 2>&1 || { echo "peer-check: qemu-system-x86_64 missing (make deps)"; return 1; }
	BUILD=$BUILD python3 bench/peer-qemu --iterations 2 --warmup 0 --pool-runs 2 --json "$BUILD/bench-peer-check.json"
}

# snapboxd's API and SDK tests on the probe (sdk/python/tests/test_api.py), with
# Debian's Python and pytest; a skipped test is a failure (SNAPBOX_KVM_REQUIRED).
api_tests() {
	b=$(cd "$BUILD" && pwd)
	(cd sdk/python && PYTHONDONTWRITEBYTECODE=1 SNAPBOX_KVM_REQUIRED=1 SNAPBOXD="$b/snapboxd" \
		SNAPBOX_CLI="$b/snapbox" SNAPBOX_PROBE="$b/guest/probe.elf" \
		/usr/bin/python3 -m pytest -q -rs -p no:cacheprovider tests/test_api.py tests/test_security.py)
}

case $where in
native)
	stage "probe KVM suite" native kvm_suite "$BUILD"
	stage "probe KVM suite, ASan+UBSan" native kvm_suite "$BUILD_ASAN"
	stage peer-check native peer_check
	stage "service API (probe)" native api_tests
	stage "Linux guest (lab)" lab sh tests/lab/lab.sh probe linux bzimage agent run linux-tests api-linux image \
		cpython
	summary="$summary$(lab_rows)
" ;;
lab)
	stage "all KVM tests (lab)" lab sh tests/lab/lab.sh probe kvm-suite kvm-suite-asan peer-check api \
		linux bzimage agent run linux-tests api-linux image cpython
	summary="$summary$(lab_rows)
" ;;
skip)
	for s in "probe KVM suite" "probe KVM suite, ASan+UBSan" peer-check "service API (probe)" "Linux guest (lab)"; do
		summary="$summary$(printf '  %-34s %-8s %6s   %s' "$s" nowhere - "NOT RUN")
"
	done ;;
esac

t=$(($(date +%s) - t_start))
lab_scale=$(awk '/^SNAPBOX-LAB-SCALE / { print $2; exit }' "$BUILD/lab/serial.log" 2>/dev/null)
printf '\n==== make test summary (KVM tests: %s; deadline factor: %s here%s)\n%s' "$where" \
	"${SNAPBOX_TIME_SCALE:-1}" "${lab_scale:+, $lab_scale in the lab}" "$summary"
if [ "$where" = skip ]; then
	cat <<'EOF'
  ************************************************************************
  * SNAPBOX_KVM=skip: NO KVM TEST RAN. The VMM, snapshot and restore code  *
  * is untested by this run; only the unit tests above passed or failed.  *
  ************************************************************************
EOF
fi
if [ "$failed" = 0 ]; then
	printf '  total %dm%02ds: PASS\n' $((t / 60)) $((t % 60))
	exit 0
fi
printf '  total %dm%02ds: FAIL\n' $((t / 60)) $((t % 60))
exit 1
