#!/bin/sh
# tests/lab/lab.sh - the nested KVM lab: Debian's cloud kernel under QEMU/TCG with an emulated SVM CPU runs kvm-amd, and snapbox's tests (or any command) run on it.
#
# Usage: tests/lab/lab.sh [GROUP...]   run these test groups in L1 (default: $LAB_PLAN)
#        tests/lab/lab.sh --fetch      only fetch the L1 cloud kernel and L0's QEMU into the cache (make deps)
#        tests/lab/lab.sh --list       print the groups and what each runs
# The exit status is the verdict: 0 only when every test passed and no group
# froze L1 twice.
#
# L1 = qemu-system-x86_64 -accel tcg -M q35 -cpu EPYC,+svm,+npt -m 3072 booting
# Debian's linux-image-cloud-amd64 with a small initramfs (busybox, the
# modules, tests/lab/l1-init.sh as /init). Everything else reaches L1 on disks:
#   /dev/vda  "in": an ext4 image of a staging tree, mounted read-only at /lab:
#             the build outputs at their build-tree paths (/lab/build/snapbox,
#             /lab/build/tests/kvm, /lab/build-asan/..., /lab/bench/peer-qemu,
#             ...), the guest kernels, and /lab/sys, the host's shared libraries,
#             Python and QEMU (L1's /usr, /lib and /lib64 point into it).
#   /dev/vdb  "out": a blank disk L1 writes a tar of its /out to when it ends;
#             unpacked into $LAB_OUT. Tests put snapshots, JSON and logs there.
# With LAB_HOSTFWD, L1 also gets user networking with host ports forwarded
# from 127.0.0.1 only.
#
# Watchdog (independent of L1): L1 prints a heartbeat line every 5 s. When the
# console stays silent for LAB_FREEZE seconds, the host kills QEMU, reports
# "L1 froze during <group>", and runs that group and the rest once more in a
# fresh L1. A second freeze fails the run. Freezes are counted in the verdict.
#
# Environment:
#   BUILD            build directory (default build); BUILD_ASAN (default build-asan)
#   LAB_PLAN         default groups (default: "probe linux bzimage agent run linux-tests")
#   LAB_CMD          shell command for the "cmd" group, run in /lab (cwd) inside L1
#   LAB_RUNS         runs (pairs) of the bench and peer groups (default 10)
#   LAB_PUT          "SRC:DEST ..." extra host files or directories, put at /lab/DEST
#   LAB_OUT          where L1's /out is unpacked (default $BUILD/lab/out)
#   LAB_HOSTFWD      "HOSTPORT:GUESTPORT ..." TCP ports forwarded from 127.0.0.1:HOSTPORT
#   LAB_TIMEOUT      overall limit in seconds (default 2400)
#   LAB_TEST_TIMEOUT limit for each test inside L1, seconds (default 900)
#   LAB_FREEZE       seconds of console silence that mean L1 froze (default 60)
#   SNAPBOX_TIME_SCALE  the deadline factor inside L1 (1..1000); unset: L1
#                    calibrates it (tests/lab/l1-init.sh). Once L1 reports it,
#                    LAB_TIMEOUT and LAB_FREEZE grow by half of it (at least 1x):
#                    they are set for a quiet lab, whose factor is 2
#   LAB_SMP          L1 vCPUs (default 1)
#   LAB_CPU          L1's CPU model (default EPYC,+svm,+npt,+svme-addr-chk; see the freeze note below)
#   LAB_VERBOSE=1    show the whole serial console, not just the markers
#   LAB_SHOW=1       show the tests' own output ("| " lines) with the markers
#   LAB_VMLINUX      guest kernel (default: guest/linux/build.sh --path); "none" skips the Linux groups
#   LAB_INITRAMFS    agent initramfs (default $BUILD/guest/initramfs.cpio.gz, if present)
#   LAB_L1_KERNEL, LAB_L1_MODULES  an L1 bzImage and its /lib/modules/<ver> directory
#   LAB_QEMU         the QEMU that runs L1 (default: QEMU from bookworm-backports, fetched
#                    into the cache; qemu-system-x86_64 on PATH when that fails)
#   LAB_BACKPORTS    the apt source line of the backports QEMU (default
#                    "http://deb.debian.org/debian bookworm-backports main")
#   LAB_LOCK         a lock file held (flock) while the build's outputs are copied
#   SNAPBOX_CACHE    cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/snapbox)
set -eu
# The whole script is one brace group, read before it runs: editing this file
# during a (long) run cannot change what the run does.
{
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BUILD_ASAN=${BUILD_ASAN:-build-asan}
cache=${SNAPBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/snapbox}
work="$BUILD/lab"
LAB_TIMEOUT=${LAB_TIMEOUT:-2400}
LAB_TEST_TIMEOUT=${LAB_TEST_TIMEOUT:-900}
LAB_FREEZE=${LAB_FREEZE:-60}
LAB_SMP=${LAB_SMP:-1}
LAB_CPU=${LAB_CPU:-EPYC,+svm,+npt,+svme-addr-chk}
LAB_VERBOSE=${LAB_VERBOSE:-0}
LAB_OUT=${LAB_OUT:-$BUILD/lab/out}
qemu=${LAB_QEMU:-qemu-system-x86_64}
start=$(date +%s)
lab_scale=""
if [ -n "${SNAPBOX_TIME_SCALE:-}" ]; then
	awk -v f="$SNAPBOX_TIME_SCALE" 'BEGIN { exit !(f ~ /^[0-9]+(\.[0-9]+)?$/ && f >= 1 && f <= 1000) }' ||
		{ printf 'lab: error: SNAPBOX_TIME_SCALE=%s: want a number from 1 to 1000\n' "$SNAPBOX_TIME_SCALE" >&2; exit 2; }
	lab_scale="lab_scale=$SNAPBOX_TIME_SCALE"
fi

say() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 2; }
elapsed() { s=$(($(date +%s) - start)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

if [ "${1:-}" = --list ]; then
	cat <<'EOF'
probe          probe guest: cold boot, snapshot, eager and cow restore + PING (snapbox CLI)
kvm-suite      the probe KVM test suite ($BUILD/tests/kvm), one marker per Criterion suite
kvm-suite-asan the same suite built with ASan + UBSan ($BUILD_ASAN/tests/kvm; make asan-build)
peer-check     bench/peer-qemu, 2 pairs: QEMU -M microvm and snapbox both reach PONG
linux          our guest vmlinux with the lab's shell init: boot, snapshot, restore + PING
bzimage        Debian's cloud bzImage (a user's kernel) through snapbox's bzImage loader
agent          our vmlinux with the agent's initramfs: all BOOT_TIME stages
run            snapbox run: cold boot, restore per mode, exit codes, signals, env, 256 KiB out
linux-tests    the Linux end-to-end suites ($BUILD/tests/linux)
api            snapboxd's API and SDK tests on the probe guest (sdk/python/tests/test_api.py)
api-linux      snapboxd's API and SDK tests on the Linux guest (sdk/python/tests/test_linux.py)
image          the python guest image (make image): snapbox run --image, a pre-warmed snapshot,
               what real programs expect (guest-real.sh), --user; the node image's smoke test;
               unique clones, snapshot size with and without init_on_free=1, PSS per cow clone
cpython        CPython's own regression tests (Debian's libpython3.11-testsuite, the
               python-tests image) in a clone of a pre-warmed snapshot: tests/lab/cpython-tests.sh
demo           tools/demo.sh (make demo's steps) with its output
bench          bench/coldboot, bench/restore, snapbox bench ($LAB_RUNS runs; JSON in $LAB_OUT; emulated)
peer           bench/peer-qemu, $LAB_RUNS pairs (JSON in $LAB_OUT/bench-peer.json; emulated)
cmd            $LAB_CMD in /lab, its output and exit status
watchdog-selftest  goes silent in the first L1 (as a frozen L1 would) and passes in the rerun:
               the run must end PASS with 1 L1 freeze (make lab-selftest)
EOF
	exit 0
fi

# fetch_debs DIR PKG=VER...: apt-get download the packages (with $APT_OPTS)
# and unpack them into DIR/root, once: DIR/.unpacked marks a finished one.
# Nothing is installed. Returns non-zero when a package did not arrive.
APT_OPTS=""
fetch_debs() {
	fd=$1; shift
	[ -f "$fd/.unpacked" ] && return 0
	say "fetching $* (apt-get download; unpacked into $fd, not installed)"
	rm -rf "$fd" "$fd.tmp" && mkdir -p "$fd.tmp/deb"
	# apt drops to the _apt user to download; let it write there.
	chmod 0777 "$fd.tmp/deb"
	# shellcheck disable=SC2086
	(cd "$fd.tmp/deb" && apt-get $APT_OPTS download -q "$@" 2>&1 |
		grep -v '^W: Download is performed unsandboxed' >&2) || true
	[ "$(ls "$fd.tmp"/deb/*.deb 2>/dev/null | wc -l)" = $# ] || return 1
	for d in "$fd.tmp"/deb/*.deb; do dpkg-deb -x "$d" "$fd.tmp/root" || return 1; done
	rm -rf "$fd.tmp/deb"
	touch "$fd.tmp/.unpacked"
	mv "$fd.tmp" "$fd"
}

# --- L1 kernel and modules ----------------------------------------------------
l1_kernel=${LAB_L1_KERNEL:-}
l1_mods=${LAB_L1_MODULES:-}
if [ -z "$l1_kernel" ]; then
	for k in $(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V -r); do
		v=${k#/boot/vmlinuz-}
		if [ -r "$k" ] && ls "/lib/modules/$v/kernel/arch/x86/kvm/kvm-amd.ko"* >/dev/null 2>&1; then
			l1_kernel=$k l1_mods=/lib/modules/$v
			break
		fi
	done
fi
if [ -z "$l1_kernel" ]; then
	command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || die "no cloud kernel and no apt-get/dpkg-deb to fetch one"
	pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
	[ -n "$pkg" ] || die "apt does not know linux-image-cloud-amd64; run: apt-get update"
	ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
	dir="$cache/lab/$pkg-$ver"
	fetch_debs "$dir" "$pkg=$ver" || die "apt-get download $pkg=$ver failed"
	kv=${pkg#linux-image-}
	l1_kernel="$dir/root/boot/vmlinuz-$kv"
	l1_mods="$dir/root/lib/modules/$kv"
fi
[ -r "$l1_kernel" ] || die "L1 kernel $l1_kernel not readable"
[ -d "$l1_mods" ] || die "L1 modules directory $l1_mods missing"

# --- L0: the QEMU that emulates L1 ---------------------------------------------
# QEMU 10 from Debian's bookworm-backports, fetched and unpacked into the
# cache like the L1 kernel (bookworm's own QEMU stays installed for the peer
# benchmark and for L1's /usr). Why: under bookworm's QEMU 7.2, L2 sometimes
# took an interrupt injected during an interrupt window inside the sti
# shadow, so `sti; hlt` halted after the handler with the UART's data
# unread and nothing left to wake it (docs/architecture.md, "The nested
# lab"); 10.0 did not, in the same loop under the same load.
BACKPORTS=${LAB_BACKPORTS:-http://deb.debian.org/debian bookworm-backports main}
fetch_qemu() {
	ab="$cache/lab/apt-backports"
	mkdir -p "$ab/lists/partial" "$ab/archives/partial"
	printf 'deb %s\n' "$BACKPORTS" >"$ab/sources.list"
	APT_OPTS="-o Dir::Etc::SourceList=$ab/sources.list -o Dir::Etc::SourceParts=/dev/null
		-o Dir::State::Lists=$ab/lists -o Dir::Cache=$ab -o Dir::State::Status=/var/lib/dpkg/status"
	# shellcheck disable=SC2086
	{ apt-get $APT_OPTS update -qq 2>&1 || echo "lab: apt-get update of $BACKPORTS failed"; } |
		{ grep -v '^W: Download is performed unsandboxed' >&2 || true; }
	# shellcheck disable=SC2086
	qv=$(apt-cache $APT_OPTS show qemu-system-x86 2>/dev/null | awk '/^Version:/ {print $2}' | sort -V | tail -n 1)
	[ -n "$qv" ] || return 1
	qdir="$cache/lab/qemu-$(printf '%s' "$qv" | tr -c 'A-Za-z0-9.+~_-' '_')"
	fetch_debs "$qdir" "qemu-system-x86=$qv" "qemu-system-common=$qv" "qemu-system-data=$qv" >&2 || return 1
	printf '%s\n' "$qdir"
}
qemu_args=""
if [ -z "${LAB_QEMU:-}" ]; then
	# The newest one already unpacked, else a fetch; bookworm's own only when both fail.
	qdir=$(ls -d "$cache"/lab/qemu-*/ 2>/dev/null | sort -V | tail -n 1)
	qdir=${qdir%/}
	if [ -z "$qdir" ] || [ ! -f "$qdir/.unpacked" ] || [ "${1:-}" = --fetch ]; then
		qdir=$(fetch_qemu) || qdir=""
	fi
	if [ -n "$qdir" ] && [ -x "$qdir/root/usr/bin/qemu-system-x86_64" ]; then
		missing=$(ldd "$qdir/root/usr/bin/qemu-system-x86_64" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ')
		if [ -z "$missing" ]; then
			qemu="$qdir/root/usr/bin/qemu-system-x86_64"
			# Its own ROMs first, then bookworm's SeaBIOS and the rest of bookworm's QEMU data.
			qemu_args="-L $qdir/root/usr/share/qemu -L /usr/share/seabios -L /usr/share/qemu"
		else
			say "warning: $qdir's QEMU lacks libraries ($missing); using $qemu (QEMU 7.2 can lose an interrupt in L2)"
		fi
	else
		say "warning: could not fetch QEMU from bookworm-backports; using $qemu (QEMU 7.2 can lose an interrupt in L2)"
	fi
fi
qemu_version=$("$qemu" --version 2>/dev/null | sed -n '1s/^QEMU emulator version \([^ ]*\).*/QEMU \1/p')
if [ "${1:-}" = --fetch ]; then say "L1 kernel: $l1_kernel; L0: ${qemu_version:-?} ($qemu)"; exit 0; fi

# --- the plan -----------------------------------------------------------------
plan=${*:-${LAB_PLAN:-probe linux bzimage agent run linux-tests}}
for g in $plan; do
	case $g in
	probe | kvm-suite | kvm-suite-asan | peer-check | linux | bzimage | agent | run | linux-tests | demo | cmd | \
		watchdog-selftest | bench | peer | api | api-linux | image | cpython) ;;
	*) die "unknown group '$g' (tests/lab/lab.sh --list)" ;;
	esac
done
has_group() { case " $plan " in *" $1 "*) return 0 ;; esac; return 1; }

# One lab run per build directory at a time: runs share $work (disks, logs).
mkdir -p "$work"
exec 9>"$work.lock"
if ! flock -n 9; then
	say "another lab run is using $work; waiting for it"
	flock 9
fi

# --- inputs -----------------------------------------------------------------
for t in "$qemu" cpio gzip timeout ldd readelf mkfs.ext4 tar truncate flock; do
	command -v "$t" >/dev/null 2>&1 || die "$t not found; run: make lab-deps"
done
busybox=${LAB_BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] && readelf -d "$busybox" 2>&1 | grep -q 'no dynamic section' ||
	die "$busybox is not a static busybox; run: make lab-deps (busybox-static)"
[ -x "$BUILD/snapbox" ] || die "$BUILD/snapbox not built; run: make"
[ -f "$BUILD/guest/probe.elf" ] || die "$BUILD/guest/probe.elf not built; run: make"
vmlinux=""
if has_group linux || has_group agent || has_group run || has_group linux-tests || has_group api-linux ||
	has_group image; then
	vmlinux=${LAB_VMLINUX:-$(sh guest/linux/build.sh --path || true)}
	if [ "$vmlinux" = none ]; then
		vmlinux=""
		say "LAB_VMLINUX=none: the Linux guest groups are skipped"
	else
		[ -n "$vmlinux" ] && [ -f "$vmlinux" ] || die "no guest vmlinux; run: make guest (or LAB_VMLINUX=none)"
	fi
fi
initramfs=${LAB_INITRAMFS:-$BUILD/guest/initramfs.cpio.gz}
[ -f "$initramfs" ] || initramfs=""
if has_group kvm-suite-asan && [ ! -x "$BUILD_ASAN/tests/kvm" ]; then
	die "$BUILD_ASAN/tests/kvm not built; run: make asan-build"
fi

# --- the "in" disk: a staging tree at build-tree paths --------------------------
# With LAB_LOCK, copying the build's outputs happens under that flock, so a
# concurrent build cannot hand us a half-linked binary.
if [ -n "${LAB_LOCK:-}" ]; then exec 8>"$LAB_LOCK" && flock 8; fi
say "staging L1's inputs in $work (L1 kernel $(basename "$l1_kernel")); groups: $plan"
rm -rf "$work/stage1" "$work/in" "$work/stage2"
mkdir -p "$work/stage1/bin" "$work/stage1/modules" "$work/in/sys" "$work/stage2/bin"
s1="$work/stage1" in="$work/in"

# put SRC DEST: copy SRC (file or directory) to /lab/DEST.
put() {
	mkdir -p "$in/$(dirname "$2")"
	cp -a "$1" "$in/$2"
}
# put_bin SRC DEST: a dynamically linked binary at /lab/DEST and every library
# ldd names at its own path under /lab/sys (L1's /lib, /lib64, /usr point there).
put_bin() {
	put "$1" "$2"
	ldd "$1" 2>/dev/null | awk '/=> \// {print $3} /^[ \t]*\/[^ ]+ \(/ {print $1}' | while read -r lib; do
		[ -e "$in/sys$lib" ] && continue
		mkdir -p "$in/sys$(dirname "$lib")"
		cp -L "$lib" "$in/sys$lib"
	done
}
put_bin "$BUILD/snapbox" "$BUILD/snapbox"
put "$BUILD/guest/probe.elf" "$BUILD/guest/probe.elf"
[ -z "$initramfs" ] || put "$initramfs" "$BUILD/guest/initramfs.cpio.gz"
[ -z "$vmlinux" ] || put "$vmlinux" vmlinux
! has_group bzimage || put "$l1_kernel" bzImage
if has_group kvm-suite || has_group cmd; then
	[ -x "$BUILD/tests/kvm" ] || die "$BUILD/tests/kvm not built; run: make"
	put_bin "$BUILD/tests/kvm" "$BUILD/tests/kvm"
fi
if has_group kvm-suite || has_group peer-check || has_group demo || has_group cmd || has_group bench ||
	has_group peer; then
	for b in "$BUILD"/bench/*; do [ -f "$b" ] && [ -x "$b" ] && put_bin "$b" "$b"; done
	put bench/peer-qemu bench/peer-qemu
	put bench/api bench/api
	put tools/demo.sh tools/demo.sh
fi
if has_group kvm-suite-asan; then
	put_bin "$BUILD_ASAN/tests/kvm" "$BUILD_ASAN/tests/kvm"
	put_bin "$BUILD_ASAN/snapbox" "$BUILD_ASAN/snapbox"
	put "$BUILD/guest/probe.elf" "$BUILD_ASAN/guest/probe.elf"
fi
if has_group linux-tests; then
	for t in "$BUILD"/tests/linux*; do [ -x "$t" ] && put_bin "$t" "$t"; done
fi
if has_group image; then
	image=${LAB_IMAGE:-$(sh guest/image/build.sh --path --agent "$BUILD/guest/agent" --mkinitramfs "$BUILD/mkinitramfs" 2>/dev/null || true)}
	[ -n "$image" ] && [ -f "$image" ] || die "no python guest image; run: make image"
	put "$image" image.cpio.gz
	put tests/lab/guest-real.sh tests/lab/guest-real.sh
	nimage=${LAB_NODE_IMAGE:-$(sh guest/image/build.sh --path --name node --agent "$BUILD/guest/agent" \
		--mkinitramfs "$BUILD/mkinitramfs" 2>/dev/null || true)}
	[ -n "$nimage" ] && [ -f "$nimage" ] || die "no node guest image; run: make node-image"
	put "$nimage" image-node.cpio.gz
fi
if has_group cpython; then
	timage=${LAB_TESTS_IMAGE:-$(sh guest/image/build.sh --path --name python-tests --agent "$BUILD/guest/agent" \
		--mkinitramfs "$BUILD/mkinitramfs" 2>/dev/null || true)}
	[ -n "$timage" ] && [ -f "$timage" ] || die "no python-tests guest image; run: make image IMAGE_NAME=python-tests"
	put "$timage" image-tests.cpio.gz
	put tests/lab/cpython-tests.sh tests/lab/cpython-tests.sh
fi
if has_group api || has_group api-linux || has_group bench || has_group image; then
	# The service, its Python SDK and tests, Debian's pytest and promtool.
	[ -x "$BUILD/snapboxd" ] || die "$BUILD/snapboxd not built; run: make"
	put_bin "$BUILD/snapboxd" "$BUILD/snapboxd"
	put sdk/python sdk/python
	put_bin /usr/bin/promtool sys/usr/bin/promtool
	# openssl makes the HTTPS test's certificate (with its default configuration).
	command -v openssl >/dev/null || die "openssl is not installed (make deps)"
	put_bin "$(command -v openssl)" sys/usr/bin/openssl
	if [ -f /usr/lib/ssl/openssl.cnf ]; then
		mkdir -p "$in/sys/usr/lib/ssl" && cp -L /usr/lib/ssl/openssl.cnf "$in/sys/usr/lib/ssl/"
	fi
	for m in _pytest pytest pluggy iniconfig packaging attr attrs py py.py; do
		[ -e "/usr/lib/python3/dist-packages/$m" ] || die "python3-pytest is not installed (make deps)"
		put "/usr/lib/python3/dist-packages/$m" "sys/usr/lib/python3/dist-packages/$m"
	done
fi
if has_group peer-check || has_group peer || has_group api || has_group api-linux || has_group bench ||
	has_group image; then
	# Debian's QEMU and Python (not a pyenv one on PATH), with what they load.
	if has_group peer-check || has_group peer; then
		put_bin "$(command -v qemu-system-x86_64)" sys/usr/bin/qemu-system-x86_64
		for d in /usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu; do
			[ -d "$d" ] && { mkdir -p "$in/sys$(dirname "$d")"; cp -rL "$d" "$in/sys$d"; }
		done
	fi
	py=/usr/bin/python3.11
	[ -x "$py" ] || die "$py missing: run make deps (Debian's python3)"
	put_bin "$py" sys/usr/bin/python3
	mkdir -p "$in/sys/usr/lib"
	(cd /usr/lib && tar -cf - --exclude=python3.11/test --exclude=python3.11/idlelib \
		--exclude=python3.11/tkinter --exclude='python3.11/lib2to3' --exclude='python3.11/ensurepip' \
		python3.11) | tar -xf - -C "$in/sys/usr/lib"
	for m in "$in"/sys/usr/lib/python3.11/lib-dynload/*.so; do
		ldd "$m" 2>/dev/null | awk '/=> \// {print $3}' | while read -r lib; do
			[ -e "$in/sys$lib" ] || { mkdir -p "$in/sys$(dirname "$lib")"; cp -L "$lib" "$in/sys$lib"; }
		done
	done
fi
for pair in ${LAB_PUT:-}; do
	src=${pair%%:*} dest=${pair#*:}
	[ -e "$src" ] || die "LAB_PUT: $src does not exist"
	put "$src" "$dest"
done
printf '%s\n' "${LAB_CMD:-}" >"$in/lab-cmd.sh"
printf '%s\n' $plan >"$in/plan"
printf 'BUILD=%s\nBUILD_ASAN=%s\n' "$BUILD" "$BUILD_ASAN" >"$in/lab-env"

# The L1 initramfs: busybox, /init and the modules, in load order.
mod_file() {
	a=$(printf '%s' "$1" | tr _ -) b=$(printf '%s' "$1" | tr - _)
	find "$l1_mods/kernel" \( -name "$a.ko*" -o -name "$b.ko*" \) | head -n 1
}
# mod_add NAME: decompress NAME and, first, its dependencies into stage1.
mod_add() {
	grep -qx "$1" "$s1/modules.order" 2>/dev/null && return 0
	f=$(mod_file "$1")
	[ -n "$f" ] || die "module $1 not found under $l1_mods"
	case "$f" in
	*.ko.xz) xz -dc "$f" >"$s1/modules/$1.ko" ;;
	*.ko.zst) zstd -qdc "$f" >"$s1/modules/$1.ko" ;;
	*.ko.gz) gzip -dc "$f" >"$s1/modules/$1.ko" ;;
	*) cp "$f" "$s1/modules/$1.ko" ;;
	esac
	deps=$(tr '\0' '\n' <"$s1/modules/$1.ko" | sed -n 's/^depends=//p' | head -n 1 | tr , ' ')
	for d in $deps; do mod_add "$d"; done
	echo "$1" >>"$s1/modules.order"
}
: >"$s1/modules.order"
for m in kvm-amd virtio_pci virtio_blk; do mod_add "$m"; done
[ -z "${LAB_HOSTFWD:-}" ] || mod_add virtio_net
cp "$busybox" "$s1/bin/busybox"
cp tests/lab/l1-init.sh "$s1/init" && chmod 0755 "$s1/init"

# The tiny L2 initramfs (the lab's shell init for the Linux groups).
cp "$busybox" "$work/stage2/bin/busybox"
cp tests/lab/l2-init.sh "$work/stage2/init" && chmod 0755 "$work/stage2/init"
# cpio_dir DIR: a reproducible newc archive of DIR on stdout.
cpio_dir() {
	(cd "$1" && find . -exec touch -h -d @0 {} + && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
}
cpio_dir "$work/stage2" | gzip -9n >"$in/l2-init.cpio.gz"
# Uncompressed: L1 unpacks it under TCG, where gunzip would cost seconds.
cpio_dir "$s1" >"$work/L1.cpio"
# The in disk: the staging tree as ext4, 25% and 64 MiB of room over its size.
kib=$(du -sk "$in" | cut -f1)
rm -f "$work/in.img"
truncate -s $(((kib + kib / 4 + 65536) * 1024)) "$work/in.img"
mkfs.ext4 -q -F -L lab-in -E root_owner=0:0 -O ^has_journal -d "$in" "$work/in.img" ||
	die "mkfs.ext4 -d failed (e2fsprogs 1.43 or later is needed)"
if [ -n "${LAB_LOCK:-}" ]; then flock -u 8 && exec 8>&-; fi
say "L1 initramfs $(du -h "$work/L1.cpio" | cut -f1) (modules: $(tr '\n' ' ' <"$s1/modules.order")); in disk $((kib / 1024)) MiB"

# --- run ---------------------------------------------------------------------
nic="-nic none"
if [ -n "${LAB_HOSTFWD:-}" ]; then
	fw=""
	for p in $LAB_HOSTFWD; do fw="$fw,hostfwd=tcp:127.0.0.1:${p%%:*}-:${p#*:}"; done
	nic="-nic user,model=virtio-net-pci,restrict=on$fw"
fi
if [ "$LAB_VERBOSE" = 1 ]; then filter='^'
elif [ "${LAB_SHOW:-0}" = 1 ]; then filter='^SNAPBOX-LAB[ -]\|^| \|^== '
else filter='^SNAPBOX-LAB[ -]'; fi
serial="$work/serial.log"
: >"$serial"
freezes=0 froze="" from=0 attempt=0 verdict="" ngroups=$(echo $plan | wc -w)
scale="" freeze_lim=$LAB_FREEZE timeout_lim=$LAB_TIMEOUT
# freeze_evidence N: before a silent L1 is killed, what its CPU and QEMU's
# threads were doing: the HMP monitor's registers and LAPIC (is L1 halted,
# with interrupts on, and is a timer armed?), and QEMU's thread stacks.
freeze_evidence() {
	ev="$work/freeze.$1.txt"
	{
		echo "== QEMU threads (wchan)"
		for t in /proc/$qpid/task/*; do echo "$(cat "$t/comm") $(cat "$t/wchan" 2>/dev/null)"; done
		echo "== HMP: info registers, info lapic"
		python3 - "$work/evidence.sock" <<'PY' 2>&1 || true
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
def cmd(c):
    s.sendall((c + "\n").encode()); time.sleep(1)
    try:
        return s.recv(1 << 20).decode(errors="replace")
    except socket.timeout:
        return "(no answer)"
cmd("")
for c in ("info registers", "info lapic", "info pic"):
    print(cmd(c))
PY
		if command -v gdb >/dev/null 2>&1; then
			echo "== gdb: thread apply all bt"
			timeout 60 gdb -p "$qpid" -batch -ex 'thread apply all bt 12' 2>&1 | grep -v '^\[New LWP'
		fi
	} >"$ev" 2>&1
	say "freeze evidence in $ev: $(grep -o 'HLT=[01]' "$ev" | head -n 1) $(grep -o 'RIP=[0-9a-f]*' "$ev" | head -n 1) $(grep -o 'EFL=[0-9a-f]*' "$ev" | head -n 1)"
}
rm -rf "$LAB_OUT" && mkdir -p "$LAB_OUT"
# Why the loop: a frozen L1 is killed and the group it froze in, with the rest,
# runs once more in a fresh L1; a second freeze is a failure.
while :; do
	attempt=$((attempt + 1))
	log="$work/serial.$attempt.log"
	rm -f "$work/out.img" "$log" && truncate -s 1G "$work/out.img" && : >"$log"
	say "L1 #$attempt under TCG ($qemu_version; -cpu $LAB_CPU, $LAB_SMP vCPU); groups from #$((from + 1)) of $ngroups; silence limit ${LAB_FREEZE}s; console: $log"
	# The L1 kernel command line must never contain a marker: it is echoed on the console.
	# shellcheck disable=SC2086
	"$qemu" $qemu_args -accel tcg,thread=multi -M q35 -cpu "$LAB_CPU" -m 3072 -smp "$LAB_SMP" \
		-display none -no-reboot -serial "file:$log" $nic \
		-monitor "unix:$work/monitor.sock,server=on,wait=off" \
		-monitor "unix:$work/evidence.sock,server=on,wait=off" \
		-drive "file=$work/in.img,if=virtio,format=raw,readonly=on" \
		-drive "file=$work/out.img,if=virtio,format=raw" \
		-kernel "$l1_kernel" -initrd "$work/L1.cpio" \
		-append "console=ttyS0 loglevel=4 panic=-1 lab_timeout=$LAB_TEST_TIMEOUT lab_from=$from lab_attempt=$attempt lab_runs=${LAB_RUNS:-10} $lab_scale" \
		</dev/null >"$work/qemu.$attempt.err" 2>&1 &
	qpid=$!
	# The nudge: one keyboard interrupt a second through QEMU's monitor. QEMU's
	# TCG (7.2 and 10.0) can lose the wake-up of L1's own APIC timer: VMRUN
	# sets a bit in the vCPU's interrupt_request with a plain OR outside the
	# big lock, racing with the main loop's OR of the timer's POLL bit, so
	# L1 halts with the timer vector pending in its APIC (IRR 236) and nothing
	# to wake it. Any external interrupt makes QEMU re-poll the APIC, so L1
	# loses at most a second instead of freezing for good (docs/architecture.md).
	python3 - "$work/monitor.sock" "$qpid" <<'PY' >/dev/null 2>&1 &
import os, socket, sys, time
path, qpid = sys.argv[1], int(sys.argv[2])
def alive():
    try:
        os.kill(qpid, 0)
        return True
    except OSError:
        return False
s = None
for _ in range(100):
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(path); break
    except OSError:
        s = None; time.sleep(0.1)
if s is None:
    sys.exit(0)
s.setblocking(False)
while alive():
    try:
        s.sendall(b"sendkey shift\n")
        while True:
            if not s.recv(65536):
                sys.exit(0)
    except BlockingIOError:
        pass
    except OSError:
        sys.exit(0)
    time.sleep(1)
PY
	npid=$!
	# Live view of the markers (and of everything with LAB_VERBOSE=1).
	(tail -n +1 -F --pid=$qpid "$log" 2>/dev/null | stdbuf -oL tr -d '\r' | grep --line-buffered -a "$filter" | grep --line-buffered -av '^SNAPBOX-LAB-HEARTBEAT' >&2 || true) &
	tpid=$!
	size=-1 quiet=0 why=""
	while kill -0 $qpid 2>/dev/null; do
		sleep 2
		n=$(stat -c %s "$log" 2>/dev/null || echo 0)
		if [ "$n" != "$size" ]; then size=$n quiet=0; else quiet=$((quiet + 2)); fi
		# The factor L1 runs with: the host's own limits grow with the slowdown it measured.
		if [ -z "$scale" ] && [ "$n" -gt 0 ]; then
			scale=$(tr -d '\r' <"$log" | awk '/^SNAPBOX-LAB-SCALE / { print $2; exit }')
			if [ -n "$scale" ]; then
				freeze_lim=$(awk -v b="$LAB_FREEZE" -v f="$scale" 'BEGIN { f /= 2; if (f < 1) f = 1; printf "%d", b * f }')
				timeout_lim=$(awk -v b="$LAB_TIMEOUT" -v f="$scale" 'BEGIN { f /= 2; if (f < 1) f = 1; printf "%d", b * f }')
				say "L1's deadline factor is $scale: silence limit ${freeze_lim}s, overall limit ${timeout_lim}s"
			fi
		fi
		if [ "$quiet" -ge "$freeze_lim" ]; then why=freeze; break; fi
		if [ $(($(date +%s) - start)) -ge "$timeout_lim" ]; then why=timeout; break; fi
	done
	if [ "$why" = freeze ]; then freeze_evidence "$attempt"; fi
	if [ -n "$why" ]; then kill -TERM $qpid 2>/dev/null; sleep 1; kill -KILL $qpid 2>/dev/null || true; fi
	wait $qpid 2>/dev/null || true
	sleep 1; kill $tpid $npid 2>/dev/null || true; wait $tpid $npid 2>/dev/null || true
	if [ "$why" = freeze ]; then
		# The unfinished group runs again: keep only what came before its BEGIN line.
		tr -d '\r' <"$log" | awk '{ l[NR] = $0 } /^SNAPBOX-LAB-BEGIN / { b = NR }
			END { for (i = 1; i < (b ? b : NR + 1); i++) print l[i] }' >>"$serial"
	else
		tr -d '\r' <"$log" >>"$serial"
	fi
	if [ "$why" = timeout ]; then verdict="FAIL: the ${timeout_lim}s limit was reached"; break; fi
	if [ "$why" = freeze ]; then
		freezes=$((freezes + 1))
		cur=$(tr -d '\r' <"$log" | sed -n 's/^SNAPBOX-LAB-BEGIN \([0-9]*\) \(.*\)$/\1 \2/p' | tail -n 1)
		idx=${cur%% *} name=${cur#* }
		[ -n "$cur" ] || { idx=$from name="L1 boot"; }
		say "L1 froze during $name (console silent for ${freeze_lim}s; QEMU killed)"
		echo "SNAPBOX-LAB $name: FROZE - L1 froze during $name (attempt $attempt)" >>"$serial"
		froze="$froze${froze:+, }$name"
		if [ "$freezes" -ge 2 ]; then verdict="FAIL: L1 froze twice ($froze)"; break; fi
		from=$idx
		continue
	fi
	# L1 ended by itself: its /out, written as a tar on the out disk.
	if tar -xf "$work/out.img" -C "$LAB_OUT" 2>/dev/null; then :; else say "warning: L1 wrote no output archive"; fi
	break
done

# --- verdict -------------------------------------------------------------------
# Count markers of the tests that finished (a frozen attempt's finished tests
# count; its unfinished group runs again).
npass=$(grep -ac '^SNAPBOX-LAB [^ ]*: PASS' "$serial" || true)
nfail=$(grep -ac '^SNAPBOX-LAB [^ ]*: FAIL' "$serial" || true)
nskip=$(grep -ac '^SNAPBOX-LAB [^ ]*: SKIP' "$serial" || true)
if [ -z "$verdict" ]; then
	if ! grep -aq '^SNAPBOX-LAB-RESULT' "$work/serial.$attempt.log"; then
		verdict="FAIL: no verdict from L1 (it crashed or powered off early)"
	elif [ "$nfail" -gt 0 ] || [ "$npass" = 0 ]; then
		verdict=FAIL
	else
		verdict=PASS
	fi
fi
# Heartbeats come every 5 s of L1 time; a gap well over that is a lost timer
# wake-up that the nudge ended (see above).
stalls=$(awk '/^SNAPBOX-LAB-HEARTBEAT / { if (prev != "" && $2 > prev && $2 - prev > 5.5) n++; prev = $2 }
	/^SNAPBOX-LAB L1:/ { prev = "" } END { print n + 0 }' "$serial")
summary="$npass passed, $nfail failed, $nskip skipped; $freezes L1 freeze(s)${froze:+: $froze}; $stalls L1 timer stall(s) ended by the nudge; deadline factor ${scale:-unknown}; $(elapsed)"
if [ "$verdict" = PASS ]; then
	say "PASS ($summary)"
	exit 0
fi
say "$verdict ($summary)"
grep -a '^SNAPBOX-LAB [^ ]*: FAIL' "$serial" >&2 || true
say "last 60 lines of $serial:"
tail -n 60 "$serial" >&2
exit 1
}
