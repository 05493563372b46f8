/* kvmsys.c - opens /dev/kvm, checks the API and capabilities, caches host CPUID and the vCPU MSR set. */
#include "kvm/kvmcall.h"
#include "kvm/kvmsys.h"
#include "kvm/log.h"

#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* -1 until /proc/cpuinfo was read once; then 1 on KVM-PVM, 0 on hardware KVM. */
static atomic_int kvmsys_pvm = -1;

/*
 * Hardware virtualization flags in /proc/cpuinfo, or none (KVM-PVM): read
 * once per process and kept. 0 and *pvm, or -errno when it cannot be read
 * (never a guess: a wrong backend refuses every restore as incompatible).
 */
static int kvmsys_host_pvm(bool *pvm)
{
	int v = atomic_load(&kvmsys_pvm);
	char line[4096];
	bool found = false;
	FILE *f;

	if (v >= 0) {
		*pvm = v;
		return 0;
	}
	f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		found = strstr(line, " vmx") || strstr(line, " svm");
		break;
	}
	fclose(f);
	atomic_store(&kvmsys_pvm, !found);
	*pvm = !found;
	return 0;
}

bool kvmsys_host_is_pvm(void)
{
	bool pvm = false;   /* cannot tell: say hardware, never warn wrongly */

	kvmsys_host_pvm(&pvm);
	return pvm;
}

bool kvmsys_host_emulated(void)
{
	const char *e = getenv("SNAPBOX_EMULATED");
	unsigned a, b, c, d;
	char sig[13];

	if (e && *e)
		return strcmp(e, "0") != 0;
	/* CPUID.1:ECX bit 31 says a hypervisor is there; its leaf 0x40000000
	 * names it, and QEMU's TCG (an emulated CPU) calls itself TCGTCGTCGTCG. */
	__cpuid(1, a, b, c, d);
	if (!(c & (1u << 31)))
		return false;
	__cpuid(0x40000000, a, b, c, d);
	memcpy(sig, &b, 4);
	memcpy(sig + 4, &c, 4);
	memcpy(sig + 8, &d, 4);
	sig[12] = '\0';
	return strcmp(sig, "TCGTCGTCGTCG") == 0;
}

/* What /dev/kvm answered this process: asked by the first kvmsys_init, kept for good. */
static struct {
	pthread_mutex_t lock;
	bool done;
	int vcpu_mmap_size;
	uint32_t xsave_size;
	bool tsc_control;
	struct kvm_cpuid2 *cpuid;
} kvmsys_host = { .lock = PTHREAD_MUTEX_INITIALIZER };

int kvmsys_init(struct kvmsys *s, const char *path)
{
	char missing[512] = "";
	size_t i;
	int ret, ver;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->shared = !path;
	if (!path)
		path = "/dev/kvm";
	s->fd = open(path, O_RDWR | O_CLOEXEC);
	if (s->fd < 0) {
		ret = -errno;
		if (ret == -ENOENT)
			log_msg("snapbox: %s does not exist: is KVM enabled on this host?\n", path);
		else if (ret == -EACCES || ret == -EPERM)
			log_msg("snapbox: no permission to open %s (add yourself to the kvm group)\n", path);
		else
			log_msg("snapbox: cannot open %s: %s\n", path, strerror(-ret));
		return ret;
	}
	ret = kvmsys_host_pvm(&s->is_pvm);
	if (ret) {
		log_msg("snapbox: cannot read /proc/cpuinfo to tell KVM's kind: %s\n", strerror(-ret));
		goto err_close;
	}
	if (s->shared) {
		pthread_mutex_lock(&kvmsys_host.lock);
		if (kvmsys_host.done) {
			s->vcpu_mmap_size = kvmsys_host.vcpu_mmap_size;
			s->xsave_size = kvmsys_host.xsave_size;
			s->tsc_control = kvmsys_host.tsc_control;
			pthread_mutex_unlock(&kvmsys_host.lock);
			return 0;
		}
		pthread_mutex_unlock(&kvmsys_host.lock);
	}
	ver = kvmcall(s->fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		log_msg("snapbox: %s has KVM API version %d, need %d\n", path, ver, KVM_API_VERSION);
		ret = -ENOTSUP;
		goto err_close;
	}
	for (i = 0; i < sizeof(kvmsys_required) / sizeof(kvmsys_required[0]); i++) {
		if (kvmcall(s->fd, KVM_CHECK_EXTENSION, kvmsys_required[i].cap) > 0)
			continue;
		strncat(missing, " ", sizeof(missing) - strlen(missing) - 1);
		strncat(missing, kvmsys_required[i].name, sizeof(missing) - strlen(missing) - 1);
	}
	if (missing[0]) {
		log_msg("snapbox: %s lacks required capabilities:%s\n", path, missing);
		ret = -ENOTSUP;
		goto err_close;
	}
	s->vcpu_mmap_size = kvmcall(s->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (s->vcpu_mmap_size < (int)sizeof(struct kvm_run)) {
		log_msg("snapbox: KVM_GET_VCPU_MMAP_SIZE returned %d\n", s->vcpu_mmap_size);
		ret = -ENOTSUP;
		goto err_close;
	}
	/* The XSAVE2 size follows the process's permitted xfeatures, the same for
	 * the system fd and every VM fd of this process, so it is asked once. */
	ret = kvmcall(s->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	s->xsave_size = ret > 0 ? (uint32_t)ret : 0;
	s->tsc_control = kvmcall(s->fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL) > 0;
	if (s->shared) {
		pthread_mutex_lock(&kvmsys_host.lock);
		kvmsys_host.vcpu_mmap_size = s->vcpu_mmap_size;
		kvmsys_host.xsave_size = s->xsave_size;
		kvmsys_host.tsc_control = s->tsc_control;
		kvmsys_host.done = true;
		pthread_mutex_unlock(&kvmsys_host.lock);
	}
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
	if (!s->shared)
		free(s->cpuid);   /* a shared one is the process's */
	s->cpuid = NULL;
	s->msrs = NULL; /* the process-wide MSR list outlives every handle */
	s->nmsrs = 0;
}

const struct kvm_cpuid2 *kvmsys_supported_cpuid(struct kvmsys *s)
{
	unsigned nent = 64;

	if (s->cpuid)
		return s->cpuid;
	if (s->shared) {
		pthread_mutex_lock(&kvmsys_host.lock);
		s->cpuid = kvmsys_host.cpuid;
		pthread_mutex_unlock(&kvmsys_host.lock);
		if (s->cpuid)
			return s->cpuid;
	}
	/* The kernel answers E2BIG until the buffer holds every entry. */
	for (;;) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));

		if (!c) {
			log_msg("snapbox: out of memory for CPUID\n");
			return NULL;
		}
		c->nent = nent;
		if (kvmcall(s->fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			if (s->shared) {
				/* Two first callers may race: keep one, free the other. */
				pthread_mutex_lock(&kvmsys_host.lock);
				if (kvmsys_host.cpuid)
					free(c);
				else
					kvmsys_host.cpuid = c;
				c = kvmsys_host.cpuid;
				pthread_mutex_unlock(&kvmsys_host.lock);
			}
			s->cpuid = c;
			return c;
		}
		free(c);
		if (errno != E2BIG || nent >= 4096) {
			log_msg("snapbox: KVM_GET_SUPPORTED_CPUID: %s\n", strerror(errno));
			return NULL;
		}
		nent *= 2;
	}
}

const char *kvmsys_backend_name(const struct kvmsys *s)
{
	return s->is_pvm ? "pvm" : "hardware";
}

/* ---- the vCPU MSR set ---------------------------------------------------- */

#define KVMSYS_MSR_MAX 4096u   /* no KVM lists more; bounds every buffer below */
#define KVMSYS_HV_MSR_FIRST 0x40000000u   /* Hyper-V synthetic MSRs (TLFS), crash MSRs included */
#define KVMSYS_HV_MSR_LAST  0x400001ffu

/*
 * MSRs probed even when KVM does not list them. The MTRRs are guest-visible
 * state that KVM emulates but leaves out of KVM_GET_MSR_INDEX_LIST (the boot
 * code enables MTRRs through 0x2ff); the clock MSRs are re-asserted so a
 * kernel that forgets to list them still gets them probed.
 */
static const uint32_t kvmsys_msr_extra[] = {
	0x00000010,                                     /* IA32_TSC */
	0x000006e0,                                     /* IA32_TSC_DEADLINE */
	0x4b564d00, 0x4b564d01,                         /* kvmclock WALL_CLOCK_NEW, SYSTEM_TIME_NEW */
	0x000002ff,                                     /* MTRRdefType */
	0x00000200, 0x00000201, 0x00000202, 0x00000203, /* variable MTRRs: base/mask x 8 */
	0x00000204, 0x00000205, 0x00000206, 0x00000207,
	0x00000208, 0x00000209, 0x0000020a, 0x0000020b,
	0x0000020c, 0x0000020d, 0x0000020e, 0x0000020f,
	0x00000250, 0x00000258, 0x00000259,             /* fixed MTRRs */
	0x00000268, 0x00000269, 0x0000026a, 0x0000026b,
	0x0000026c, 0x0000026d, 0x0000026e, 0x0000026f,
};

/* The process-wide answer: the host does not change under a running process. */
static struct {
	pthread_mutex_t lock;
	bool done;
	uint32_t *msrs;
	uint32_t nmsrs;
	uint32_t tsc_khz;
} kvmsys_msr_cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int kvmsys_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Append one KVM index list (KVM_GET_MSR_INDEX_LIST or the feature list) to out. */
static int kvmsys_get_index_list(int fd, unsigned long req, const char *what,
				 uint32_t *out, uint32_t *n)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	struct kvm_msr_list *l;
	uint32_t want;

	/* nmsrs = 0 makes KVM answer E2BIG with the count it needs. */
	if (kvmcall(fd, req, &probe) < 0 && errno != E2BIG) {
		int err = errno;

		if (err == EINVAL || err == ENOTTY)
			return 0; /* the feature list is optional: older kernels lack it */
		log_msg("snapbox: %s: %s\n", what, strerror(err));
		return -err;
	}
	want = probe.nmsrs;
	if (want > KVMSYS_MSR_MAX - *n) {
		log_msg("snapbox: %s lists %u MSRs, more than %u\n", what, want, KVMSYS_MSR_MAX);
		return -E2BIG;
	}
	l = calloc(1, sizeof(*l) + (size_t)want * sizeof(l->indices[0]));
	if (!l)
		return -ENOMEM;
	l->nmsrs = want;
	if (kvmcall(fd, req, l) < 0) {
		int ret = -errno;

		log_msg("snapbox: %s: %s\n", what, strerror(-ret));
		free(l);
		return ret;
	}
	memcpy(out + *n, l->indices, (size_t)l->nmsrs * sizeof(uint32_t));
	*n += l->nmsrs;
	free(l);
	return 0;
}

/*
 * Keep the entries of ents[0, n) that `req` (KVM_GET_MSRS or KVM_SET_MSRS)
 * accepts on the vCPU fd, compacted in place, with the data a GET returned.
 * KVM processes a batch in order and returns how many entries succeeded, so a
 * short count names the failing entry exactly: drop it and go on after it.
 * Only a batch that fails as a whole (-1) is bisected. buf has room for
 * KVMSYS_MSR_BATCH entries. Returns the number kept.
 */
static uint32_t kvmsys_msr_filter(int vcpu, unsigned long req, struct kvm_msr_entry *ents,
				  uint32_t n, struct kvm_msrs *buf)
{
	const size_t esz = sizeof(*ents);
	uint32_t in = 0, kept = 0;

	while (in < n) {
		uint32_t len = n - in < KVMSYS_MSR_BATCH ? n - in : KVMSYS_MSR_BATCH;
		uint32_t h, a, b;
		int r;

		buf->nmsrs = len;
		memcpy(buf->entries, ents + in, len * esz);
		r = kvmcall(vcpu, req, buf);
		if (r >= 0) {
			/* [0, r) succeeded; entry r, if any, is the one KVM refused. */
			memcpy(ents + kept, buf->entries, (size_t)r * esz);
			kept += (uint32_t)r;
			in += (uint32_t)r + ((uint32_t)r < len);
			continue;
		}
		if (len == 1) {
			in++;
			continue;
		}
		h = len / 2;
		a = kvmsys_msr_filter(vcpu, req, ents + in, h, buf);
		b = kvmsys_msr_filter(vcpu, req, ents + in + h, len - h, buf);
		memmove(ents + kept, ents + in, a * esz);
		memmove(ents + kept + a, ents + in + h, b * esz);
		kept += a + b;
		in += len;
	}
	return kept;
}

/* A VM with an in-kernel irqchip and one vCPU with the host's CPUID, never run. */
static int kvmsys_scratch_vcpu(struct kvmsys *s, int *vm_out, int *vcpu_out)
{
	const struct kvm_cpuid2 *cpuid = kvmsys_supported_cpuid(s);
	int vm, vcpu, ret;

	if (!cpuid)
		return -ENODEV;
	vm = kvmcall(s->fd, KVM_CREATE_VM, 0);
	if (vm < 0) {
		ret = -errno;
		log_msg("snapbox: MSR probe: KVM_CREATE_VM: %s\n", strerror(-ret));
		return ret;
	}
	/* The LAPIC-backed MSRs (TSC_DEADLINE) exist only with an in-kernel irqchip. */
	if (kvmcall(vm, KVM_CREATE_IRQCHIP, 0) < 0) {
		ret = -errno;
		log_msg("snapbox: MSR probe: KVM_CREATE_IRQCHIP: %s\n", strerror(-ret));
		goto err_vm;
	}
	vcpu = kvmcall(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) {
		ret = -errno;
		log_msg("snapbox: MSR probe: KVM_CREATE_VCPU: %s\n", strerror(-ret));
		goto err_vm;
	}
	/* CPUID first: KVM accepts some MSRs only when the guest CPUID has the feature. */
	if (kvmcall(vcpu, KVM_SET_CPUID2, cpuid) < 0) {
		ret = -errno;
		log_msg("snapbox: MSR probe: KVM_SET_CPUID2: %s\n", strerror(-ret));
		goto err_vcpu;
	}
	*vm_out = vm;
	*vcpu_out = vcpu;
	return 0;

err_vcpu:
	close(vcpu);
err_vm:
	close(vm);
	return ret;
}

/* Gather, probe and sort; fills the cache. Called with the cache lock held. */
static int kvmsys_msr_probe_locked(struct kvmsys *s)
{
	const size_t nextra = sizeof(kvmsys_msr_extra) / sizeof(kvmsys_msr_extra[0]);
	struct kvm_msr_entry *ents = NULL;
	struct kvm_msrs *buf = NULL;
	uint32_t *idx, n = 0, i, k;
	int vm = -1, vcpu = -1, ret, khz;

	idx = malloc((KVMSYS_MSR_MAX + nextra) * sizeof(*idx));
	ents = calloc(KVMSYS_MSR_MAX + nextra, sizeof(*ents));
	buf = calloc(1, sizeof(*buf) + KVMSYS_MSR_BATCH * sizeof(buf->entries[0]));
	if (!idx || !ents || !buf) {
		log_msg("snapbox: MSR probe: out of memory\n");
		ret = -ENOMEM;
		goto out;
	}
	ret = kvmsys_get_index_list(s->fd, KVM_GET_MSR_INDEX_LIST, "KVM_GET_MSR_INDEX_LIST", idx, &n);
	if (ret)
		goto out;
	/*
	 * The feature list names MSRs whose *system-fd* values describe the host
	 * (ARCH_CAPABILITIES, PERF_CAPABILITIES, UCODE_REV, ...). Those a vCPU
	 * accepts hold the values the guest is shown, which are vCPU state, so
	 * they join the probe; those a vCPU refuses drop out below.
	 */
	ret = kvmsys_get_index_list(s->fd, KVM_GET_MSR_FEATURE_INDEX_LIST,
				    "KVM_GET_MSR_FEATURE_INDEX_LIST", idx, &n);
	if (ret)
		goto out;
	memcpy(idx + n, kvmsys_msr_extra, sizeof(kvmsys_msr_extra));
	n += (uint32_t)nextra;
	qsort(idx, n, sizeof(*idx), kvmsys_cmp_u32);
	/*
	 * Hyper-V's synthetic MSRs leave the set: snapbox never offers the guest
	 * Hyper-V (no 0x40000000 "Microsoft Hv" leaves), so they are no guest
	 * state, and one of them (HV_X64_MSR_TIME_REF_COUNT, 0x40000020) is a
	 * clock that counts on whatever a restore writes.
	 */
	for (i = 0, k = 0; i < n; i++)
		if ((k == 0 || ents[k - 1].index != idx[i]) &&
		    (idx[i] < KVMSYS_HV_MSR_FIRST || idx[i] > KVMSYS_HV_MSR_LAST))
			ents[k++].index = idx[i];
	n = k;

	ret = kvmsys_scratch_vcpu(s, &vm, &vcpu);
	if (ret)
		goto out;
	khz = kvmcall(vcpu, KVM_GET_TSC_KHZ, 0);
	/* Reads back, then takes its own value back: both directions of a restore. */
	n = kvmsys_msr_filter(vcpu, KVM_GET_MSRS, ents, n, buf);
	n = kvmsys_msr_filter(vcpu, KVM_SET_MSRS, ents, n, buf);
	if (n == 0) {
		log_msg("snapbox: MSR probe: the scratch vCPU accepted no MSR at all\n");
		ret = -ENODEV;
		goto out;
	}
	for (i = 0; i < n; i++)
		idx[i] = ents[i].index; /* still sorted: filtering keeps the order */
	kvmsys_msr_cache.msrs = realloc(idx, n * sizeof(*idx));
	if (!kvmsys_msr_cache.msrs)
		kvmsys_msr_cache.msrs = idx;
	idx = NULL;
	kvmsys_msr_cache.nmsrs = n;
	kvmsys_msr_cache.tsc_khz = khz > 0 ? (uint32_t)khz : 0;
	kvmsys_msr_cache.done = true;
out:
	/*
	 * Closed here, synchronously, although destroying a VM with an in-kernel
	 * irqchip takes ~15 ms on KVM-PVM: once per process, and a caller must
	 * never see file descriptors that close behind its back.
	 */
	if (vcpu >= 0)
		close(vcpu);
	if (vm >= 0)
		close(vm);
	free(buf);
	free(ents);
	free(idx);
	return ret;
}

int kvmsys_probe_msrs(struct kvmsys *s)
{
	int ret = 0;

	if (s->msrs)
		return 0;
	pthread_mutex_lock(&kvmsys_msr_cache.lock);
	if (!kvmsys_msr_cache.done)
		ret = kvmsys_msr_probe_locked(s);
	if (!ret) {
		s->msrs = kvmsys_msr_cache.msrs;
		s->nmsrs = kvmsys_msr_cache.nmsrs;
		s->tsc_khz = kvmsys_msr_cache.tsc_khz;
	}
	pthread_mutex_unlock(&kvmsys_msr_cache.lock);
	return ret;
}
