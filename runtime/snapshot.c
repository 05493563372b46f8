/* snapshot.c - snapshot a running sandbox: pause, capture state and memory, write the snapshot directory atomically. */
#include "kvm/mono.h"
#include "runtime/agent.h"
#include "runtime/counts.h"
#include <errno.h>
#include "kvm/log.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvm/vcpu_state.h"
#include "kvm/vm_state.h"
#include "runtime/sandbox_internal.h"
#include "runtime/snapconf.h"
#include "snapshot/memfile.h"
#include "snapshot/snapdir.h"
#include "snapshot/vmstate.h"

/* Capture into w, in the section order documented in docs/snapshot-format.md. */
struct snapshot_ctx {
	struct snapbox *sb;
	struct vmstate_writer w;
	struct vcpu_state vst;
	struct vm_state vmst;
	struct snapbox_snapshot_profile *p;
	uint64_t t;
};

/* Write opts' files, then run its pre-warm commands; 0, or -errno / -ECANCELED (logged). */
static int snapshot_prewarm(struct snapbox *sb, const struct snapbox_snapshot_opts *o)
{
	unsigned timeout = o->prewarm_timeout_ms ? o->prewarm_timeout_ms : snapbox_scaled_ms(300000);
	int ret;

	for (size_t i = 0; i < o->nfiles; i++) {
		const struct snapbox_file *f = &o->files[i];

		/* Parents made as needed, as `COPY` into an image would. */
		/* The UART moves about a byte per VM exit: the default grows with the file. */
		unsigned ft = o->file_timeout_ms ? o->file_timeout_ms :
			      snapbox_scaled_ms(30000 + (unsigned)(f->len / 65536) * 4000);

		ret = agentreq_write_file_flags(&sb->chan, f->path, f->mode, PROTO_WRITE_F_MKDIRS, f->data,
						f->len, ft);
		if (!ret)
			ret = sandbox_lazy_check(sb);
		if (ret) {
			log_msg("snapbox: snapshot: writing %s into the guest: %s\n", f->path,
				strerror(-ret));
			return ret;
		}
	}
	for (size_t i = 0; o->prewarm && o->prewarm[i]; i++) {
		const char *argv[] = { "sh", "-c", o->prewarm[i], NULL };
		struct snapbox_exec_opts e = { .argv = argv, .timeout_ms = timeout };
		struct snapbox_exec_result r;

		ret = snapbox_exec(sb, &e, &r);
		if (ret) {
			log_msg("snapbox: snapshot: pre-warm command '%s': %s\n", o->prewarm[i],
				strerror(-ret));
			return ret;
		}
		if (r.signaled || r.exit_code) {
			log_msg("snapbox: snapshot: pre-warm command '%s' %s %d%s%.*s\n", o->prewarm[i],
				r.signaled ? "was killed by signal" : "exited with status",
				r.signaled ? r.signal : r.exit_code, r.err_len ? ": " : "",
				(int)(r.err_len > 300 ? 300 : r.err_len), r.err ? (const char *)r.err : "");
			ret = -ECANCELED;
		}
		snapbox_exec_result_free(&r);
		if (ret)
			return ret;
	}
	return 0;
}

/* Encode with fn into a fresh sbuf and add it as a section. */
static int snapshot_add(struct snapshot_ctx *c, uint32_t tag, uint16_t version, struct sbuf *b)
{
	int ret = b->err ? b->err : vmstate_add(&c->w, tag, version, 0, b->data, b->len);

	if (b->err)
		log_msg("snapbox: snapshot: cannot encode a section: %s\n", strerror(-b->err));
	sbuf_fini(b);
	return ret;
}

static int snapshot_conf(struct snapshot_ctx *c)
{
	struct snapbox *sb = c->sb;
	struct snapconf *conf = calloc(1, sizeof(*conf));
	struct timespec ts;
	struct sbuf b;

	if (!conf)
		return -ENOMEM;
	clock_gettime(CLOCK_REALTIME, &ts);
	conf->mem_bytes = sb->mem.size;
	conf->vcpus = 1;
	conf->backend = sb->sys.is_pvm ? 1 : 0;
	conf->has_initrd = sb->has_initrd;
	memcpy(conf->kernel_hash, sb->kernel_hash, sizeof(conf->kernel_hash));
	memcpy(conf->initrd_hash, sb->initrd_hash, sizeof(conf->initrd_hash));
	conf->created_unix_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	snprintf(conf->cmdline, sizeof(conf->cmdline), "%s", sb->cmdline ? sb->cmdline : "");
	snprintf(conf->kernel_path, sizeof(conf->kernel_path), "%s",
		 sb->kernel_path ? sb->kernel_path : "");
	snprintf(conf->version, sizeof(conf->version), "%s", SNAPCONF_VERSION_STR);
	sbuf_init(&b);
	snapconf_encode(conf, &b);
	free(conf);
	return snapshot_add(c, VMSTATE_TAG_CONF, SNAPCONF_CONF_VERSION, &b);
}

/* vCPU then VM state: the VM clock is read after the vCPU, both paused. */
static int snapshot_state(struct snapshot_ctx *c)
{
	struct snapbox *sb = c->sb;
	struct sbuf b;
	int ret;

	ret = kvmsys_probe_msrs(&sb->sys);
	if (!ret)
		ret = vcpu_state_capture(&sb->vcpu, &c->vst);
	if (!ret)
		ret = vm_state_capture(&sb->vm, &c->vmst);
	if (ret)
		return ret;
	sbuf_init(&b);
	vcpu_state_host_encode(&c->vst, sb->sys.msrs, sb->sys.nmsrs, &b);
	ret = snapshot_add(c, VMSTATE_TAG_HOST, VCPU_STATE_HOST_VERSION, &b);
	if (ret)
		return ret;
	sbuf_init(&b);
	vcpu_state_encode(&c->vst, &b);
	ret = snapshot_add(c, VMSTATE_TAG_VCPU, VCPU_STATE_VERSION, &b);
	if (ret)
		return ret;
	sbuf_init(&b);
	vm_state_clock_encode(&c->vmst, &b);
	ret = snapshot_add(c, VMSTATE_TAG_CLCK, VM_STATE_CLOCK_VERSION, &b);
	if (ret)
		return ret;
	sbuf_init(&b);
	vm_state_irqchip_encode(&c->vmst, &b);
	ret = snapshot_add(c, VMSTATE_TAG_IRQC, VM_STATE_IRQCHIP_VERSION, &b);
	if (ret)
		return ret;
	sbuf_init(&b);
	vm_state_pit_encode(&c->vmst, &b);
	return snapshot_add(c, VMSTATE_TAG_PIT2, VM_STATE_PIT_VERSION, &b);
}

static int snapshot_devices(struct snapshot_ctx *c)
{
	struct sbuf b;

	sbuf_init(&b);
	if (devices_save(&c->sb->dev, &b) && !b.err)
		b.err = -EIO;
	return snapshot_add(c, VMSTATE_TAG_DEVS, DEVICES_STATE_VERSION, &b);
}

/* Memory file first: vmstate's MEMF section records its index hash. */
static int snapshot_memory(struct snapshot_ctx *c, struct snapdir *d,
			   const struct snapbox_snapshot_opts *o)
{
	struct memfile_write_opts mo = {
		.chunk_size = o->chunk_size,
		.threads = o->threads ? o->threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN),
		/*
		 * Only fresh anonymous RAM reads as zero where untouched: a cow
		 * view's unmapped pages hold the template's bytes, and a lazy
		 * restore's hold chunks not yet decoded (reading faults them in).
		 */
		.untouched_is_zero = c->sb->mem.untouched_zero && !c->sb->lazy,
		.no_compress = o->no_compress,
	};
	struct snapconf_memf mf = { .name = SNAPDIR_MEMORY };
	struct memfile_stats st;
	struct sbuf b;
	int fd, ret;

	if (mo.threads > MEMFILE_MAX_THREADS)
		mo.threads = MEMFILE_MAX_THREADS;
	fd = snapdir_create_file(d, SNAPDIR_MEMORY);
	if (fd < 0)
		return fd;
	ret = memfile_write(fd, c->sb->mem.host, c->sb->mem.size, &mo, &st);
	close(fd);
	if (ret)
		return ret;
	c->p->memory_compress = st.total_ns > st.write_ns ? st.total_ns - st.write_ns : 0;
	c->p->write = st.write_ns;
	c->p->bytes_in = st.bytes_in;
	c->p->bytes_out = st.bytes_out;
	c->p->zero_chunks = st.zero_chunks;
	c->p->lz4_chunks = st.lz4_chunks;
	c->p->raw_chunks = st.raw_chunks;
	mf.raw_size = st.bytes_in;
	mf.chunk_size = st.chunk_size;
	mf.chunk_count = st.chunk_count;
	mf.index_xxh64 = st.index_xxh64;
	sbuf_init(&b);
	snapconf_memf_encode(&mf, &b);
	return snapshot_add(c, VMSTATE_TAG_MEMF, SNAPCONF_MEMF_VERSION, &b);
}

static int snapshot_vmstate(struct snapshot_ctx *c, struct snapdir *d)
{
	uint64_t t = mono_now_ns();
	int fd = snapdir_create_file(d, SNAPDIR_VMSTATE), ret;

	if (fd < 0)
		return fd;
	ret = vmstate_write_fd(&c->w, fd);
	close(fd);
	c->p->write += mono_now_ns() - t;
	return ret;
}

/* How long a snapshot lets a busy agent channel drain before it refuses. */
#define SNAPSHOT_DRAIN_MS 1000u

int snapbox_snapshot(struct snapbox *sb, const char *dir, const struct snapbox_snapshot_opts *opts,
		     struct snapbox_snapshot_profile *prof)
{
	static const struct snapbox_snapshot_opts defaults;
	const struct snapbox_snapshot_opts *o = opts ? opts : &defaults;
	struct snapbox_snapshot_profile pl;
	struct snapshot_ctx c = { .sb = sb, .p = &pl };
	struct counts_mark cm;
	struct snapdir d;
	uint64_t t0;
	int ret;

	memset(&pl, 0, sizeof(pl));
	t0 = mono_now_ns();
	/* Before the pause, and before anything is written: a failed pre-warm costs no snapshot. */
	ret = snapshot_prewarm(sb, o);
	pl.prewarm = mono_now_ns() - t0;
	if (ret) {
		if (prof)
			*prof = pl;
		return ret;
	}
	counts_start(&cm);
	vmstate_writer_init(&c.w);
	vcpu_state_init(&c.vst);
	t0 = c.t = mono_now_ns();
	/* Drain: a channel caught mid-frame or mid-connection (a guest closing its
	 * boot connection, a reset on its way) is let run a little and paused
	 * again, for up to SNAPSHOT_DRAIN_MS scaled; only then is it refused. */
	uint64_t drain_end = t0 + (uint64_t)snapbox_scaled_ms(SNAPSHOT_DRAIN_MS) * 1000000u;
	for (;;) {
		ret = vcpu_pause(&sb->vcpu, 2000);
		if (ret) {
			log_msg("snapbox: snapshot: cannot pause the guest: %s\n",
				ret == -ESRCH ? snapbox_stop_reason(sb) : strerror(-ret));
			ret = ret == -ESRCH ? -ESHUTDOWN : ret;
			pl.pause = mono_lap(&c.t);
			goto out;
		}
		/* After the pause nothing can start arriving; a half-parsed frame or an
		 * open connection now would be lost on restore. */
		if (chan_is_idle(&sb->chan))
			break;
		if (mono_now_ns() >= drain_end) {
			log_msg("snapbox: snapshot: the agent channel stayed busy (a frame or a "
				"connection in flight) for %u ms\n", snapbox_scaled_ms(SNAPSHOT_DRAIN_MS));
			ret = -EBUSY;
			pl.pause = mono_lap(&c.t);
			goto out_resume;
		}
		vcpu_resume(&sb->vcpu);
		usleep(500);
	}
	pl.pause = mono_lap(&c.t);
	ret = snapdir_begin(&d, dir, o->no_sync);
	if (ret)
		goto out_resume;
	ret = snapshot_conf(&c);
	if (!ret)
		ret = snapshot_state(&c);
	pl.vcpu_capture = mono_lap(&c.t);
	if (!ret)
		ret = snapshot_devices(&c);
	pl.device_capture = mono_lap(&c.t);
	if (!ret)
		ret = snapshot_memory(&c, &d, o);
	if (!ret)
		ret = snapshot_vmstate(&c, &d);
	mono_lap(&c.t);
	if (ret) {
		snapdir_abort(&d);
		goto out_resume;
	}
	ret = snapdir_finish(&d);
	pl.fsync = mono_lap(&c.t);
out_resume:
	if (!o->leave_paused)
		vcpu_resume(&sb->vcpu);
out:
	pl.total = mono_now_ns() - t0;
	counts_finish(&cm, &pl.counts);
	if (prof)
		*prof = pl;
	vcpu_state_fini(&c.vst);
	vmstate_writer_fini(&c.w);
	return ret;
}
