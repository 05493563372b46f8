/* kvmsys.c - opens /dev/kvm, checks the API and capabilities, caches host CPUID. */
#include "kvm/kvmsys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct kvmsys_cap {
	int cap;
	const char *name;
};

/* Everything the VM, vCPU and run-loop code relies on. */
static const struct kvmsys_cap kvmsys_required[] = {
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
	{ KVM_CAP_HLT, "KVM_CAP_HLT" },
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
	{ KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
	{ KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
};

static bool kvmsys_host_has_hw_virt(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[4096];
	bool found = false;

	if (!f)
		return true; /* cannot tell: assume hardware, never warn wrongly */
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		found = strstr(line, " vmx") || strstr(line, " svm");
		break;
	}
	fclose(f);
	return found;
}

int kvmsys_init(struct kvmsys *s, const char *path)
{
	char missing[512] = "";
	size_t i;
	int ret, ver;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	if (!path)
		path = "/dev/kvm";
	s->fd = open(path, O_RDWR | O_CLOEXEC);
	if (s->fd < 0) {
		ret = -errno;
		if (ret == -ENOENT)
			fprintf(stderr, "snapbox: %s does not exist: is KVM enabled on this host?\n", path);
		else if (ret == -EACCES || ret == -EPERM)
			fprintf(stderr, "snapbox: no permission to open %s (add yourself to the kvm group)\n", path);
		else
			fprintf(stderr, "snapbox: cannot open %s: %s\n", path, strerror(-ret));
		return ret;
	}
	ver = ioctl(s->fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		fprintf(stderr, "snapbox: %s has KVM API version %d, need %d\n", path, ver, KVM_API_VERSION);
		ret = -ENOTSUP;
		goto err_close;
	}
	for (i = 0; i < sizeof(kvmsys_required) / sizeof(kvmsys_required[0]); i++) {
		if (ioctl(s->fd, KVM_CHECK_EXTENSION, kvmsys_required[i].cap) > 0)
			continue;
		strncat(missing, " ", sizeof(missing) - strlen(missing) - 1);
		strncat(missing, kvmsys_required[i].name, sizeof(missing) - strlen(missing) - 1);
	}
	if (missing[0]) {
		fprintf(stderr, "snapbox: %s lacks required capabilities:%s\n", path, missing);
		ret = -ENOTSUP;
		goto err_close;
	}
	s->vcpu_mmap_size = ioctl(s->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (s->vcpu_mmap_size < (int)sizeof(struct kvm_run)) {
		fprintf(stderr, "snapbox: KVM_GET_VCPU_MMAP_SIZE returned %d\n", s->vcpu_mmap_size);
		ret = -ENOTSUP;
		goto err_close;
	}
	s->is_pvm = !kvmsys_host_has_hw_virt();
	return 0;

err_close:
	close(s->fd);
	s->fd = -1;
	return ret;
}

void kvmsys_fini(struct kvmsys *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	free(s->cpuid);
	s->cpuid = NULL;
}

const struct kvm_cpuid2 *kvmsys_supported_cpuid(struct kvmsys *s)
{
	unsigned nent = 64;

	if (s->cpuid)
		return s->cpuid;
	/* The kernel answers E2BIG until the buffer holds every entry. */
	for (;;) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));

		if (!c) {
			fprintf(stderr, "snapbox: out of memory for CPUID\n");
			return NULL;
		}
		c->nent = nent;
		if (ioctl(s->fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			s->cpuid = c;
			return c;
		}
		free(c);
		if (errno != E2BIG || nent >= 4096) {
			fprintf(stderr, "snapbox: KVM_GET_SUPPORTED_CPUID: %s\n", strerror(errno));
			return NULL;
		}
		nent *= 2;
	}
}

const char *kvmsys_backend_name(const struct kvmsys *s)
{
	return s->is_pvm ? "pvm" : "hardware";
}
