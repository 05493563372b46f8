/* user.c - exec's user: a name or UID[:GID] resolved against the guest's /etc/passwd and /etc/group, and the switch to it in the child. */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest/agent/agent.h"

/*
 * The files are read directly, not through getpwnam(): the agent is linked
 * statically, and glibc's NSS would have to load shared modules at run time.
 * These are the formats of passwd(5) and group(5); lines that do not parse
 * are skipped, as the C library does.
 */

/* Split a line at ':' into at most n fields; returns how many it found. */
static int user_fields(char *line, char **f, int n)
{
	int i = 0;

	line[strcspn(line, "\n")] = 0;
	while (i < n) {
		f[i++] = line;
		line = strchr(line, ':');
		if (!line)
			break;
		*line++ = 0;
	}
	return i;
}

/* A decimal id of at most 10 digits below 2^32 - 1 (the "no id" value). */
static bool user_id(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (!*s || strlen(s) > 10 || strspn(s, "0123456789") != strlen(s))
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v >= 0xffffffffUL)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Find the passwd entry whose name (by_name) or uid equals the key. */
static bool user_passwd(const char *name, uint32_t uid, bool by_name, struct agent_user *u)
{
	FILE *f = fopen("/etc/passwd", "re");
	char line[1024], *fl[7];
	bool found = false;
	uint32_t id, gid;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (user_fields(line, fl, 7) != 7 || !user_id(fl[2], &id) || !user_id(fl[3], &gid))
			continue;
		if (by_name ? strcmp(fl[0], name) != 0 : id != uid)
			continue;
		found = strlen(fl[0]) < sizeof(u->name) && strlen(fl[5]) < sizeof(u->home);
		if (found) {
			u->uid = id;
			u->gid = gid;
			snprintf(u->name, sizeof(u->name), "%s", fl[0]);
			snprintf(u->home, sizeof(u->home), "%s", fl[5][0] ? fl[5] : "/");
		}
	}
	fclose(f);
	return found;
}

/* The primary group, then every group of /etc/group that lists the user as a member. */
static void user_groups(struct agent_user *u)
{
	FILE *f = fopen("/etc/group", "re");
	char line[4096], *fl[4];
	uint32_t gid;

	u->groups[0] = u->gid;
	u->ngroups = 1;
	if (!f)
		return;
	while (u->ngroups < AGENT_USER_MAX_GROUPS && fgets(line, sizeof(line), f)) {
		char *m, *save = NULL;

		if (user_fields(line, fl, 4) != 4 || !user_id(fl[2], &gid) || gid == u->gid)
			continue;
		for (m = strtok_r(fl[3], ",", &save); m; m = strtok_r(NULL, ",", &save)) {
			if (!strcmp(m, u->name)) {
				u->groups[u->ngroups++] = gid;
				break;
			}
		}
	}
	fclose(f);
}

int agent_user_lookup(const char *spec, struct agent_user *u, const char **why)
{
	char uidpart[16];
	const char *colon = strchr(spec, ':');
	uint32_t uid, gid;
	bool numeric;

	memset(u, 0, sizeof(*u));
	if (colon && (size_t)(colon - spec) < sizeof(uidpart)) {
		memcpy(uidpart, spec, (size_t)(colon - spec));
		uidpart[colon - spec] = 0;
	} else {
		snprintf(uidpart, sizeof(uidpart), "%s", colon ? "" : spec);
	}
	numeric = user_id(uidpart, &uid);
	if (colon && (!numeric || !user_id(colon + 1, &gid))) {
		*why = "user must be a name, UID or UID:GID";
		return -EINVAL;
	}
	if (!numeric) {
		if (!user_passwd(spec, 0, true, u)) {
			*why = "no such user in the guest's /etc/passwd";
			return -ESRCH;
		}
	} else if (!user_passwd(NULL, uid, false, u)) {
		/* A uid without an entry runs as itself, like `setpriv --reuid`. */
		u->uid = uid;
		u->gid = uid;
		snprintf(u->name, sizeof(u->name), "%u", uid);
		snprintf(u->home, sizeof(u->home), "/");
	}
	if (colon)
		u->gid = gid;
	user_groups(u);
	return 0;
}

int agent_user_switch(const struct agent_user *u)
{
	/* Groups and gid first: once the uid is dropped they can no longer be set. */
	if (setgroups((size_t)u->ngroups, u->groups) < 0 || setgid(u->gid) < 0 || setuid(u->uid) < 0)
		return -errno;
	/* Only where the caller's env left them out (overwrite 0). */
	if (setenv("HOME", u->home, 0) < 0 || setenv("USER", u->name, 0) < 0 ||
	    setenv("LOGNAME", u->name, 0) < 0)
		return -errno;
	return 0;
}
