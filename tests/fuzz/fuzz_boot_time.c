/* fuzz_boot_time.c - libFuzzer target: snapbox_parse_boot_time, and every accepted line round-trips through snprintf. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The one spelling of an accepted line: no line terminator and no leading
 * zeros in the number. Returns its length in out (which holds size + 1 bytes).
 */
static size_t fz_canonical(const char *line, size_t len, char *out)
{
	const char *colon, *digits;
	size_t n;

	if (len && line[len - 1] == '\n')
		len--;
	if (len && line[len - 1] == '\r')
		len--;
	colon = memchr(line + 10, ':', len - 10); /* after "BOOT_TIME:" */
	if (!colon)
		abort();
	digits = colon + 1;
	while (digits + 1 < line + len && *digits == '0')
		digits++;
	n = (size_t)(colon + 1 - line);
	memcpy(out, line, n);
	memcpy(out + n, digits, (size_t)(line + len - digits));
	n += (size_t)(line + len - digits);
	out[n] = '\0';
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum snapbox_stage stage, stage2;
	uint64_t ns, ns2;
	char buf[128], *canon;
	const char *name;
	int n;

	if (snapbox_parse_boot_time((const char *)data, size, &stage, &ns) != 0)
		return 0;
	name = snapbox_stage_name(stage);
	if (!name)
		abort();
	n = snprintf(buf, sizeof(buf), "BOOT_TIME:%s:%" PRIu64, name, ns);
	if (n <= 0 || (size_t)n >= sizeof(buf))
		abort();
	if (snapbox_parse_boot_time(buf, (size_t)n, &stage2, &ns2) != 0 || stage2 != stage || ns2 != ns)
		abort();
	/* What was printed is the input, less its terminator and leading zeros. */
	canon = malloc(size + 1);
	if (!canon)
		abort();
	if (fz_canonical((const char *)data, size, canon) != (size_t)n || memcmp(canon, buf, (size_t)n) != 0)
		abort();
	free(canon);
	return 0;
}
