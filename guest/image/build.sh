#!/bin/sh
# guest/image/build.sh - a guest image from Debian's packages (no maintainer scripts run): the agent as /init, busybox, python3 and its standard library; reproducible, cached by its inputs.
#
# Usage: build.sh [options]          build if not cached; the image's path is the last line of stdout
#        build.sh --path [options]   print the cached image's path; exit 1 (printing nothing) if not built
#        build.sh --key [options]    print the cache key
#
# Options:
#   --name NAME            image name (default python); it names the cache entry.
#                          The name python-tests adds Debian's CPython test suite
#                          (libpython3.11-testsuite) and keeps it: a test-only image;
#                          the name node is Debian's nodejs without python
#   --package PKG          add a Debian package and what it depends on (repeatable)
#   --packages-file FILE   the same, one package per line (# comments)
#   --no-python            leave python3 out (busybox and the agent only, plus --package)
#   --add SRC:DEST         put host file SRC at DEST in the image (repeatable)
#   --agent FILE           the agent binary (default build/guest/agent)
#   --mkinitramfs FILE     (default build/mkinitramfs)
#   --busybox FILE         (default /bin/busybox)
#
# The image is a gzip'd cpio (an initramfs): the guest kernel unpacks it into
# its rootfs, so the root file system lives in guest RAM, the snapshot holds
# it and copy-on-write clones share its pages. It is written to
#   ${SNAPBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/snapbox}/image-<name>-<key>/initramfs.cpio.gz
# with size.txt beside it (where the bytes go). <key> is the sha256 of every
# input: the package names and exact versions apt resolves, the agent,
# busybox, mkinitramfs, added files and RECIPE below; the same inputs give the
# same bytes (mkinitramfs is reproducible, dpkg-deb -x is deterministic).
# Layout and limits: docs/guest-image.md.
set -eu

# Bump when the assembly (pruning, links) changes the image for the same inputs.
RECIPE=2
# In every image: libc-bin for getent, ldconfig and the C.UTF-8 locale;
# netbase for /etc/services and /etc/protocols (getservbyname, socket tests).
BASE_PKGS="libc-bin netbase"
# The Python image's packages; their Depends are added, minus EXCLUDE.
PYTHON_PKGS="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib"
# Needed only by maintainer scripts or packaging tools, never by the programs:
# left out with everything only they depend on.
EXCLUDE="dpkg install-info tar perl perl-base perl-modules-5.36 libperl5.36 debconf mailcap
	mime-support libgdbm-compat4 base-files debianutils sensible-utils coreutils"

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${SNAPBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/snapbox}
name=python mode=build python=1 pkgs="" adds=""
agent=$root/build/guest/agent mk=$root/build/mkinitramfs busybox=/bin/busybox

say() { printf 'image: %s\n' "$*" >&2; }
die() { printf 'image: error: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
	case $1 in
	--path) mode=path ;;
	--key) mode=key ;;
	--name) name=$2; shift ;;
	--package) pkgs="$pkgs $2"; shift ;;
	--packages-file) [ -r "$2" ] || die "cannot read $2"
		pkgs="$pkgs $(sed 's/#.*//' "$2" | tr -s ' \t\n' ' ')"; shift ;;
	--no-python) python=0 ;;
	--add) case $2 in *:/*) ;; *) die "--add wants SRC:/absolute/dest, not $2" ;; esac
		[ -r "${2%%:*}" ] || die "--add: cannot read ${2%%:*}"
		adds="$adds $2"; shift ;;
	--agent) agent=$2; shift ;;
	--mkinitramfs) mk=$2; shift ;;
	--busybox) busybox=$2; shift ;;
	-h | --help) sed -n '2,/^set -eu/p' "$0" | sed 's/^# \{0,1\}//; /^set -eu/d'; exit 0 ;;
	*) die "unknown option $1 (--help)" ;;
	esac
	shift
done
case $name in *[!A-Za-z0-9_.-]* | "") die "bad --name $name" ;; esac
pkgs="$BASE_PKGS $pkgs"
# The node image: Debian's Node.js instead of python (lab group image).
if [ "$name" = node ]; then
	python=0
	pkgs="$pkgs nodejs"
fi
# The test-only image: CPython's own regression tests (lab group cpython).
keep_tests=0
if [ "$name" = python-tests ]; then
	[ "$python" = 1 ] || die "the python-tests image needs python"
	pkgs="$pkgs libpython3.11-testsuite"
	keep_tests=1
fi
[ "$python" = 0 ] || pkgs="$PYTHON_PKGS $pkgs"
for t in apt-cache apt-get dpkg-deb sha256sum; do
	command -v $t >/dev/null 2>&1 || die "$t not found (a Debian host with apt is needed)"
done

excluded() { case " $(echo $EXCLUDE) " in *" $1 "*) return 0 ;; esac; return 1; }

# apt as if nothing were installed: what this host has (a newer package from
# another vendor's repository, say) must not pick the image's versions.
NOSTATUS="-o Dir::State::Status=/dev/null"
# The closure of $pkgs over Depends and Pre-Depends, stopping at EXCLUDE;
# a virtual package resolves to its first provider. One "name=version" per
# line, sorted. Two apt-cache runs: the whole graph, then every version.
resolve() {
	names=$(apt-cache $NOSTATUS depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
		--no-replaces --no-enhances $pkgs 2>/dev/null | awk -v roots="$(echo $pkgs)" -v ex="$(echo $EXCLUDE)" '
		/^[^ ]/ { cur = $1; sub(/:any$/, "", cur); seen[cur] = 1; next }
		($1 == "Depends:" || $1 == "PreDepends:") { d = $2; sub(/:any$/, "", d); dep[cur] = dep[cur] " " d; next }
		/^    [^ ]/ && prev ~ /^<.*>$/ { if (!(prev in prov)) prov[prev] = $1 }
		($1 == "Depends:" || $1 == "PreDepends:") { }
		{ prev = $2 }
		END {
			n = split(ex, e, " "); for (i = 1; i <= n; i++) skip[e[i]] = 1
			n = split(roots, q, " "); head = 1
			while (head <= n) {
				p = q[head++]
				if (p ~ /^<.*>$/) { if (p in prov) p = prov[p]; else continue }
				if (p in done || p in skip) continue
				done[p] = 1; print p
				m = split(dep[p], ds, " "); for (i = 1; i <= m; i++) q[++n] = ds[i]
			}
		}')
	[ -n "$names" ] || die "apt-cache knows none of:$pkgs (apt-get update?)"
	apt-cache $NOSTATUS policy $names 2>/dev/null | awk '/^[^ ]/ { p = $1; sub(/:$/, "", p) }
		/Candidate:/ { if ($2 == "(none)") { print "MISSING " p } else print p "=" $2 }' | sort -u
}

say "resolving packages"
list=$(resolve)
case $list in *MISSING*) die "apt knows no version of: $(echo "$list" | awk '/^MISSING/ {print $2}')" ;; esac
[ -x "$agent" ] || die "$agent missing (make agent)"
[ -x "$mk" ] || die "$mk missing (make)"
[ -x "$busybox" ] || die "$busybox missing (make deps: busybox-static)"
key=$({
	echo "recipe=$RECIPE name=$name"
	echo "$list"
	sha256sum "$agent" "$mk" "$busybox" "$0" | cut -d' ' -f1
	for a in $adds; do printf '%s ' "${a#*:}"; sha256sum "${a%%:*}" | cut -d' ' -f1; done
} | sha256sum | cut -c1-16)
dir=$cache/image-$name-$key
img=$dir/initramfs.cpio.gz
case $mode in
key) echo "$key"; exit 0 ;;
path) [ -f "$img" ] || exit 1; echo "$img"; exit 0 ;;
esac
if [ -f "$img" ]; then
	say "cached: $img"
	echo "$img"
	exit 0
fi

debs=$cache/debs
mkdir -p "$debs" "$cache"
work=$(mktemp -d "$cache/.image-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
n=$(echo "$list" | wc -l)
say "fetching $n packages into $debs (apt-get download; nothing is installed)"
need=""
for pv in $list; do
	p=${pv%%=*} v=${pv#*=}
	ls "$debs/${p}_$(echo "$v" | sed 's/:/%3a/')_"*.deb >/dev/null 2>&1 || need="$need $pv"
done
[ -z "$need" ] || (cd "$debs" && apt-get download -q $need 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) ||
	die "apt-get download failed"
say "unpacking (dpkg-deb -x: no maintainer scripts)"
mkdir "$work/root"
i=0
for pv in $list; do
	p=${pv%%=*} v=${pv#*=}
	deb=$(ls "$debs/${p}_$(echo "$v" | sed 's/:/%3a/')_"*.deb 2>/dev/null | head -n 1)
	[ -n "$deb" ] || die "no .deb for $pv in $debs"
	dpkg-deb -x "$deb" "$work/root"
	i=$((i + 1))
	[ -t 2 ] && printf '\rimage: %d/%d %s\033[K' $i $n "$p" >&2
done
[ -t 2 ] && printf '\n' >&2
r=$work/root
# Where the bytes would go, and what is pruned: documentation, translations,
# the interpreter's own test suite and GUI/packaging modules (docs/guest-image.md).
rm -rf "$r/usr/share/doc" "$r/usr/share/man" "$r/usr/share/info" "$r/usr/share/lintian" \
	"$r/usr/share/locale" "$r/usr/share/bug" "$r/usr/share/menu" "$r/usr/share/gcc" \
	"$r/usr/share/gdb" "$r/etc/init.d" "$r/etc/cron.daily" "$r/usr/share/binfmts" "$r/usr/share/applications" \
	"$r/usr/share/pixmaps"
pruned="idlelib tkinter turtledemo ensurepip lib2to3 tkinter/test"
[ "$keep_tests" = 1 ] || pruned="$pruned test distutils/tests unittest/test ctypes/test sqlite3/test"
for m in $pruned; do
	rm -rf "$r/usr/lib/python3.11/$m"
done
find "$r" -name __pycache__ -type d -prune -exec rm -rf {} +
if [ "$python" = 1 ]; then
	ln -sf python3.11 "$r/usr/bin/python3"
	ln -sf python3 "$r/usr/bin/python"
fi
for a in $adds; do
	mkdir -p "$r$(dirname "${a#*:}")"
	cp "${a%%:*}" "$r${a#*:}"
done
# The image's /etc (docs/guest-image.md, "Users, names and /etc"): what
# programs look up and no package here ships. An --add'ed file of the same
# name wins (they were copied in above).
mkdir -p "$r/etc/default" "$r/root" "$r/home/user"
# etc_file NAME: stdin becomes /etc/NAME unless an --add put one there.
etc_file() {
	for a in $adds; do [ "${a#*:}" = "/etc/$1" ] && { cat >/dev/null; return 0; }; done
	cat >"$r/etc/$1"
}
etc_file passwd <<'EOF'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:snapbox user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
etc_file group <<'EOF'
root:x:0:
tty:x:5:
users:x:100:user
user:x:1000:
nogroup:x:65534:
EOF
etc_file hosts <<'EOF'
127.0.0.1	localhost
127.0.1.1	snapbox
::1	localhost ip6-localhost ip6-loopback
EOF
printf 'snapbox\n' | etc_file hostname
etc_file nsswitch.conf <<'EOF'
passwd:    files
group:     files
shadow:    files
hosts:     files dns
networks:  files
protocols: files
services:  files
ethers:    files
rpc:       files
EOF
printf 'LANG=C.UTF-8\n' | etc_file default/locale
# Files own what they ship; the cpio records 0755 dirs as dpkg would, /root 0700.
find "$r" -type d -exec chmod 0755 {} +
chmod 0700 "$r/root"
unpacked=$(du -sk --apparent-size "$r" | cut -f1)
say "assembling the initramfs ($((unpacked / 1024)) MiB unpacked)"
"$mk" -o "$work/initramfs.cpio.gz" --init "$agent" --busybox "$busybox" --tree "$r" \
	--owner 1000:1000:/home/user --compress gzip
{
	echo "image $name, key $key, recipe $RECIPE"
	echo "unpacked (apparent) KiB: $unpacked; archive bytes: $(stat -c %s "$work/initramfs.cpio.gz")"
	echo "largest directories (KiB, apparent size):"
	du -k --apparent-size --max-depth=3 "$r" | sort -rn | sed "s|$r||" | head -n 15
	echo "packages:"
	echo "$list"
} >"$work/size.txt"
mkdir -p "$dir.tmp"
mv "$work/initramfs.cpio.gz" "$work/size.txt" "$dir.tmp/"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
say "image: $img ($(stat -c %s "$img") bytes, $((unpacked / 1024)) MiB unpacked)"
echo "$img"
