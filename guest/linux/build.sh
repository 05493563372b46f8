#!/bin/sh
# guest/linux/build.sh - build (or find) the cached minimal 6.1 guest vmlinux from Debian's linux-source-6.1.
#
# Usage: build.sh          build if not cached, then print the vmlinux path (last line of stdout)
#        build.sh --path   print the cached vmlinux path; exit 1 (printing nothing) if not built
#        build.sh --key    print the cache key
#
# The kernel is tinyconfig + guest/linux/snapbox.config + olddefconfig, built
# with `nice` outside the work tree in
#   ${SNAPBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/snapbox}/kernel-<key>/vmlinux
# where <key> is the sha256 of the fragment, the linux-source-6.1 package
# version, the compiler version and RECIPE below. Progress goes to stderr: one
# line per phase and one progress line every PROGRESS_EVERY seconds.
#
# Environment: LINUX_SRC_TAR (default /usr/src/linux-source-6.1.tar.xz),
# SNAPBOX_CACHE, JOBS (default: nproc), NICE (default 10),
# SNAPBOX_KEEP_KBUILD=1 keeps the object tree after a successful build.
set -eu
# A sub-make of ours must not leak our flags or command-line variables into kbuild.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES GNUMAKEFLAGS || true

# Bump when the build commands (not the fragment) change in a way that changes vmlinux.
RECIPE=1
# Objects ("CC" lines) a build of the current fragment compiles, for the percentage.
EXPECTED_OBJS=${EXPECTED_OBJS:-758}
PROGRESS_EVERY=${PROGRESS_EVERY:-30}

here=$(cd "$(dirname "$0")" && pwd)
fragment="$here/snapbox.config"
src_tar=${LINUX_SRC_TAR:-/usr/src/linux-source-6.1.tar.xz}
cache=${SNAPBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/snapbox}
jobs=${JOBS:-$(nproc)}
nice_lvl=${NICE:-10}
CC=${CC:-gcc}

say() { printf 'guest: %s\n' "$*" >&2; }
die() { printf 'guest: error: %s\n' "$*" >&2; exit 1; }

src_version() {
	v=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true)
	if [ -z "$v" ]; then
		[ -r "$src_tar" ] || return 1
		v="sha256:$(sha256sum "$src_tar" | cut -d' ' -f1)"
	fi
	printf '%s\n' "$v"
}

cache_key() {
	v=$(src_version) || return 1
	ccv=$($CC -dumpfullversion 2>/dev/null || $CC -dumpversion)
	{ cat "$fragment"; printf 'source=%s\ncc=%s %s\nrecipe=%s\n' "$v" "$CC" "$ccv" "$RECIPE"; } |
		sha256sum | cut -c1-16
}

# check_vmlinux FILE: an x86-64 ELF whose PT_LOADs all sit at p_paddr >= 1 MiB,
# the first at 0x1000000, with e_entry inside a PT_LOAD (snapbox's ELF loader).
check_vmlinux() {
	f=$1
	readelf -h "$f" 2>/dev/null | grep -q 'Machine:.*X86-64' || { say "$f: not an x86-64 ELF"; return 1; }
	entry=$(readelf -h "$f" | awk '/Entry point address:/ {print $4}')
	readelf -lW "$f" | awk -v entry="$entry" '
		function hex(s,   i, c, n) { s = tolower(s); sub(/^0x/, "", s); n = 0
			for (i = 1; i <= length(s); i++) { c = index("0123456789abcdef", substr(s, i, 1)) - 1; n = n * 16 + c }
			return n }
		$1 == "LOAD" { loads++; pa = hex($4); msz = hex($6)
			if (loads == 1) first = pa
			if (pa < 1048576) { printf "guest: PT_LOAD at p_paddr %s is below 1 MiB\n", $4 > "/dev/stderr"; bad = 1 }
			if (hex(entry) >= pa && hex(entry) < pa + msz) inside = 1 }
		END {
			if (!loads) { print "guest: no PT_LOAD" > "/dev/stderr"; exit 1 }
			if (first != 16777216) { printf "guest: first PT_LOAD p_paddr is 0x%x, not 0x1000000\n", first > "/dev/stderr"; exit 1 }
			if (!inside) { printf "guest: e_entry %s is outside every PT_LOAD\n", entry > "/dev/stderr"; exit 1 }
			exit bad }'
}

case "${1:-}" in
--path)
	key=$(cache_key 2>/dev/null) || exit 1
	f="$cache/kernel-$key/vmlinux"
	[ -s "$f" ] || exit 1
	printf '%s\n' "$f"
	exit 0 ;;
--key)
	cache_key || die "linux-source-6.1 not found ($src_tar); run: make guest-deps"
	exit 0 ;;
--check)
	check_vmlinux "${2:?usage: build.sh --check VMLINUX}" && say "${2}: ELF x86-64, PT_LOAD at 0x1000000, entry inside: ok"
	exit $? ;;
"") ;;
*) die "unknown option $1 (use --path, --key, --check FILE or nothing)" ;;
esac

[ -r "$src_tar" ] || die "$src_tar not found; run: make guest-deps"
for t in make bison flex bc xz perl readelf; do
	command -v $t >/dev/null 2>&1 || die "$t not found; run: make guest-deps"
done
# objtool links libelf; with modules and certificates off, nothing needs openssl.
[ -r /usr/include/gelf.h ] || die "libelf-dev not found; run: make guest-deps"

key=$(cache_key) || die "cannot compute the cache key"
out="$cache/kernel-$key"
vmlinux="$out/vmlinux"
mkdir -p "$out"

# One builder per key; a second caller waits and then finds it cached.
exec 9>"$out/.lock"
if ! flock -n 9; then
	say "another build of kernel-$key is running; waiting for it"
	flock 9
fi

if [ -s "$vmlinux" ]; then
	say "cached: $vmlinux"
	printf '%s\n' "$vmlinux"
	exit 0
fi

ver=$(src_version)
srcdir="$cache/linux-source-6.1-$(printf '%s' "$ver" | tr -c 'A-Za-z0-9.+~_-' '_')"
obj="$out/kbuild"
log="$out/build.log"
start=$(date +%s)
elapsed() { s=$(( $(date +%s) - start )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

say "building kernel-$key (linux-source-6.1 $ver, $jobs jobs, nice $nice_lvl); log: $log"

# 1. Source: extracted once per source version, shared by every config.
if [ ! -f "$srcdir/.extracted" ]; then
	say "[1/5] extracting $src_tar (about a minute)"
	rm -rf "$srcdir" "$srcdir.tmp"
	mkdir -p "$srcdir.tmp"
	nice -n "$nice_lvl" tar -xJf "$src_tar" -C "$srcdir.tmp" --strip-components=1
	touch "$srcdir.tmp/.extracted"
	mv "$srcdir.tmp" "$srcdir"
else
	say "[1/5] source: $srcdir (already extracted)"
fi

# 2. Config: tinyconfig, the fragment merged over it, olddefconfig.
say "[2/5] configuring: tinyconfig + $(basename "$fragment") + olddefconfig"
rm -rf "$obj"
mkdir -p "$obj"
kmake() { nice -n "$nice_lvl" make -C "$srcdir" O="$obj" ARCH=x86_64 CC="$CC" "$@"; }
: >"$log"
{
	kmake tinyconfig
	"$srcdir/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$fragment"
	kmake olddefconfig
} >>"$log" 2>&1 || { tail -n 30 "$log" >&2; die "configuration failed (log: $log)"; }

# 3. Every option of the fragment must have survived olddefconfig (a missing
#    dependency silently drops one).
say "[3/5] checking the fragment against the final .config"
bad=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		grep -qx "$line" "$obj/.config" || { say "  wanted $line, got: $(grep "^${line%%=*}=\|^# ${line%%=*} is not set" "$obj/.config" || echo unset)"; bad=1; } ;;
	"# CONFIG_"*" is not set")
		sym=${line#\# }; sym=${sym%% *}
		if grep -q "^$sym=" "$obj/.config"; then say "  wanted $sym off, got: $(grep "^$sym=" "$obj/.config")"; bad=1; fi ;;
	esac
done <"$fragment"
[ "$bad" = 0 ] || die "the fragment does not apply cleanly to linux-source-6.1 $ver"

# 4. Compile vmlinux only (no bzImage, no modules), with a progress line
#    every PROGRESS_EVERY seconds.
say "[4/5] compiling vmlinux (about 8 minutes on 2 cores)"
# exec, so that $! is make itself (the trap can stop it).
(exec nice -n "$nice_lvl" make -C "$srcdir" O="$obj" ARCH=x86_64 CC="$CC" -j"$jobs" vmlinux >>"$log" 2>&1) &
mpid=$!
trap 'kill $mpid 2>/dev/null || true' INT TERM HUP
last=$(date +%s)
while kill -0 "$mpid" 2>/dev/null; do
	sleep 2
	now=$(date +%s)
	if [ $((now - last)) -ge "$PROGRESS_EVERY" ]; then
		last=$now
		n=$(grep -c '^  CC ' "$log" || true)
		cur=$(grep '^  [A-Z]' "$log" | tail -n 1 | sed 's/^ *//')
		pct=$((n * 100 / EXPECTED_OBJS)); [ "$pct" -le 99 ] || pct=99
		say "  $(elapsed): ~$pct% ($n objects compiled), now: $cur"
	fi
done
rc=0
wait "$mpid" || rc=$?
trap - INT TERM HUP
if [ "$rc" != 0 ]; then
	grep -E 'error|Error' "$log" | tail -n 20 >&2 || true
	tail -n 20 "$log" >&2
	die "kernel build failed after $(elapsed) (log: $log)"
fi
say "  compiled $(grep -c '^  CC ' "$log" || true) objects in $(elapsed)"

# 5. Check it is loadable by snapbox, then publish it atomically.
say "[5/5] verifying and caching"
check_vmlinux "$obj/vmlinux" || die "$obj/vmlinux is not loadable by snapbox"
cp "$obj/.config" "$out/config"
cp "$fragment" "$out/snapbox.config"
cp "$obj/vmlinux" "$vmlinux.tmp"
mv "$vmlinux.tmp" "$vmlinux"
[ "${SNAPBOX_KEEP_KBUILD:-0}" = 1 ] || rm -rf "$obj"
say "done in $(elapsed): $vmlinux ($(du -h "$vmlinux" | cut -f1))"
printf '%s\n' "$vmlinux"
