#!/bin/busybox sh
# tests/lab/l2-init.sh - /init of the lab's tiny L2 guest: a busybox-sh stand-in for the agent (READY, PING) on ttyS1.
#
# It proves the Linux guest kernel boots under snapbox to userspace, that both
# UARTs work, and gives snapshot -> restore -> PING a real Linux guest to
# answer. It speaks only enough of docs/agent-protocol.md for that: it sends
# BOOT_TIME and READY, then answers PING (0x0010), acknowledges REFRESH
# (0x0027) as the probe does (a test stand-in: it has nothing to reseed; the
# agent does reseed), and replies "unknown command" to every other request.
# It never exits (it is PID 1).
set -eu
bb=/bin/busybox
$bb mkdir -p /proc /sys /dev /tmp
$bb mount -t devtmpfs dev /dev
# The initramfs has no /dev/console node, so the kernel could not give us one.
exec </dev/console >/dev/console 2>&1
$bb mount -t proc proc /proc
$bb mount -t sysfs sys /sys
$bb mount -t tmpfs tmp /tmp

# frame TYPE FLAGS ID_HEX PAYLOAD: one frame on fd 3; TYPE/FLAGS are u16,
# ID_HEX is the 4 id bytes as "aa bb cc dd" (as read), PAYLOAD is ASCII.
le16() { printf '\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)); }
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
frame() {
	id=""
	for b in $3; do id="$id\\x$b"; done
	# shellcheck disable=SC2059 # the format is built from \x escapes on purpose
	$bb printf "SBX1$(le16 "$1")$(le16 "$2")$id$(le32 ${#4})%s" "$4" >&3
}
# Uptime "S.CC" as ns; leading zeros stripped, or "0.08" would read as octal.
boot_time() {
	cs=$($bb cut -d' ' -f1 /proc/uptime | $bb tr -d . | $bb sed 's/^0*//')
	frame 2 0 "00 00 00 00" "BOOT_TIME:$1:$((${cs:-0} * 10000000))"
}

echo "lab-l2-init: hello from the L2 guest: Linux $($bb uname -r), $($bb grep -c ^processor /proc/cpuinfo) cpu, $($bb grep MemTotal /proc/meminfo | $bb tr -s ' ')"
echo "lab-l2-init: cmdline: $($bb cat /proc/cmdline)"

# ttyS1 raw, and each read returns a whole 16-byte header.
exec 3<>/dev/ttyS1
$bb stty -F /dev/ttyS1 raw -echo min 16 time 0
boot_time init_entry
frame 1 0 "00 00 00 00" "lab-l2-init 1"
echo "lab-l2-init: READY sent on ttyS1"

# From here on a failed command must not end PID 1: the loop just goes on.
set +e
while :; do
	hdr=$($bb dd bs=16 count=1 <&3 2>/dev/null | $bb od -An -tx1 -v) || continue
	set -- $hdr
	[ $# -eq 16 ] && [ "$1$2$3$4" = 53425831 ] || continue
	type=$((0x$6$5))
	id="$9 ${10} ${11} ${12}"
	len=$((0x${16}${15}${14}${13}))
	[ "$len" -eq 0 ] || $bb dd bs=1 count="$len" <&3 >/dev/null 2>&1
	if [ "$type" -eq 16 ] || [ "$type" -eq 39 ]; then
		frame "$type" 1 "$id" ""
	else
		frame "$type" 3 "$id" "unknown command"
	fi
done
