#!/bin/sh
# tests/lab/lab.sh - the nested KVM lab: boot Debian's cloud kernel under QEMU/TCG with an emulated SVM CPU and run snapbox's tests on real kvm-amd inside it.
#
# Usage: tests/lab/lab.sh           (from `make lab`; the exit status is the verdict)
#        tests/lab/lab.sh --fetch   only fetch the L1 cloud kernel into the cache (from `make deps`)
#
# L1 = Debian's linux-image-cloud-amd64 kernel booted by
#   qemu-system-x86_64 -accel tcg -M q35 -cpu EPYC,+svm,+npt -m 3072
# with an initramfs holding busybox, irqbypass/kvm/kvm-amd, build/snapbox,
# the probe guest, the KVM test suite, our guest vmlinux (make guest), the
# lab's tiny L2 initramfs (tests/lab/l2-init.sh) and, when built, the agent's
# initramfs (build/guest/initramfs.cpio.gz). Its /init (tests/lab/l1-init.sh)
# prints one "SNAPBOX-LAB <test>: PASS|FAIL|SKIP" line per test and a final
# "SNAPBOX-LAB-RESULT: PASS|FAIL" line on the serial console, then powers off.
#
# Environment:
#   BUILD            build directory (default build)
#   LAB_TIMEOUT      overall limit in seconds (default 1800)
#   LAB_TEST_TIMEOUT limit for each test inside L1, seconds (default 900)
#   LAB_KVMTESTS=1   also run the probe's KVM test suite (build/tests/kvm) inside;
#                    off by default: `make check` runs it on this host's KVM, and
#                    under nested TCG it takes tens of minutes
#   LAB_BZIMAGE=0    leave out booting the L1 bzImage (a user-supplied kernel) as a guest
#   LAB_VERBOSE=1    show the whole serial console, not just the markers
#   LAB_VMLINUX      guest kernel (default: guest/linux/build.sh --path); "none" skips the Linux tests
#   LAB_INITRAMFS    agent initramfs (default build/guest/initramfs.cpio.gz, if present)
#   LAB_L1_KERNEL, LAB_L1_MODULES  an L1 bzImage and its /lib/modules/<ver> directory
#                    (default: an installed /boot/vmlinuz-*-cloud-amd64, else
#                    linux-image-cloud-amd64 fetched with `apt-get download`
#                    and unpacked into the cache, never installed)
#   LAB_LOCK         a lock file held (flock) while the build's outputs are copied
#   SNAPBOX_CACHE    cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/snapbox)
set -eu
# The whole script is one brace group, read before it runs: editing this file
# during a (long) run cannot change what the run does.
{
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
cache=${SNAPBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/snapbox}
work="$BUILD/lab"
LAB_TIMEOUT=${LAB_TIMEOUT:-1800}
LAB_TEST_TIMEOUT=${LAB_TEST_TIMEOUT:-900}
LAB_KVMTESTS=${LAB_KVMTESTS:-0}
LAB_VERBOSE=${LAB_VERBOSE:-0}
start=$(date +%s)

say() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 2; }
elapsed() { s=$(($(date +%s) - start)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

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
	if [ ! -f "$dir/.unpacked" ]; then
		say "fetching $pkg $ver (apt-get download; unpacked into $dir, not installed)"
		rm -rf "$dir" "$dir.tmp" && mkdir -p "$dir.tmp/deb"
		# apt drops to the _apt user to download; let it write there.
		chmod 0777 "$dir.tmp/deb"
		(cd "$dir.tmp/deb" && apt-get download -q "$pkg=$ver" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || true
		deb=$(ls "$dir.tmp"/deb/*.deb 2>/dev/null | head -n 1)
		[ -n "$deb" ] || die "apt-get download $pkg=$ver failed"
		dpkg-deb -x "$deb" "$dir.tmp/root"
		rm -rf "$dir.tmp/deb"
		touch "$dir.tmp/.unpacked"
		mv "$dir.tmp" "$dir"
	fi
	kv=${pkg#linux-image-}
	l1_kernel="$dir/root/boot/vmlinuz-$kv"
	l1_mods="$dir/root/lib/modules/$kv"
fi
[ -r "$l1_kernel" ] || die "L1 kernel $l1_kernel not readable"
[ -d "$l1_mods" ] || die "L1 modules directory $l1_mods missing"
if [ "${1:-}" = --fetch ]; then say "L1 kernel: $l1_kernel"; exit 0; fi

# --- inputs -----------------------------------------------------------------
for t in qemu-system-x86_64 cpio gzip timeout ldd readelf; do
	command -v "$t" >/dev/null 2>&1 || die "$t not found; run: make lab-deps"
done
busybox=${LAB_BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] && readelf -d "$busybox" 2>&1 | grep -q 'no dynamic section' ||
	die "$busybox is not a static busybox; run: make lab-deps (busybox-static)"
snapbox="$BUILD/snapbox"
probe="$BUILD/guest/probe.elf"
[ -x "$snapbox" ] || die "$snapbox not built; run: make"
[ -f "$probe" ] || die "$probe not built; run: make"
vmlinux=${LAB_VMLINUX:-$(sh guest/linux/build.sh --path || true)}
if [ "$vmlinux" = none ]; then
	vmlinux=""
	say "LAB_VMLINUX=none: the Linux guest tests are skipped"
else
	[ -n "$vmlinux" ] && [ -f "$vmlinux" ] || die "no guest vmlinux; run: make guest (or LAB_VMLINUX=none)"
fi
initramfs=${LAB_INITRAMFS:-$BUILD/guest/initramfs.cpio.gz}
[ -f "$initramfs" ] || initramfs=""

# --- L1 initramfs -------------------------------------------------------------
# With LAB_LOCK, copying the build's outputs happens under that flock, so a
# concurrent build cannot hand us a half-linked binary.
if [ -n "${LAB_LOCK:-}" ]; then exec 8>"$LAB_LOCK" && flock 8; fi
say "assembling the L1 initramfs in $work (L1 kernel $(basename "$l1_kernel"))"
rm -rf "$work/stage1" "$work/stage2"
mkdir -p "$work/stage1/bin" "$work/stage1/lab/modules" "$work/stage1/lab/tests" "$work/stage2/bin"
s1="$work/stage1"

# mod_file NAME: the module's file in l1_mods (names use - or _ interchangeably).
mod_file() {
	a=$(printf '%s' "$1" | tr _ -) b=$(printf '%s' "$1" | tr - _)
	find "$l1_mods/kernel" \( -name "$a.ko*" -o -name "$b.ko*" \) | head -n 1
}
# mod_add NAME: decompress NAME and, first, its dependencies into stage1, in load order.
mod_add() {
	grep -qx "$1" "$s1/lab/modules.order" 2>/dev/null && return 0
	f=$(mod_file "$1")
	[ -n "$f" ] || die "module $1 not found under $l1_mods"
	case "$f" in
	*.ko.xz) xz -dc "$f" >"$s1/lab/modules/$1.ko" ;;
	*.ko.zst) zstd -qdc "$f" >"$s1/lab/modules/$1.ko" ;;
	*.ko.gz) gzip -dc "$f" >"$s1/lab/modules/$1.ko" ;;
	*) cp "$f" "$s1/lab/modules/$1.ko" ;;
	esac
	deps=$(tr '\0' '\n' <"$s1/lab/modules/$1.ko" | sed -n 's/^depends=//p' | head -n 1 | tr , ' ')
	for d in $deps; do mod_add "$d"; done
	echo "$1" >>"$s1/lab/modules.order"
}
: >"$s1/lab/modules.order"
mod_add kvm-amd

# add_bin SRC DEST: a dynamically linked binary and every library ldd names, at their paths.
add_bin() {
	mkdir -p "$s1/$(dirname "$2")"
	cp "$1" "$s1/$2"
	ldd "$1" | awk '/=> \// {print $3} /^[ \t]*\/[^ ]+ \(/ {print $1}' | while read -r lib; do
		[ -e "$s1/$lib" ] && continue
		mkdir -p "$s1/$(dirname "$lib")"
		cp -L "$lib" "$s1/$lib"
	done
}
cp "$busybox" "$s1/bin/busybox"
cp tests/lab/l1-init.sh "$s1/init" && chmod 0755 "$s1/init"
add_bin "$snapbox" /bin/snapbox
cp "$probe" "$s1/lab/probe.elf"
[ -z "$vmlinux" ] || cp "$vmlinux" "$s1/lab/vmlinux"
[ -z "$initramfs" ] || cp "$initramfs" "$s1/lab/initramfs.cpio.gz"
[ "${LAB_BZIMAGE:-1}" = 0 ] || cp "$l1_kernel" "$s1/lab/bzImage"
if [ "$LAB_KVMTESTS" = 1 ] && [ -x "$BUILD/tests/kvm" ]; then add_bin "$BUILD/tests/kvm" /lab/tests/kvm; fi
for t in "$BUILD"/tests/linux*; do [ -x "$t" ] && add_bin "$t" "/lab/tests/$(basename "$t")"; done

# The tiny L2 initramfs: busybox and the lab's shell init.
cp "$busybox" "$work/stage2/bin/busybox"
cp tests/lab/l2-init.sh "$work/stage2/init" && chmod 0755 "$work/stage2/init"
# cpio_dir DIR: a reproducible newc archive of DIR on stdout.
cpio_dir() {
	(cd "$1" && find . -exec touch -h -d @0 {} + && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
}
cpio_dir "$work/stage2" | gzip -9n >"$s1/lab/l2-init.cpio.gz"
# Uncompressed: L1 unpacks it under TCG, where gunzip would cost seconds.
cpio_dir "$s1" >"$work/L1.cpio"
if [ -n "${LAB_LOCK:-}" ]; then flock -u 8 && exec 8>&-; fi
say "L1 initramfs: $(du -h "$work/L1.cpio" | cut -f1) (modules: $(tr '\n' ' ' <"$s1/lab/modules.order")); vmlinux: $vmlinux; agent initramfs: ${initramfs:-none}"

# --- run ---------------------------------------------------------------------
serial="$work/serial.log"
say "booting L1 under TCG (-cpu EPYC,+svm,+npt); limit ${LAB_TIMEOUT}s; serial log: $serial"
if [ "$LAB_VERBOSE" = 1 ]; then filter='^'; else filter='^SNAPBOX-LAB'; fi
# The L1 kernel command line must never contain a marker: it is echoed on the console.
timeout -k 10 "$LAB_TIMEOUT" qemu-system-x86_64 -accel tcg -M q35 -cpu EPYC,+svm,+npt -m 3072 \
	-nographic -no-reboot -nic none \
	-kernel "$l1_kernel" -initrd "$work/L1.cpio" \
	-append "console=ttyS0 loglevel=4 panic=-1 lab_timeout=$LAB_TEST_TIMEOUT" \
	</dev/null 2>&1 | stdbuf -oL tr -d '\r' | tee "$serial" | grep --line-buffered -a "$filter" || true

if grep -aq '^SNAPBOX-LAB-RESULT: PASS' "$serial"; then
	say "PASS in $(elapsed): $(grep -a '^SNAPBOX-LAB-RESULT' "$serial" | tail -n 1)"
	exit 0
fi
say "FAIL after $(elapsed)"
if ! grep -aq '^SNAPBOX-LAB-RESULT' "$serial"; then
	say "no verdict from L1 (crash, hang or the ${LAB_TIMEOUT}s limit); failing tests so far:"
fi
grep -a '^SNAPBOX-LAB .*: FAIL' "$serial" >&2 || true
say "last 60 lines of $serial:"
tail -n 60 "$serial" >&2
exit 1
}
