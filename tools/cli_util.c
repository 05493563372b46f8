/* cli_util.c - helpers the snapbox CLI, its bench command and snapboxd share: sizes, restore modes, guest assets. */
#include "tools/cli_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 20;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0': case 'M': case 'm': shift = 20; break;
	case 'G': case 'g': shift = 30; break;
	case 'K': case 'k': shift = 10; break;
	case 'B': case 'b': shift = 0; break;
	default: return -EINVAL;
	}
	if (*end && end[1] != '\0')
		return -EINVAL;
	if (v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static const char *const cli_modes[] = { "eager", "cow", "lazy" };

int cli_parse_mode(const char *s, enum snapbox_restore_mode *out)
{
	for (unsigned i = 0; i < sizeof(cli_modes) / sizeof(cli_modes[0]); i++) {
		if (!strcmp(s, cli_modes[i])) {
			*out = (enum snapbox_restore_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *cli_mode_name(enum snapbox_restore_mode m)
{
	return (unsigned)m < sizeof(cli_modes) / sizeof(cli_modes[0]) ? cli_modes[m] : "?";
}

/*
 * The last line `sh SCRIPT --path [ARGS...]` prints (guest/linux/build.sh:
 * the cached kernel; guest/image/build.sh: a cached image). args: up to 6.
 */
static char *cli_script_path(const char *script, const char *const *args)
{
	const char *argv[10] = { "sh", script, "--path" };
	char buf[PATH_MAX + 2] = "";
	size_t have = 0;
	int p[2], st;
	pid_t pid;

	if (access(script, R_OK) != 0 || pipe2(p, O_CLOEXEC) < 0)
		return NULL;
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(p[1], 1);
		dup2(null, 2);
		for (int i = 0; args && args[i] && i < 6; i++)
			argv[3 + i] = args[i];
		execv("/bin/sh", (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		ssize_t n = read(p[0], buf + have, sizeof(buf) - 1 - have);

		if (n <= 0)
			break;
		have += (size_t)n;
	}
	close(p[0]);
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) || !have)
		return NULL;
	buf[have] = '\0';
	while (have && buf[have - 1] == '\n')
		buf[--have] = '\0';
	return access(buf, R_OK) == 0 ? strdup(buf) : NULL;
}

/*
 * A default guest asset: $env, then beside the CLI (build/guest/NAME, as
 * `make` lays it out), then the installed share/snapbox/NAME, then, for the
 * kernel, the cache path guest/linux/build.sh reports. NULL if none exists.
 */
char *cli_find_asset(const char *env, const char *name, bool kernel)
{
	const char *e = getenv(env);
	char exe[PATH_MAX], path[PATH_MAX + 64];
	ssize_t n;
	char *slash;

	if (e && *e)
		return strdup(e);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	snprintf(path, sizeof(path), "%s/guest/%s", exe, name);
	if (access(path, R_OK) == 0)
		return strdup(path);
	snprintf(path, sizeof(path), "%s/../share/snapbox/%s", exe, name);
	if (access(path, R_OK) == 0)
		return strdup(path);
	if (!kernel)
		return NULL;
	snprintf(path, sizeof(path), "%s/../guest/linux/build.sh", exe);
	return cli_script_path(path, NULL);
}

/* The directory of this executable (no trailing slash), or false. */
static bool cli_exe_dir(char *dir, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", dir, len - 1);
	char *slash;

	if (n <= 0)
		return false;
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	if (!slash)
		return false;
	*slash = '\0';
	return true;
}

char *cli_find_image(const char *name)
{
	char exe[PATH_MAX], script[PATH_MAX + 64], agent[PATH_MAX + 64], mk[PATH_MAX + 64];
	const char *args[7];

	if (strchr(name, '/'))
		return access(name, R_OK) == 0 ? strdup(name) : NULL;
	if (!cli_exe_dir(exe, sizeof(exe)))
		return NULL;
	snprintf(script, sizeof(script), "%s/../guest/image/build.sh", exe);
	snprintf(agent, sizeof(agent), "%s/guest/agent", exe);
	snprintf(mk, sizeof(mk), "%s/mkinitramfs", exe);
	args[0] = "--name";
	args[1] = name;
	args[2] = "--agent";
	args[3] = agent;
	args[4] = "--mkinitramfs";
	args[5] = mk;
	args[6] = NULL;
	return cli_script_path(script, args);
}

int cli_read_file(const char *path, size_t max, void **data, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *buf;
	size_t have = 0;
	int ret;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		ret = errno ? -errno : -EFBIG;
		close(fd);
		errno = 0;
		return ret;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (have < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			free(buf);
			close(fd);
			return ret;
		}
		have += (size_t)n;
	}
	close(fd);
	*data = buf;
	*len = have;
	return 0;
}

int cli_time_scale_from_env(const char *prog)
{
	const char *e = getenv("SNAPBOX_TIME_SCALE");
	double f;

	if (!e)
		return 0;
	if (snapbox_parse_time_scale(e, &f)) {
		fprintf(stderr, "%s: SNAPBOX_TIME_SCALE='%s': want a number from 1 to 1000\n", prog, e);
		return -EINVAL;
	}
	return snapbox_set_time_scale(f);
}
