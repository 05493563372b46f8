#!/bin/sh
# tests/lab/where.sh - where KVM work runs on this host: prints "native" when /dev/kvm opens read-write, else "lab"; SNAPBOX_KVM=native|lab forces it.
case ${SNAPBOX_KVM:-auto} in
native | lab) echo "$SNAPBOX_KVM" ;;
*) if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then echo native; else echo lab; fi ;;
esac
