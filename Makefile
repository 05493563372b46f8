# Makefile - the one non-recursive build for snapbox: library, CLI, probe guest, tests, benches.

CC      ?= gcc
PREFIX  ?= /usr/local
BUILD   ?= build
SAN     ?=

CFLAGS  := -std=gnu11 -Wall -Wextra -Werror -O2 -g -MMD -MP -I. -Iinclude -D_GNU_SOURCE $(SAN)
LDFLAGS := $(SAN)
LIBS    := -lelf -llz4 -lxxhash -lseccomp -lpthread

LIB_SRCS   := $(sort $(wildcard proto/*.c kvm/*.c snapshot/*.c runtime/*.c))
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB        := $(BUILD)/libsnapbox.a
CLI        := $(BUILD)/snapbox
# The service (docs/api.md): server/ on the public library, libmicrohttpd and json-c.
DAEMON     := $(BUILD)/snapboxd
SERVER_SRCS:= $(sort $(wildcard server/*.c))
UNIT_SRCS  := $(sort $(wildcard tests/unit_*.c))
KVMT_SRCS  := $(sort $(wildcard tests/kvm_*.c))
TEST_COMMON:= $(sort $(wildcard tests/common_*.c))
UNIT_BIN   := $(BUILD)/tests/unit
KVMT_BIN   := $(BUILD)/tests/kvm
# Linux end-to-end tests: run inside the nested lab (tests/lab), on our guest kernel.
LINUX_SRCS := $(sort $(wildcard tests/linux_*.c))
LINUX_BIN  := $(BUILD)/tests/linux
BENCH_SRCS := $(sort $(filter-out bench/bench_%.c,$(wildcard bench/*.c)))
BENCH_COMMON := $(sort $(wildcard bench/bench_*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
PROBE      := $(BUILD)/guest/probe.elf
PROBE_SRCS := $(sort $(wildcard guest/probe/*.c guest/probe/*.S))
PROBE_OBJS := $(patsubst guest/probe/%,$(BUILD)/guest/probe/%.o,$(PROBE_SRCS))
# The guest agent (PID 1 of the Linux guest) links the frame parser of proto/,
# the home of what host and guests share (wire format, boot contract).
AGENT      := $(BUILD)/guest/agent
AGENT_SRCS := $(sort $(wildcard guest/agent/*.c))
AGENT_OBJS := $(patsubst guest/agent/%,$(BUILD)/guest/agent-obj/%.o,$(AGENT_SRCS)) \
	$(BUILD)/guest/agent-obj/frame.c.o
MKINITRAMFS := $(BUILD)/mkinitramfs
INITRAMFS  := $(BUILD)/guest/initramfs.cpio.gz
BUSYBOX    ?= /bin/busybox

# The probe is freestanding: no libc, no red zone (interrupts share the stack),
# no SSE (CR4.OSFXSR is not ours to assume), fixed link address.
PROBE_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -O2 -g -I. -ffreestanding -fno-pic \
	-fno-stack-protector -mno-red-zone -mgeneral-regs-only -fno-asynchronous-unwind-tables \
	-fcf-protection=none -MMD -MP
PROBE_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-T,guest/probe/probe.ld

# The agent is static (it is /init of an initramfs with no libc) and never
# sanitized: the guest has no sanitizer runtime, and the unit tests run it as
# a child process.
AGENT_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -O2 -g -MMD -MP -I. -D_GNU_SOURCE

.PHONY: all deps test check unit kvmtest bench demo asan clean install probe agent initramfs \
	guest guest-deps guest-path lab lab-deps
all: $(LIB) $(CLI) $(DAEMON) $(PROBE) $(AGENT) $(MKINITRAMFS) $(UNIT_BIN) $(KVMT_BIN) $(LINUX_BIN) $(BENCH_BINS)

probe: $(PROBE)
agent: $(AGENT)
initramfs: $(INITRAMFS)

# Debian packages the project needs; no prompt, skipped when already present.
# The guest kernel's build (make guest) and the nested lab (make lab) are part
# of the test suite, so their packages are here too; python3 runs bench/peer-qemu,
# which `make check` runs (peer-check).
DEB_PKGS = build-essential pkg-config libelf-dev liblz4-dev libxxhash-dev libcriterion-dev libseccomp-dev libjson-c-dev \
	libmicrohttpd-dev python3-pytest prometheus openssl \
	busybox-static cpio python3 $(GUEST_DEB_PKGS) $(LAB_DEB_PKGS)
deps:
	$(call apt_install,$(sort $(DEB_PKGS)))
	@# The lab's L1 kernel: Debian's linux-image-cloud-amd64, fetched and unpacked
	@# into the cache rather than installed (installing it would pull systemd and
	@# udev upgrades and run update-initramfs on this machine).
	@$(LAB_FETCH)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# `snapbox bench` shares the measuring loops and reports of bench/.
$(CLI): $(BUILD)/tools/snapbox.o $(BUILD)/tools/snapbox_run.o $(BUILD)/tools/snapbox_bench.o \
		$(BUILD)/tools/cli_util.o $(BUILD)/tools/snapbox_clones.o \
		$(BENCH_COMMON:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(LDFLAGS) $^ $(LIBS) -o $@

$(DAEMON): $(BUILD)/tools/snapboxd.o $(BUILD)/tools/cli_util.o $(SERVER_SRCS:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(LDFLAGS) $^ $(LIBS) -lmicrohttpd -ljson-c -o $@

$(BUILD)/guest/probe/%.c.o: guest/probe/%.c
	@mkdir -p $(dir $@)
	$(CC) $(PROBE_CFLAGS) -c $< -o $@

$(BUILD)/guest/probe/%.S.o: guest/probe/%.S
	@mkdir -p $(dir $@)
	$(CC) $(PROBE_CFLAGS) -c $< -o $@

$(PROBE): $(PROBE_OBJS) guest/probe/probe.ld
	$(CC) $(PROBE_CFLAGS) $(PROBE_LDFLAGS) $(PROBE_OBJS) -o $@

$(BUILD)/guest/agent-obj/%.c.o: guest/agent/%.c
	@mkdir -p $(dir $@)
	$(CC) $(AGENT_CFLAGS) -c $< -o $@

$(BUILD)/guest/agent-obj/frame.c.o: proto/frame.c
	@mkdir -p $(dir $@)
	$(CC) $(AGENT_CFLAGS) -c $< -o $@

$(AGENT): $(AGENT_OBJS)
	$(CC) -static $(AGENT_OBJS) -o $@

$(MKINITRAMFS): $(BUILD)/tools/mkinitramfs.o
	$(CC) $(LDFLAGS) $^ -o $@

# The guest's initramfs: /init = the agent, busybox and its applet links;
# reproducible (same inputs, same bytes).
$(INITRAMFS): $(MKINITRAMFS) $(AGENT) $(BUSYBOX)
	$(MKINITRAMFS) --init $(AGENT) --busybox $(BUSYBOX) --compress gzip -o $@

$(BUSYBOX):
	@echo "$(BUSYBOX) is missing: run 'make deps' (Debian package busybox-static)" >&2; exit 1

$(UNIT_BIN): $(UNIT_SRCS:%.c=$(BUILD)/%.o) $(TEST_COMMON:%.c=$(BUILD)/%.o) $(BENCH_COMMON:%.c=$(BUILD)/%.o) \
		$(BUILD)/server/util.o $(BUILD)/server/paths.o $(BUILD)/server/tenants.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LIBS) -lcriterion -ljson-c -o $@

# json-c (tests only): tests/kvm_bench.c parses `snapbox bench --json`.
$(KVMT_BIN): $(KVMT_SRCS:%.c=$(BUILD)/%.o) $(TEST_COMMON:%.c=$(BUILD)/%.o) $(BENCH_COMMON:%.c=$(BUILD)/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LIBS) -lcriterion -ljson-c -o $@

$(LINUX_BIN): $(LINUX_SRCS:%.c=$(BUILD)/%.o) $(TEST_COMMON:%.c=$(BUILD)/%.o) $(BENCH_COMMON:%.c=$(BUILD)/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LIBS) -lcriterion -o $@

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BENCH_COMMON:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(LDFLAGS) $^ $(LIBS) -lm -o $@

# The test suite. `make test` (the README's and CI's command, tests/run.sh):
# the unit tests, then every KVM test wherever KVM is: natively on a usable
# /dev/kvm (the probe KVM suite, its ASan + UBSan build, peer-check; then the
# nested lab for the Linux guest), else all of them inside the nested lab.
# SNAPBOX_KVM=native|lab|skip overrides the choice; skip is reported loudly.
# A KVM test that ran nowhere fails. `make check`: unit and probe KVM tests on
# this host only (skipped without /dev/kvm), for day-to-day work.
UNIT_ENV := SNAPBOX_AGENT=$(AGENT) SNAPBOX_MKINITRAMFS=$(MKINITRAMFS) SNAPBOX_CLI=$(CLI)
ASAN_BUILD := build-asan
ASAN_SAN   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# Why the sub-make: the build is parallel (-j, one job per core) even when
# `make test` is typed without -j; the tests themselves then run in order.
NPROC := $(shell nproc 2>/dev/null || echo 2)
.PHONY: test-build
test:
	$(MAKE) --no-print-directory -j$(NPROC) test-build
	BUILD=$(BUILD) BUILD_ASAN=$(ASAN_BUILD) sh tests/run.sh
test-build: $(UNIT_BIN) $(KVMT_BIN) $(LINUX_BIN) $(PROBE) $(AGENT) $(MKINITRAMFS) $(CLI) $(DAEMON) $(INITRAMFS) \
		$(BENCH_BINS) guest asan-build image test-image node-image
check: $(UNIT_BIN) $(KVMT_BIN) $(PROBE) $(AGENT) $(MKINITRAMFS) $(CLI)
	$(UNIT_ENV) $(UNIT_BIN) --jobs 1
	SNAPBOX_PROBE=$(PROBE) $(KVMT_BIN) --jobs 1
	@# QEMU peer comparison, 2 pairs (~2 s); prints SKIP without qemu or /dev/kvm.
	@$(MAKE) --no-print-directory peer-check

unit: $(UNIT_BIN) $(AGENT) $(MKINITRAMFS) $(CLI)
	$(UNIT_ENV) $(UNIT_BIN) --jobs 1

kvmtest: $(KVMT_BIN) $(PROBE)
	SNAPBOX_PROBE=$(PROBE) $(KVMT_BIN) --jobs 1

BENCH_RUNS ?= 50
BENCH_CLI_RUNS ?= 20
# Without a usable /dev/kvm (or with SNAPBOX_KVM=lab), `make bench` and `make
# peer` run the same programs inside the nested lab, fewer runs, and copy the
# JSON back into $(BUILD); every report says "emulated" and means nothing.
KVM_HERE = $(shell [ "$$(sh tests/lab/where.sh)" = native ] && echo yes)
bench: $(BENCH_BINS) $(PROBE) $(CLI) $(DAEMON)
ifneq ($(KVM_HERE),yes)
	@echo "No usable /dev/kvm here: the benchmarks run inside the nested lab (emulated; their times mean nothing)."
	BUILD=$(BUILD) LAB_SHOW=1 LAB_RUNS=$(BENCH_CLI_RUNS) sh tests/lab/lab.sh bench
	cp $(BUILD)/lab/out/*.json $(BUILD)/
else
	$(BUILD)/bench/coldboot --kernel $(PROBE) --runs $(BENCH_RUNS) --json $(BUILD)/bench-coldboot.json
	$(BUILD)/bench/restore --kernel $(PROBE) --runs $(BENCH_RUNS) --samples --json $(BUILD)/bench-restore.json
	$(BUILD)/bench/snapshot --kernel $(PROBE) --runs 3 --json $(BUILD)/bench-snapshot.json
	SNAPBOX_PROBE=$(PROBE) $(CLI) bench cold --iterations $(BENCH_CLI_RUNS)
	SNAPBOX_PROBE=$(PROBE) $(CLI) bench snapshot --iterations $(BENCH_CLI_RUNS)
	SNAPBOX_PROBE=$(PROBE) $(CLI) bench restore --mode cow --iterations $(BENCH_CLI_RUNS)
	SNAPBOX_PROBE=$(PROBE) $(CLI) bench restore --mode cow --pooled --iterations $(BENCH_CLI_RUNS)
	BUILD=$(BUILD) /usr/bin/python3 bench/api --iterations $(BENCH_RUNS) --json $(BUILD)/bench-api.json
endif

# Guest images from Debian's packages (guest/image/build.sh, docs/guest-image.md):
# `make image` builds (or finds) the cached image, `make -s image-path` prints it.
IMAGE_NAME ?= python
IMAGE_ARGS ?=
.PHONY: image image-path test-image node-image
image: $(AGENT) $(MKINITRAMFS)
	sh guest/image/build.sh --name $(IMAGE_NAME) --agent $(AGENT) --mkinitramfs $(MKINITRAMFS) $(IMAGE_ARGS)
# The test-only image with CPython's own regression tests (lab group cpython).
test-image: $(AGENT) $(MKINITRAMFS)
	sh guest/image/build.sh --name python-tests --agent $(AGENT) --mkinitramfs $(MKINITRAMFS)
# The node image (Debian's Node.js; its smoke test is in lab group image).
node-image: $(AGENT) $(MKINITRAMFS)
	sh guest/image/build.sh --name node --agent $(AGENT) --mkinitramfs $(MKINITRAMFS)
image-path: $(AGENT) $(MKINITRAMFS)
	@sh guest/image/build.sh --path --name $(IMAGE_NAME) --agent $(AGENT) --mkinitramfs $(MKINITRAMFS) $(IMAGE_ARGS) 2>/dev/null || \
		{ echo "no $(IMAGE_NAME) image built: run make image" >&2; exit 1; }

# The QEMU peer comparison and the plots (docs/benchmarks.md). Their Debian
# packages are optional and never part of `make deps`.
PEER_PKGS  := qemu-system-x86
PLOT_PKGS  := gnuplot-nox
PEER_ITERS ?= 30
# $(call apt_install,packages): install what is missing, no prompt.
apt_install = @missing=""; for p in $(1); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		echo "installing:$$missing"; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "all present:$(1)"; fi

.PHONY: peer-deps plot-deps peer peer-check plots
peer-deps:
	$(call apt_install,$(PEER_PKGS))
plot-deps:
	$(call apt_install,$(PLOT_PKGS))

# Full peer run: QEMU -M microvm vs snapbox on the probe guest, interleaved.
peer: $(CLI) $(PROBE) $(BUILD)/bench/restore
ifneq ($(KVM_HERE),yes)
	@echo "No usable /dev/kvm here: the peer comparison runs inside the nested lab (emulated; its times mean nothing)."
	BUILD=$(BUILD) LAB_SHOW=1 LAB_RUNS=$(PEER_ITERS) sh tests/lab/lab.sh peer
	cp $(BUILD)/lab/out/bench-peer.json $(BUILD)/bench-peer.json
else
	BUILD=$(BUILD) python3 bench/peer-qemu --iterations $(PEER_ITERS) --json $(BUILD)/bench-peer.json
endif

# Short peer run (2 pairs): asserts both sides reach PONG and produce numbers, no timing.
peer-check: $(CLI) $(PROBE) $(BUILD)/bench/restore
	@if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then \
		echo "SKIP: peer-check: qemu-system-x86_64 is not installed (make peer-deps)"; \
	elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then \
		echo "SKIP: peer-check: /dev/kvm is not usable"; \
	else \
		BUILD=$(BUILD) python3 bench/peer-qemu --iterations 2 --warmup 0 --pool-runs 2 \
			--json $(BUILD)/bench-peer-check.json; \
	fi

# PNGs for docs/benchmarks.md from the JSON of `make bench` (restore with --samples) and `make peer`.
plots:
	python3 bench/plot.py --restore $(BUILD)/bench-restore.json --peer $(BUILD)/bench-peer.json \
		--out docs/img

# The main demo: cold boot, snapshot, restore, PING, short restore bench.
demo: $(CLI) $(PROBE) $(BENCH_BINS)
	BUILD=$(BUILD) sh tools/demo.sh

# ASan + UBSan builds into build-asan/. asan-build: what `make test` runs
# (the unit and probe KVM test binaries, the CLI). asan-unit: the unit tests
# under the sanitizers (CI). asan: asan-unit, then the probe KVM suite under
# the sanitizers wherever KVM is (this host, else the lab).
.PHONY: asan-build asan-unit
asan-build:
	$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) SAN="$(ASAN_SAN)" $(ASAN_BUILD)/tests/unit \
		$(ASAN_BUILD)/tests/kvm $(ASAN_BUILD)/snapbox $(ASAN_BUILD)/guest/agent $(ASAN_BUILD)/mkinitramfs
asan-unit: asan-build
	SNAPBOX_AGENT=$(ASAN_BUILD)/guest/agent SNAPBOX_MKINITRAMFS=$(ASAN_BUILD)/mkinitramfs \
		SNAPBOX_CLI=$(ASAN_BUILD)/snapbox $(ASAN_BUILD)/tests/unit --jobs 1
asan: asan-unit $(PROBE) $(CLI)
	@if [ "$$(sh tests/lab/where.sh)" = native ]; then \
		SNAPBOX_KVM_REQUIRED=1 SNAPBOX_PROBE=$(PROBE) $(ASAN_BUILD)/tests/kvm --jobs 1; \
	else BUILD=$(BUILD) BUILD_ASAN=$(ASAN_BUILD) sh tests/lab/lab.sh kvm-suite-asan; fi

# libFuzzer targets (tests/fuzz/fuzz_*.c, docs in tests/fuzz/README.md), built by
# clang with ASan and UBSan into build-fuzz/ from the library sources they need.
# `make fuzz` replays each target's committed corpus (tests/fuzz/corpus/<target>/);
# `make fuzz FUZZ_SECONDS=N` fuzzes each target for N seconds: new inputs go to
# build-fuzz/corpus/<target>/, never into the committed corpus, and crashes to
# build-fuzz/artifacts/<target>/. clang is not part of `make deps`: `make fuzz-deps`.
FUZZ_PKGS    := clang libclang-rt-14-dev
FUZZ_BUILD   := build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 0
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=gnu11 -Wall -Wextra -Werror -O1 -g -MMD -MP -I. -Iinclude -D_GNU_SOURCE $(FUZZ_SAN)
FUZZ_TARGETS := $(sort $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)
FUZZ_LIB     := $(FUZZ_BUILD)/libsnapbox-fuzz.a
FUZZ_LIB_SRCS := kvm/bootparams.c kvm/bus.c kvm/devices.c kvm/gmem.c kvm/i8042.c kvm/kvmsys.c kvm/log.c \
	kvm/loader_bzimage.c kvm/loader_elf.c kvm/sbuf.c kvm/uart.c kvm/vcpu_state.c \
	kvm/vcpu_state_codec.c kvm/vcpu_state_live.c kvm/vm_state.c kvm/kvmcall.c kvm/virtq.c kvm/virtio_mmio.c \
	kvm/vsock.c kvm/vsock_conn.c runtime/counts.c runtime/profile.c \
	proto/frame.c runtime/snapconf.c \
	snapshot/memfile.c snapshot/vmstate.c
# -close_fd_mask=2 silences the library's one-line rejections; libFuzzer and the
# sanitizers still report on the original stderr.
FUZZ_LIBS    := -lelf -llz4 -lxxhash -lpthread
FUZZ_OPTS    := -timeout=10 -rss_limit_mb=2048 -close_fd_mask=2

.PHONY: fuzz fuzz-deps fuzz-cc
fuzz-deps:
	$(call apt_install,$(FUZZ_PKGS))

fuzz-cc:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || \
		{ echo "$(FUZZ_CC) is missing: run 'make fuzz-deps'" >&2; exit 1; }

$(FUZZ_BUILD)/lib/%.o: %.c | fuzz-cc
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_SRCS:%.c=$(FUZZ_BUILD)/lib/%.o)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/obj/%.o: tests/fuzz/%.c | fuzz-cc
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -c $< -o $@

.SECONDARY: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/obj/%.o)
$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/fuzz_%.o $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $^ $(FUZZ_LIBS) -o $@

fuzz: $(FUZZ_BINS)
	@failed=""; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_BUILD)/artifacts/$$t $(FUZZ_BUILD)/corpus/$$t; \
		if [ "$(FUZZ_SECONDS)" = 0 ]; then \
			echo "fuzz: $$t: replaying tests/fuzz/corpus/$$t"; \
			$(FUZZ_BUILD)/$$t $(FUZZ_OPTS) -runs=0 -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t/ \
				tests/fuzz/corpus/$$t || failed="$$failed $$t"; \
		else \
			echo "fuzz: $$t: fuzzing for $(FUZZ_SECONDS) s"; \
			$(FUZZ_BUILD)/$$t $(FUZZ_OPTS) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
				-artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t/ \
				$(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t || failed="$$failed $$t"; \
		fi; \
	done; \
	n=$$(echo $(FUZZ_TARGETS) | wc -w); f=$$(echo $$failed | wc -w); \
	echo "fuzz: $$((n - f)) passed, $$f failed$${failed:+ (}$${failed# }$${failed:+)}"; \
	[ -z "$$failed" ]

# The guest kernel (guest/linux): tinyconfig + guest/linux/snapbox.config from
# Debian's linux-source-6.1, cached outside the work tree by guest/linux/build.sh
# (about 8 minutes on 2 cores, once per config). `make guest-path` prints the
# cached vmlinux, or fails when it is not built.
GUEST_DEB_PKGS := build-essential bc bison flex libelf-dev xz-utils linux-source-6.1
guest-deps:
	$(call apt_install,$(GUEST_DEB_PKGS))
guest:
	@sh guest/linux/build.sh
guest-path:
	@sh guest/linux/build.sh --path

# The nested KVM lab (tests/lab): Debian's cloud kernel under QEMU/TCG with an
# emulated SVM CPU runs kvm-amd, and inside it snapbox boots the probe and the
# Linux guest for real. The script fetches the cloud kernel itself (apt-get
# download, unpacked into the cache, never installed).
LAB_DEB_PKGS := qemu-system-x86 busybox-static cpio e2fsprogs
# Fetch the L1 kernel; with stale apt lists (a kernel ABI bump) refresh them
# and try once more. Not fatal: only the lab needs it, and `make lab` says why.
LAB_FETCH = sh tests/lab/lab.sh --fetch || { S=""; [ "$$(id -u)" = 0 ] || S=sudo; \
	$$S apt-get update -qq && sh tests/lab/lab.sh --fetch; } || \
	echo "deps: warning: could not fetch the lab's L1 kernel (linux-image-cloud-amd64); make lab needs it" >&2
lab-deps:
	$(call apt_install,$(LAB_DEB_PKGS))
	@$(LAB_FETCH)
lab: $(CLI) $(PROBE) $(KVMT_BIN) $(LINUX_BIN) $(INITRAMFS) guest
	BUILD=$(BUILD) sh tests/lab/lab.sh $(LAB_GROUPS)
# The lab's watchdog, tested: L1 goes silent once, the host must kill it, rerun
# the group in a fresh L1 and pass, counting 1 freeze.
.PHONY: lab-selftest
lab-selftest: $(CLI) $(PROBE)
	BUILD=$(BUILD) LAB_FREEZE=20 sh tests/lab/lab.sh probe watchdog-selftest 2>&1 | tee $(BUILD)/lab-selftest.log
	grep -q 'PASS (.*1 L1 freeze(s): watchdog-selftest' $(BUILD)/lab-selftest.log

install: $(CLI) $(LIB) $(PROBE)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/share/snapbox
	install -m 0755 $(CLI) $(DESTDIR)$(PREFIX)/bin/snapbox
	install -m 0644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libsnapbox.a
	install -m 0644 include/snapbox.h $(DESTDIR)$(PREFIX)/include/snapbox.h
	install -m 0644 $(PROBE) $(DESTDIR)$(PREFIX)/share/snapbox/probe.elf

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
