/* profile.c - CreateVmProfile and BootProfile: derived fields, readable lines, JSON, BOOT_TIME parsing; the KVM backend for reports. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "kvm/kvmsys.h"
#include "snapbox.h"
#include "runtime/counts.h"

struct profile_field {
	const char *name;
	size_t off;
};

#define PF(s, f) { #f, offsetof(struct s, f) }

/* One table drives the readable and the JSON output, in the design notes' order. */
static const struct profile_field profile_create_fields[] = {
	PF(snapbox_create_profile, kvm_fd_open),
	PF(snapbox_create_profile, kvm_create_vm),
	PF(snapbox_create_profile, vm_arch_setup),
	PF(snapbox_create_profile, guest_memory_mmap),
	PF(snapbox_create_profile, kernel_asset_read),
	PF(snapbox_create_profile, rootfs_asset_read),
	PF(snapbox_create_profile, kernel_elf_load),
	PF(snapbox_create_profile, rootfs_write),
	PF(snapbox_create_profile, kvm_set_user_memory_region),
	PF(snapbox_create_profile, vcpu_creation),
	PF(snapbox_create_profile, vcpu_register_config),
	PF(snapbox_create_profile, cpuid_config),
	PF(snapbox_create_profile, boot_params),
	PF(snapbox_create_profile, create_vm_total),
	PF(snapbox_create_profile, boot_wait),
	PF(snapbox_create_profile, misc),
	PF(snapbox_create_profile, cold_start_total),
};

/* Durations only; the exit counters are printed separately. */
static const struct profile_field profile_boot_fields[] = {
	PF(snapbox_boot_profile, vcpu_thread_start),
	PF(snapbox_boot_profile, first_guest_byte),
	PF(snapbox_boot_profile, ready),
};

static const struct profile_field profile_boot_counters[] = {
	PF(snapbox_boot_profile, exits),
	PF(snapbox_boot_profile, io_exits),
	PF(snapbox_boot_profile, mmio_exits),
};

static const struct profile_field profile_snapshot_fields[] = {
	PF(snapbox_snapshot_profile, prewarm),
	PF(snapbox_snapshot_profile, pause),
	PF(snapbox_snapshot_profile, vcpu_capture),
	PF(snapbox_snapshot_profile, device_capture),
	PF(snapbox_snapshot_profile, memory_compress),
	PF(snapbox_snapshot_profile, write),
	PF(snapbox_snapshot_profile, fsync),
	PF(snapbox_snapshot_profile, total),
};

static const struct profile_field profile_restore_fields[] = {
	PF(snapbox_restore_profile, snapshot_open),
	PF(snapbox_restore_profile, kvm_fd_open),
	PF(snapbox_restore_profile, kvm_create_vm),
	PF(snapbox_restore_profile, vm_arch_setup),
	PF(snapbox_restore_profile, guest_memory_mmap),
	PF(snapbox_restore_profile, kvm_set_user_memory_region),
	PF(snapbox_restore_profile, vcpu_creation),
	PF(snapbox_restore_profile, cpuid_config),
	PF(snapbox_restore_profile, memory_state_write),
	PF(snapbox_restore_profile, vcpu_state_restore),
	PF(snapbox_restore_profile, device_state_restore),
	PF(snapbox_restore_profile, resume_kvm_run),
	PF(snapbox_restore_profile, guest_refresh),
	PF(snapbox_restore_profile, total_without_resume),
	PF(snapbox_restore_profile, total_with_resume),
	PF(snapbox_restore_profile, restore_to_ready),
};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static const char *const profile_stage_names[SNAPBOX_STAGE_COUNT] = {
	"init_entry", "mounts_done", "uart_access_done", "init_ok", "ready", "command_loop",
};

static uint64_t profile_get(const void *p, size_t off)
{
	uint64_t v;

	memcpy(&v, (const char *)p + off, sizeof(v));
	return v;
}

const char *snapbox_stage_name(enum snapbox_stage s)
{
	if ((unsigned)s >= SNAPBOX_STAGE_COUNT)
		return NULL;
	return profile_stage_names[s];
}

void snapbox_create_profile_finish(struct snapbox_create_profile *p)
{
	uint64_t sum = 0;
	size_t i;

	/* Every phase listed before create_vm_total is part of it. */
	for (i = 0; i < NFIELDS(profile_create_fields); i++) {
		if (strcmp(profile_create_fields[i].name, "create_vm_total") == 0)
			break;
		sum += profile_get(p, profile_create_fields[i].off);
	}
	p->misc = p->create_vm_total > sum ? p->create_vm_total - sum : 0;
	p->cold_start_total = p->create_vm_total + p->boot_wait;
}

static void profile_line(FILE *f, const char *tag, const char *name, uint64_t ns)
{
	fprintf(f, "[%s] %-27s %10.3f ms\n", tag, name, (double)ns / 1e6);
}

/* Every duration field of a table, one readable line each. */
static void profile_lines(FILE *f, const char *tag, const void *p, const struct profile_field *fl,
			  size_t n)
{
	for (size_t i = 0; i < n; i++)
		profile_line(f, tag, fl[i].name, profile_get(p, fl[i].off));
}

void snapbox_print_create_profile(FILE *f, const struct snapbox_create_profile *p)
{
	profile_lines(f, "create-vm-profile", p, profile_create_fields, NFIELDS(profile_create_fields));
	counts_print(f, "create-vm-counts", &p->counts);
}

void snapbox_print_boot_profile(FILE *f, const struct snapbox_boot_profile *p)
{
	size_t i;

	profile_lines(f, "boot-profile", p, profile_boot_fields, NFIELDS(profile_boot_fields));
	for (i = 0; i < NFIELDS(profile_boot_counters); i++)
		fprintf(f, "[boot-profile] %-27s %10llu\n", profile_boot_counters[i].name,
			(unsigned long long)profile_get(p, profile_boot_counters[i].off));
	for (i = 0; i < SNAPBOX_STAGE_COUNT; i++) {
		if (p->stage_valid[i])
			fprintf(f, "[boot-profile] guest.%-21s %10.3f ms\n", profile_stage_names[i],
				(double)p->stage_ns[i] / 1e6);
		else
			fprintf(f, "[boot-profile] guest.%-21s %10s\n", profile_stage_names[i],
				"missing");
	}
}

static void profile_json_fields(FILE *f, const void *p, const struct profile_field *fl,
				size_t n, const char *suffix, bool *first)
{
	size_t i;

	for (i = 0; i < n; i++) {
		fprintf(f, "%s\"%s%s\": %llu", *first ? "" : ", ", fl[i].name, suffix,
			(unsigned long long)profile_get(p, fl[i].off));
		*first = false;
	}
}

void snapbox_json_create_profile(FILE *f, const struct snapbox_create_profile *p)
{
	bool first = true;

	fputc('{', f);
	profile_json_fields(f, p, profile_create_fields, NFIELDS(profile_create_fields), "_ns",
			    &first);
	fputs(",\"counts\":", f);
	counts_json(f, &p->counts);
	fputc('}', f);
}

void snapbox_json_boot_profile(FILE *f, const struct snapbox_boot_profile *p)
{
	bool first = true;
	size_t i;

	fputc('{', f);
	profile_json_fields(f, p, profile_boot_fields, NFIELDS(profile_boot_fields), "_ns", &first);
	profile_json_fields(f, p, profile_boot_counters, NFIELDS(profile_boot_counters), "", &first);
	fputs(", \"guest_stages_ns\": {", f);
	first = true;
	for (i = 0; i < SNAPBOX_STAGE_COUNT; i++) {
		fprintf(f, "%s\"%s\": ", first ? "" : ", ", profile_stage_names[i]);
		if (p->stage_valid[i])
			fprintf(f, "%llu", (unsigned long long)p->stage_ns[i]);
		else
			fputs("null", f);
		first = false;
	}
	fputs("}}", f);
}

int snapbox_parse_boot_time(const char *line, size_t len, enum snapbox_stage *stage,
			    uint64_t *ns)
{
	static const char prefix[] = "BOOT_TIME:";
	const size_t plen = sizeof(prefix) - 1;
	size_t i, name_len, ndigits = 0;
	const char *name, *colon;
	uint64_t v = 0;

	/* Tolerate one line terminator; anything else after the digits is an error. */
	if (len && line[len - 1] == '\n')
		len--;
	if (len && line[len - 1] == '\r')
		len--;
	if (len <= plen || memcmp(line, prefix, plen) != 0)
		return -EINVAL;
	name = line + plen;
	colon = memchr(name, ':', len - plen);
	if (!colon)
		return -EINVAL;
	name_len = (size_t)(colon - name);
	for (i = 0; i < SNAPBOX_STAGE_COUNT; i++) {
		if (strlen(profile_stage_names[i]) == name_len &&
		    memcmp(profile_stage_names[i], name, name_len) == 0)
			break;
	}
	if (i == SNAPBOX_STAGE_COUNT)
		return -EINVAL;
	for (const char *d = colon + 1; d < line + len; d++, ndigits++) {
		if (*d < '0' || *d > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*d - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*d - '0');
	}
	if (ndigits == 0)
		return -EINVAL;
	*stage = (enum snapbox_stage)i;
	*ns = v;
	return 0;
}

static double profile_ratio(uint64_t in, uint64_t out)
{
	return out ? (double)in / (double)out : 0.0;
}

void snapbox_print_snapshot_profile(FILE *f, const struct snapbox_snapshot_profile *p)
{
	profile_lines(f, "snapshot-profile", p, profile_snapshot_fields,
		      NFIELDS(profile_snapshot_fields));
	fprintf(f, "[snapshot-profile] %-27s %10.1f MiB\n", "bytes_in", (double)p->bytes_in / 1048576.0);
	fprintf(f, "[snapshot-profile] %-27s %10.1f MiB\n", "bytes_out", (double)p->bytes_out / 1048576.0);
	fprintf(f, "[snapshot-profile] %-27s %10.2f\n", "ratio", profile_ratio(p->bytes_in, p->bytes_out));
	fprintf(f, "[snapshot-profile] %-27s %u zero, %u lz4, %u raw\n", "chunks", p->zero_chunks,
		p->lz4_chunks, p->raw_chunks);
	counts_print(f, "snapshot-counts", &p->counts);
}

void snapbox_json_snapshot_profile(FILE *f, const struct snapbox_snapshot_profile *p)
{
	bool first = true;

	fputc('{', f);
	profile_json_fields(f, p, profile_snapshot_fields, NFIELDS(profile_snapshot_fields), "_ns",
			    &first);
	fprintf(f, ", \"bytes_in\": %llu, \"bytes_out\": %llu, \"ratio\": %.3f, \"zero_chunks\": %u, "
		"\"lz4_chunks\": %u, \"raw_chunks\": %u, \"counts\": ", (unsigned long long)p->bytes_in,
		(unsigned long long)p->bytes_out, profile_ratio(p->bytes_in, p->bytes_out),
		p->zero_chunks, p->lz4_chunks, p->raw_chunks);
	counts_json(f, &p->counts);
	fputc('}', f);
}

void snapbox_print_restore_profile(FILE *f, const struct snapbox_restore_profile *p)
{
	profile_lines(f, "restore-profile", p, profile_restore_fields, NFIELDS(profile_restore_fields));
	fprintf(f, "[restore-profile] pooled %31s\n", p->pooled ? (p->warm ? "yes, warm" : "yes") : "no");
	counts_print(f, "restore-counts", &p->counts);
}

void snapbox_json_restore_profile(FILE *f, const struct snapbox_restore_profile *p)
{
	bool first = true;

	fputc('{', f);
	profile_json_fields(f, p, profile_restore_fields, NFIELDS(profile_restore_fields), "_ns",
			    &first);
	fprintf(f, ",\"pooled\":%s,\"warm\":%s,\"counts\":", p->pooled ? "true" : "false",
		p->warm ? "true" : "false");
	counts_json(f, &p->counts);
	fputc('}', f);
}

const char *snapbox_kvm_backend(void)
{
	return kvmsys_host_is_pvm() ? "pvm" : "hardware";
}

bool snapbox_host_emulated(void)
{
	return kvmsys_host_emulated();
}

void snapbox_json_string(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}
