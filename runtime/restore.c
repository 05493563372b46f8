/* restore.c - rebuild a sandbox from a snapshot directory, timing every phase into RestoreProfile. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvm/vcpu_state.h"
#include "kvm/vm_state.h"
#include "runtime/compat.h"
#include "runtime/sandbox_internal.h"
#include "runtime/snapopen.h"
#include "runtime/template.h"

/* Everything decoded from the files before KVM is touched. */
struct restore_ctx {
	struct snapopen so;
	struct vcpu_state_host host;
	struct vcpu_state vst;
	struct vm_state vmst;
	struct sbuf_reader devs;
	struct snapbox_restore_profile *p;
	uint64_t t;
};

static uint64_t restore_lap(struct restore_ctx *c)
{
	uint64_t now = chan_now_ns(), d = now - c->t;

	c->t = now;
	return d;
}

static int restore_decode(struct restore_ctx *c)
{
	struct sbuf_reader r;
	int ret;

	ret = snapopen_section(&c->so, VMSTATE_TAG_HOST, &r);
	if (!ret)
		ret = vcpu_state_host_decode(&r, &c->host);
	if (!ret)
		ret = snapopen_section(&c->so, VMSTATE_TAG_VCPU, &r);
	if (!ret)
		ret = vcpu_state_decode(&r, &c->vst);
	if (!ret)
		ret = snapopen_section(&c->so, VMSTATE_TAG_CLCK, &r);
	if (!ret)
		ret = vm_state_clock_decode(&r, &c->vmst);
	if (!ret)
		ret = snapopen_section(&c->so, VMSTATE_TAG_IRQC, &r);
	if (!ret)
		ret = vm_state_irqchip_decode(&r, &c->vmst);
	if (!ret)
		ret = snapopen_section(&c->so, VMSTATE_TAG_PIT2, &r);
	if (!ret)
		ret = vm_state_pit_decode(&r, &c->vmst);
	if (!ret)
		ret = snapopen_section(&c->so, VMSTATE_TAG_DEVS, &c->devs);
	return ret;
}

/* Guest RAM: eager decodes into fresh memory, cow maps the shared template. */
static int restore_memory_map(struct snapbox *sb, struct restore_ctx *c,
			      const struct snapbox_restore_opts *o, unsigned threads)
{
	bool created;
	int fd, ret;

	if (o->mode == SNAPBOX_RESTORE_EAGER)
		return gmem_init(&sb->mem, c->so.conf.mem_bytes);
	fd = template_get(&c->so.mem, o->cache_dir, threads, &created);
	if (fd < 0)
		return fd;
	ret = gmem_init_cow(&sb->mem, fd, c->so.conf.mem_bytes);
	close(fd);
	return ret;
}

static int restore_build(struct snapbox *sb, struct restore_ctx *c,
			 const struct snapbox_restore_opts *o, unsigned threads)
{
	struct snapbox_restore_profile *p = c->p;
	int ret;

	ret = kvmsys_init(&sb->sys, NULL);
	p->kvm_fd_open = restore_lap(c);
	if (ret)
		return -ENODEV;
	sb->have_sys = true;
	/* Compatibility before the VM exists: refusing must cost nothing. */
	ret = compat_check(&sb->sys, &c->so.conf, &c->host);
	p->snapshot_open += restore_lap(c);
	if (ret)
		return ret;
	ret = vm_init(&sb->vm, &sb->sys);
	p->kvm_create_vm = restore_lap(c);
	if (ret)
		return -ENODEV;
	sb->have_vm = true;
	ret = vm_arch_setup(&sb->vm);
	p->vm_arch_setup = restore_lap(c);
	if (ret)
		return -ENODEV;
	/* cow's template build (first restore only) is counted here: it is the mapping's cost. */
	ret = restore_memory_map(sb, c, o, threads);
	p->guest_memory_mmap = restore_lap(c);
	if (ret)
		return ret;
	sb->have_mem = true;
	ret = vm_set_memory(&sb->vm, 0, 0, sb->mem.size, sb->mem.host);
	p->kvm_set_user_memory_region = restore_lap(c);
	if (ret)
		return -ENODEV;
	ret = vcpu_init(&sb->vcpu, &sb->vm, 0);
	p->vcpu_creation = restore_lap(c);
	if (ret)
		return -ENODEV;
	sb->have_vcpu = true;
	ret = vcpu_state_restore_cpuid(&sb->vcpu, &c->vst);
	p->cpuid_config = restore_lap(c);
	if (ret)
		return ret;
	if (o->mode == SNAPBOX_RESTORE_EAGER) {
		memfile_set_verify(&c->so.mem, !o->no_verify);
		ret = memfile_read_all(&c->so.mem, sb->mem.host, sb->mem.size, threads);
	}
	p->memory_state_write = restore_lap(c);
	if (ret)
		return ret;
	/* VM state before the vCPU's: the clock and irqchips are what its MSRs and LAPIC refer to. */
	ret = sandbox_setup_devices(sb);
	if (!ret)
		ret = vm_state_restore(&sb->vm, &c->vmst);
	if (!ret)
		ret = devices_load(&sb->dev, &c->devs);
	p->device_state_restore = restore_lap(c);
	if (ret)
		return ret;
	ret = vcpu_state_restore_regs(&sb->vcpu, &c->vst);
	p->vcpu_state_restore = restore_lap(c);
	return ret;
}

/* The guest was past READY when it was captured; the fresh channel must know it. */
static void restore_mark_ready(struct snapbox *sb)
{
	pthread_mutex_lock(&sb->chan.lock);
	sb->chan.ready = true;
	sb->chan.ready_ns = chan_now_ns();
	pthread_mutex_unlock(&sb->chan.lock);
}

int snapbox_resume(struct snapbox *sb)
{
	if (vcpu_get_state(&sb->vcpu) != VCPU_CREATED)
		return -EINVAL;
	return sandbox_start(sb);
}

int snapbox_restore(const char *dir, const struct snapbox_restore_opts *opts, struct snapbox **out,
		    struct snapbox_restore_profile *prof)
{
	static const struct snapbox_restore_opts defaults = { .console_fd = -1 };
	const struct snapbox_restore_opts *o = opts ? opts : &defaults;
	unsigned threads = o->threads ? o->threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	struct snapbox_restore_profile pl;
	struct restore_ctx c;
	struct snapbox *sb;
	uint64_t t0;
	int ret;

	*out = NULL;
	memset(&pl, 0, sizeof(pl));
	memset(&c, 0, sizeof(c));
	c.p = &pl;
	vcpu_state_init(&c.vst);
	if (threads > MEMFILE_MAX_THREADS)
		threads = MEMFILE_MAX_THREADS;
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return -ENOMEM;
	sb->console_fd = o->console_fd;
	t0 = c.t = chan_now_ns();
	ret = snapopen_open(&c.so, dir);
	if (ret) {
		free(sb);
		vcpu_state_fini(&c.vst);
		return ret;
	}
	ret = restore_decode(&c);
	pl.snapshot_open = restore_lap(&c);
	if (!ret)
		ret = restore_build(sb, &c, o, threads);
	pl.total_without_resume = chan_now_ns() - t0;
	if (ret)
		goto err;
	restore_mark_ready(sb);
	if (o->resume) {
		uint64_t t = chan_now_ns();

		ret = sandbox_start(sb);
		if (ret)
			goto err;
		/* Wait (briefly) for the thread to enter KVM_RUN, to time it. */
		while (!atomic_load(&sb->vcpu.first_run_ns) && chan_now_ns() - t < 1000000000ull)
			sched_yield();
		pl.resume_kvm_run = atomic_load(&sb->vcpu.first_run_ns) - t;
		pl.total_with_resume = chan_now_ns() - t0;
		if (o->ping) {
			ret = snapbox_ping(sb, o->ping_timeout_ms ? o->ping_timeout_ms : 5000);
			pl.restore_to_ready = chan_now_ns() - t0;
			if (ret) {
				fprintf(stderr, "snapbox: restored guest did not answer PING: %s\n",
					ret == -ESHUTDOWN ? snapbox_stop_reason(sb) : strerror(-ret));
				goto err;
			}
		}
	}
	if (prof)
		*prof = pl;
	*out = sb;
	goto out;
err:
	sandbox_free(sb);
out:
	vcpu_state_host_fini(&c.host);
	vcpu_state_fini(&c.vst);
	snapopen_close(&c.so);
	return ret;
}
