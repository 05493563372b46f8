/* lib.c - the freestanding probe's tiny libc: mem* (gcc may emit calls to them), strings, cmdline parsing. */

#include "guest/probe/probe.h"

/*
 * rep movsb / rep stosb: fast in ring 3 (ERMS), and no C loop that gcc
 * could turn back into a call to the very function being defined.
 */
void *memcpy(void *d, const void *s, size_t n)
{
	void *ret = d;
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	return ret;
}

void *memmove(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;

	if (dp <= sp || dp >= sp + n)
		return memcpy(d, s, n);
	/* overlapping, destination above: copy backwards with DF set */
	dp += n - 1;
	sp += n - 1;
	__asm__ volatile("std\n\trep movsb\n\tcld"
			 : "+D"(dp), "+S"(sp), "+c"(n) : : "memory");
	return d;
}

void *memset(void *d, int c, size_t n)
{
	void *ret = d;
	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return ret;
}

__attribute__((optimize("no-tree-loop-distribute-patterns")))
int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	size_t i = 0;

	/* 8 bytes at a time while equal, then bytewise for the answer */
	for (; i + 8 <= n; i += 8) {
		uint64_t u, v;
		__builtin_memcpy(&u, x + i, 8);
		__builtin_memcpy(&v, y + i, 8);
		if (u != v)
			break;
	}
	for (; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

__attribute__((optimize("no-tree-loop-distribute-patterns")))
size_t probe_strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

void probe_cat(char *buf, size_t cap, size_t *pos, const char *s)
{
	size_t p = *pos;

	if (cap == 0)
		return;
	while (*s && p + 1 < cap)
		buf[p++] = *s++;
	buf[p] = 0;
	*pos = p;
}

void probe_cat_u64(char *buf, size_t cap, size_t *pos, uint64_t v)
{
	char tmp[24];
	int i = (int)sizeof(tmp) - 1;

	tmp[i] = 0;
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	probe_cat(buf, cap, pos, tmp + i);
}

void probe_cat_hex(char *buf, size_t cap, size_t *pos, uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[24];
	int i = (int)sizeof(tmp) - 1;

	tmp[i] = 0;
	do {
		tmp[--i] = digits[v & 15];
		v >>= 4;
	} while (v);
	tmp[--i] = 'x';
	tmp[--i] = '0';
	probe_cat(buf, cap, pos, tmp + i);
}

int probe_cmdline_get(const char *cmdline, const char *key, const char **val, size_t *vlen)
{
	size_t klen = probe_strlen(key);
	const char *p = cmdline;

	while (*p) {
		const char *w;
		size_t wlen = 0;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		w = p;
		while (w[wlen] && w[wlen] != ' ' && w[wlen] != '\t' && w[wlen] != '\n')
			wlen++;
		p = w + wlen;
		if (wlen < klen || memcmp(w, key, klen) != 0)
			continue;
		if (wlen == klen) {
			*val = w + wlen;
			*vlen = 0;
			return 1;
		}
		if (w[klen] == '=') {
			*val = w + klen + 1;
			*vlen = wlen - klen - 1;
			return 1;
		}
	}
	return 0;
}

uint64_t probe_parse_u64(const char *s, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;

	if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (i = 2; i < n; i++) {
			char c = s[i];
			unsigned d;
			if (c >= '0' && c <= '9')
				d = (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				d = (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				d = (unsigned)(c - 'A' + 10);
			else
				break;
			v = v * 16 + d;
		}
		return v;
	}
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		v = v * 10 + (uint64_t)(s[i] - '0');
	return v;
}
