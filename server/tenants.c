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

/* A line (ended by a newline or NUL) that holds an entry: neither blank nor a # comment. */
static bool srv_tenant_entry(const char *line)
{
	line += strspn(line, " \t\r");
	return *line && *line != '#' && *line != '\n';
}

int srv_tenants_load(struct srv *s, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	unsigned lineno = 0, entries = 0;
	size_t size = 0;
	struct stat st;
	char *buf = NULL, *line, *next;
	int ret = 0;

	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > SRV_TOKENS_FILE) {
		srv_log("cannot read the token file %s: %s", path, fd < 0 ? strerror(errno) :
			"not a regular file of at most 64 KiB");
		ret = -EINVAL;
	} else if (st.st_mode & 077) {
		srv_log("the token file %s is open to others (mode %04o): make it 0600 or 0400", path,
			(unsigned)(st.st_mode & 07777));
		ret = -EPERM;
	} else if (!(buf = calloc(1, (size = (size_t)st.st_size + 1))) ||
		   read(fd, buf, (size_t)st.st_size) != st.st_size) {
		srv_log("cannot read the token file %s", path);
		ret = -EIO;
	}
	if (fd >= 0)
		close(fd);
	/* A bare token is allowed when it is the file's one entry. */
	for (line = ret ? NULL : buf; line; line = next ? next + 1 : NULL) {
		next = strchr(line, '\n');
		entries += srv_tenant_entry(line);
		if (!next)
			break;
	}
	for (line = ret ? NULL : buf; line && !ret; line = next ? next + 1 : NULL) {
		next = strchr(line, '\n');
		if (next)
			*next = '\0';
		lineno++;
		line[strcspn(line, "\r")] = '\0';
		if (srv_tenant_entry(line))
			ret = srv_tenant_line(s, path, lineno, line, entries == 1);
		if (!next)
			break;
	}
	if (!ret && !s->ntenants) {
		srv_log("the token file %s has no token", path);
		ret = -EINVAL;
	}
	if (buf)
		explicit_bzero(buf, size);
	free(buf);
	return ret;
}
