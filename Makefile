# Makefile - the one non-recursive build for snapbox: library, CLI, probe guest, tests, benches.

CC      ?= gcc
PREFIX  ?= /usr/local
BUILD   ?= build
SAN     ?=

CFLAGS  := -std=gnu11 -Wall -Wextra -Werror -O2 -g -MMD -MP -I. -Iinclude -D_GNU_SOURCE $(SAN)
LDFLAGS := $(SAN)
LIBS    := -lelf -llz4 -lxxhash -lpthread

LIB_SRCS   := $(sort $(wildcard kvm/*.c snapshot/*.c runtime/*.c))
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB        := $(BUILD)/libsnapbox.a
CLI        := $(BUILD)/snapbox
UNIT_SRCS  := $(sort $(wildcard tests/unit_*.c))
KVMT_SRCS  := $(sort $(wildcard tests/kvm_*.c))
TEST_COMMON:= $(sort $(wildcard tests/common_*.c))
UNIT_BIN   := $(BUILD)/tests/unit
KVMT_BIN   := $(BUILD)/tests/kvm
BENCH_SRCS := $(sort $(filter-out bench/bench_%.c,$(wildcard bench/*.c)))
BENCH_COMMON := $(sort $(wildcard bench/bench_*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
PROBE      := $(BUILD)/guest/probe.elf
PROBE_SRCS := $(sort $(wildcard guest/probe/*.c guest/probe/*.S))
PROBE_OBJS := $(patsubst guest/probe/%,$(BUILD)/guest/probe/%.o,$(PROBE_SRCS))

# The probe is freestanding: no libc, no red zone (interrupts share the stack),
# no SSE (CR4.OSFXSR is not ours to assume), fixed link address.
PROBE_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -O2 -g -I. -ffreestanding -fno-pic \
	-fno-stack-protector -mno-red-zone -mgeneral-regs-only -fno-asynchronous-unwind-tables \
	-fcf-protection=none -MMD -MP
PROBE_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-T,guest/probe/probe.ld

.PHONY: all deps test check unit kvmtest bench demo asan clean install probe
all: $(LIB) $(CLI) $(PROBE) $(UNIT_BIN) $(KVMT_BIN) $(BENCH_BINS)

probe: $(PROBE)

# Debian packages the project needs; no prompt, skipped when already present.
DEB_PKGS := build-essential pkg-config libelf-dev liblz4-dev libxxhash-dev libcriterion-dev
deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		echo "installing:$$missing"; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all present"; fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(CLI): $(BUILD)/tools/snapbox.o $(LIB)
	$(CC) $(LDFLAGS) $^ $(LIBS) -o $@

$(BUILD)/guest/probe/%.c.o: guest/probe/%.c
	@mkdir -p $(dir $@)
	$(CC) $(PROBE_CFLAGS) -c $< -o $@

$(BUILD)/guest/probe/%.S.o: guest/probe/%.S
	@mkdir -p $(dir $@)
	$(CC) $(PROBE_CFLAGS) -c $< -o $@

$(PROBE): $(PROBE_OBJS) guest/probe/probe.ld
	$(CC) $(PROBE_CFLAGS) $(PROBE_LDFLAGS) $(PROBE_OBJS) -o $@

$(UNIT_BIN): $(UNIT_SRCS:%.c=$(BUILD)/%.o) $(TEST_COMMON:%.c=$(BUILD)/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LIBS) -lcriterion -o $@

$(KVMT_BIN): $(KVMT_SRCS:%.c=$(BUILD)/%.o) $(TEST_COMMON:%.c=$(BUILD)/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LIBS) -lcriterion -o $@

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BENCH_COMMON:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(LDFLAGS) $^ $(LIBS) -lm -o $@

# The test suite: unit tests (no KVM) and probe-guest KVM tests (skipped, with
# the reason printed, when /dev/kvm is unusable).
test: $(UNIT_BIN) $(KVMT_BIN) $(PROBE)
	$(UNIT_BIN) --jobs 1
	SNAPBOX_PROBE=$(PROBE) $(KVMT_BIN) --jobs 1
check: test

unit: $(UNIT_BIN)
	$(UNIT_BIN) --jobs 1

kvmtest: $(KVMT_BIN) $(PROBE)
	SNAPBOX_PROBE=$(PROBE) $(KVMT_BIN) --jobs 1

BENCH_RUNS ?= 50
bench: $(BENCH_BINS) $(PROBE)
	$(BUILD)/bench/coldboot --kernel $(PROBE) --runs $(BENCH_RUNS) --json $(BUILD)/bench-coldboot.json
	$(BUILD)/bench/restore --kernel $(PROBE) --runs $(BENCH_RUNS) --json $(BUILD)/bench-restore.json
	$(BUILD)/bench/snapshot --kernel $(PROBE) --runs 3 --json $(BUILD)/bench-snapshot.json

# The main demo: cold boot, snapshot, restore, PING, short restore bench.
demo: $(CLI) $(PROBE) $(BENCH_BINS)
	BUILD=$(BUILD) sh tools/demo.sh

# ASan + UBSan build of everything into build-asan/, then the test suite there.
asan:
	$(MAKE) BUILD=build-asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

install: $(CLI) $(LIB) $(PROBE)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/share/snapbox
	install -m 0755 $(CLI) $(DESTDIR)$(PREFIX)/bin/snapbox
	install -m 0644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libsnapbox.a
	install -m 0644 include/snapbox.h $(DESTDIR)$(PREFIX)/include/snapbox.h
	install -m 0644 $(PROBE) $(DESTDIR)$(PREFIX)/share/snapbox/probe.elf

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
