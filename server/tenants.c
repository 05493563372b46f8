/* tenants.c - snapboxd's tenants: the token file (a NAME TOKEN pair per line, or one bare token), and lookups that compare every token. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/srv.h"

#define SRV_TOKEN_MIN   16
#define SRV_TOKENS_FILE (64 * 1024)

int srv_tenant_add(struct srv *s, const char *name, const char *token)
{
	struct srv_tenant *tn;

	if (s->ntenants == SRV_TENANTS_MAX)
		return -ENOSPC;
	for (unsigned i = 0; i < s->ntenants; i++)
		if (!strcmp(s->tenants[i].name, name) ||
		    (token && s->tenants[i].token && !strcmp(s->tenants[i].token, token)))
			return -EEXIST;
	tn = &s->tenants[s->ntenants];
	snprintf(tn->name, sizeof(tn->name), "%s", name);
	tn->token = token ? strdup(token) : NULL;
	if (token && !tn->token)
		return -ENOMEM;
	s->ntenants++;
	return 0;
}

struct srv_tenant *srv_tenant_by_token(struct srv *s, const char *given)
{
	struct srv_tenant *found = NULL;

	/* Every token is compared, whichever matches: the time says nothing of which. */
	for (unsigned i = 0; i < s->ntenants; i++)
		if (s->tenants[i].token && srv_token_equal(given, s->tenants[i].token))
			found = &s->tenants[i];
	return found;
}

void srv_tenants_fini(struct srv *s)
{
	for (unsigned i = 0; i < s->ntenants; i++) {
		if (s->tenants[i].token)
			explicit_bzero(s->tenants[i].token, strlen(s->tenants[i].token));
		free(s->tenants[i].token);
	}
	s->ntenants = 0;
}

/* One line: "NAME TOKEN", or (the file's only line) a bare token for tenant "default". */
static int srv_tenant_line(struct srv *s, const char *path, unsigned lineno, char *line, bool only)
{
	char *save = NULL, *name = strtok_r(line, " \t", &save), *token = strtok_r(NULL, " \t", &save);
	char *extra = strtok_r(NULL, " \t", &save);
	int ret;

	if (name && !token && only) {
		token = name;
		name = "default";
	}
	if (!name || !token || extra || !srv_name_valid(name)) {
		srv_log("%s:%u: want NAME TOKEN (NAME as a template name)", path, lineno);
		return -EINVAL;
	}
	if (strlen(token) < SRV_TOKEN_MIN || strlen(token) > SRV_TOKEN_MAX) {
		srv_log("%s:%u: a token has %d to %d characters", path, lineno, SRV_TOKEN_MIN, SRV_TOKEN_MAX);
		return -EINVAL;
	}
	ret = srv_tenant_add(s, name, token);
	if (ret)
		srv_log("%s:%u: %s", path, lineno, ret == -EEXIST ? "a name or token given twice" :
			ret == -ENOSPC ? "too many tenants" : strerror(-ret));
	return ret;
}

int srv_tenants_load(struct srv *s, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	char *buf = NULL, *line, *save = NULL;
	unsigned lineno = 0, lines = 0;
	struct stat st;
	ssize_t n = 0;
	int ret = 0;

	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > SRV_TOKENS_FILE) {
		srv_log("cannot read the token file %s: %s", path, fd < 0 ? strerror(errno) :
			"not a regular file of at most 64 KiB");
		ret = -EINVAL;
	} else if (st.st_mode & 077) {
		srv_log("the token file %s is open to others (mode %04o): make it 0600 or 0400", path,
			(unsigned)(st.st_mode & 07777));
		ret = -EPERM;
	} else if (!(buf = calloc(1, (size_t)st.st_size + 1)) ||
		   (n = read(fd, buf, (size_t)st.st_size)) != st.st_size) {
		ret = -EIO;
	}
	if (fd >= 0)
		close(fd);
	for (char *p = buf; !ret && p && *p; p++)
		lines += *p == '\n';
	/* A bare token is allowed when it is the file's one line. */
	for (line = ret ? NULL : strtok_r(buf, "\r\n", &save); line && !ret; line = strtok_r(NULL, "\r\n", &save)) {
		lineno++;
		if (line[0] == '#' || !line[strspn(line, " \t")])
			continue;
		ret = srv_tenant_line(s, path, lineno, line, lines <= 1);
	}
	if (!ret && !s->ntenants) {
		srv_log("the token file %s has no token", path);
		ret = -EINVAL;
	}
	if (buf)
		explicit_bzero(buf, (size_t)n);
	free(buf);
	return ret;
}
