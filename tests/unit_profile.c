/* unit_profile.c - profile arithmetic, readable and JSON output, and BOOT_TIME line parsing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snapbox.h"

#define BT(s) snapbox_parse_boot_time(s, strlen(s), &st, &ns)

Test(boot_time, parses_every_stage_and_line_endings)
{
	enum snapbox_stage st;
	uint64_t ns;

	cr_assert_eq(BT("BOOT_TIME:init_entry:123"), 0);
	cr_assert_eq(st, SNAPBOX_STAGE_INIT_ENTRY);
	cr_assert_eq(ns, 123);
	cr_assert_eq(BT("BOOT_TIME:command_loop:18446744073709551615\r\n"), 0);
	cr_assert_eq(st, SNAPBOX_STAGE_COMMAND_LOOP);
	cr_assert_eq(ns, UINT64_MAX);
	cr_assert_eq(BT("BOOT_TIME:uart_access_done:0\n"), 0);
	cr_assert_eq(st, SNAPBOX_STAGE_UART_ACCESS_DONE);
}

Test(boot_time, rejects_malformed_lines)
{
	static const char *bad[] = {
		"", "BOOT_TIME", "BOOT_TIME:", "BOOT_TIME:init_entry", "BOOT_TIME:init_entry:",
		"BOOT_TIME:init_entry:12a", "BOOT_TIME:init_entry:-1", "BOOT_TIME:bogus:1",
		"BOOT_TIME:init_entr:1", "BOOT_TIME::1", "boot_time:init_entry:1",
		"BOOT_TIME:init_entry:18446744073709551616", "BOOT_TIME:init_entry:1:2",
		"BOOT_TIME:init_entry: 1", "xBOOT_TIME:init_entry:1",
	};
	enum snapbox_stage st = SNAPBOX_STAGE_READY;
	uint64_t ns = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(BT(bad[i]), -EINVAL, "accepted '%s'", bad[i]);
	cr_assert_eq(st, SNAPBOX_STAGE_READY, "outputs touched on failure");
	cr_assert_eq(ns, 42);
}

Test(boot_time, embedded_nul_is_rejected)
{
	enum snapbox_stage st;
	uint64_t ns;
	static const char line[] = "BOOT_TIME:ready:1\0" "2";

	cr_assert_eq(snapbox_parse_boot_time(line, sizeof(line) - 1, &st, &ns), -EINVAL);
}

Test(profile, misc_and_cold_start_are_derived)
{
	struct snapbox_create_profile p = { 0 };

	p.kvm_fd_open = 100;
	p.kvm_create_vm = 200;
	p.boot_params = 50;
	p.create_vm_total = 1000;
	p.boot_wait = 5000;
	snapbox_create_profile_finish(&p);
	cr_assert_eq(p.misc, 650);
	cr_assert_eq(p.cold_start_total, 6000);
	/* phases summing above the total never underflow */
	p.create_vm_total = 10;
	snapbox_create_profile_finish(&p);
	cr_assert_eq(p.misc, 0);
}

static char *capture(void (*fn)(FILE *, const void *), const void *p)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	fn(f, p);
	fclose(f);
	return buf;
}

static void print_create(FILE *f, const void *p) { snapbox_print_create_profile(f, p); }
static void json_create(FILE *f, const void *p) { snapbox_json_create_profile(f, p); }
static void print_boot(FILE *f, const void *p) { snapbox_print_boot_profile(f, p); }
static void json_boot(FILE *f, const void *p) { snapbox_json_boot_profile(f, p); }

Test(profile, readable_lines_have_tag_name_and_ms)
{
	struct snapbox_create_profile p = { .kvm_create_vm = 1234567 };
	char *s = capture(print_create, &p);

	cr_assert_not_null(strstr(s, "[create-vm-profile] kvm_create_vm"));
	cr_assert_not_null(strstr(s, "1.235 ms"));
	cr_assert_not_null(strstr(s, "[create-vm-profile] cold_start_total"));
	free(s);
}

Test(profile, json_has_every_field_in_ns)
{
	struct snapbox_create_profile p = { .vcpu_creation = 42, .cold_start_total = 7 };
	char *s = capture(json_create, &p);

	cr_assert_eq(s[0], '{');
	cr_assert_eq(s[strlen(s) - 1], '}');
	cr_assert_not_null(strstr(s, "\"vcpu_creation_ns\": 42"));
	cr_assert_not_null(strstr(s, "\"cold_start_total_ns\": 7"));
	cr_assert_not_null(strstr(s, "\"kernel_elf_load_ns\": 0"));
	free(s);
}

Test(profile, boot_profile_marks_missing_stages)
{
	struct snapbox_boot_profile b = { .ready = 3000000, .exits = 9 };
	char *s, *j;

	b.stage_valid[SNAPBOX_STAGE_INIT_ENTRY] = true;
	b.stage_ns[SNAPBOX_STAGE_INIT_ENTRY] = 500000;
	s = capture(print_boot, &b);
	j = capture(json_boot, &b);
	cr_assert_not_null(strstr(s, "guest.init_entry"));
	cr_assert_not_null(strstr(s, "0.500 ms"));
	cr_assert_not_null(strstr(s, "missing"));
	cr_assert_not_null(strstr(j, "\"init_entry\": 500000"));
	cr_assert_not_null(strstr(j, "\"command_loop\": null"));
	cr_assert_not_null(strstr(j, "\"exits\": 9"));
	cr_assert_not_null(strstr(j, "\"ready_ns\": 3000000"));
	free(s);
	free(j);
}

Test(profile, stage_names)
{
	cr_assert_str_eq(snapbox_stage_name(SNAPBOX_STAGE_UART_ACCESS_DONE), "uart_access_done");
	cr_assert_null(snapbox_stage_name(SNAPBOX_STAGE_COUNT));
}
