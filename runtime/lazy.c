/* lazy.c - userfaultfd-driven, chunk-at-a-time decoding of guest memory for lazy restores. */
#include "runtime/lazy.h"
#include "kvm/log.h"

#include "kvm/confine.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Wake faulting threads on a range that is already populated (a racing second fault). */
static void lazy_wake(struct lazy *l, uint64_t off, uint64_t len)
{
	struct uffdio_range r = { .start = (uint64_t)(uintptr_t)(l->base + off), .len = len };

	ioctl(l->uffd, UFFDIO_WAKE, &r);
}

/* Populate chunk idx. A failure leaves zeros so the guest is never stuck forever. */
static void lazy_fill(struct lazy *l, uint32_t idx)
{
	uint64_t off = (uint64_t)idx * l->mem.chunk_size;
	uint32_t len = memfile_chunk_len(l->mem.raw_size, l->mem.chunk_size, idx);
	int rc;

	if (l->loaded[idx]) {
		lazy_wake(l, off, len);
		return;
	}
	if (l->mem.chunks[idx].kind == MEMFILE_KIND_ZERO) {
		struct uffdio_zeropage z = {
			.range = { .start = (uint64_t)(uintptr_t)(l->base + off), .len = len },
		};

		rc = ioctl(l->uffd, UFFDIO_ZEROPAGE, &z);
	} else {
		struct uffdio_copy c = {
			.dst = (uint64_t)(uintptr_t)(l->base + off),
			.src = (uint64_t)(uintptr_t)l->buf,
			.len = len,
		};

		if (memfile_read_chunk(&l->mem, idx, l->buf, l->mem.chunk_size, l->scratch)) {
			/* The error is logged; zeros beat a guest hung on a fault. */
			memset(l->buf, 0, len);
			atomic_fetch_add(&l->errors, 1);
		}
		rc = ioctl(l->uffd, UFFDIO_COPY, &c);
	}
	/* EEXIST: some page was populated meanwhile; the rest is, too, after a wake. */
	if (rc < 0 && errno == EEXIST)
		lazy_wake(l, off, len);
	else if (rc < 0)
		atomic_fetch_add(&l->errors, 1);
	l->loaded[idx] = 1;
	atomic_fetch_add(&l->faults, 1);
}

static void *lazy_thread(void *arg)
{
	struct lazy *l = arg;
	struct pollfd pf[2] = { { .fd = l->uffd, .events = POLLIN }, { .fd = l->stop_fd, .events = POLLIN } };

	/* A failed confinement is logged; the handler still serves faults so the guest is not stuck. */
	confine_thread(CONFINE_UFFD);
	for (;;) {
		struct uffd_msg msg;
		uint64_t off;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		if (read(l->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		off = msg.arg.pagefault.address - (uint64_t)(uintptr_t)l->base;
		/* The kernel only reports addresses inside the registered range; check anyway. */
		if (off >= l->size)
			continue;
		lazy_fill(l, (uint32_t)(off / l->mem.chunk_size));
	}
	return NULL;
}

static int lazy_copy_reader(struct lazy *l, const struct memfile_reader *mem)
{
	size_t n = (size_t)mem->chunk_count * sizeof(mem->chunks[0]);

	l->mem = *mem;
	l->mem.chunks = malloc(n ? n : 1);
	if (!l->mem.chunks)
		return -ENOMEM;
	memcpy(l->mem.chunks, mem->chunks, n);
	l->mem.fd = fcntl(mem->fd, F_DUPFD_CLOEXEC, 0);
	if (l->mem.fd < 0) {
		free(l->mem.chunks);
		return -errno;
	}
	return 0;
}

int lazy_start(struct lazy *l, uint8_t *base, uint64_t size, const struct memfile_reader *mem)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (uint64_t)(uintptr_t)base, .len = size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int ret;

	memset(l, 0, sizeof(*l));
	l->uffd = l->stop_fd = -1;
	l->base = base;
	l->size = size;
	if (mem->raw_size != size) {
		log_msg("snapbox: lazy restore: memory file holds %llu bytes, RAM is %llu\n",
			(unsigned long long)mem->raw_size, (unsigned long long)size);
		return -EINVAL;
	}
	ret = lazy_copy_reader(l, mem);
	if (ret)
		return ret;
	l->loaded = calloc(mem->chunk_count ? mem->chunk_count : 1, 1);
	l->buf = malloc(mem->chunk_size);
	l->scratch = malloc(memfile_scratch_size(mem));
	if (!l->loaded || !l->buf || !l->scratch) {
		ret = -ENOMEM;
		goto err;
	}
	/* Whole chunks are placed with one UFFDIO_COPY: no huge pages under the range. */
	(void)madvise(base, size, MADV_NOHUGEPAGE);
	l->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (l->uffd < 0) {
		ret = -errno;
		log_msg("snapbox: lazy restore needs userfaultfd: %s\n", strerror(-ret));
		goto err;
	}
	if (ioctl(l->uffd, UFFDIO_API, &api) < 0 || ioctl(l->uffd, UFFDIO_REGISTER, &reg) < 0) {
		ret = -errno;
		log_msg("snapbox: lazy restore: userfaultfd setup: %s\n", strerror(-ret));
		goto err;
	}
	l->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (l->stop_fd < 0) {
		ret = -errno;
		goto err;
	}
	ret = -pthread_create(&l->thread, NULL, lazy_thread, l);
	if (ret)
		goto err;
	return 0;
err:
	if (l->stop_fd >= 0)
		close(l->stop_fd);
	if (l->uffd >= 0)
		close(l->uffd);
	free(l->scratch);
	free(l->buf);
	free(l->loaded);
	close(l->mem.fd);
	free(l->mem.chunks);
	memset(l, 0, sizeof(*l));
	l->uffd = l->stop_fd = -1;
	return ret;
}

void lazy_stop(struct lazy *l)
{
	uint64_t one = 1;

	if (l->uffd < 0)
		return;
	if (write(l->stop_fd, &one, sizeof(one)) != sizeof(one))
		log_msg("snapbox: lazy restore: cannot stop the fault handler\n");
	pthread_join(l->thread, NULL);
	/* Closing the uffd unregisters the range; later touches fault in zero pages normally. */
	close(l->uffd);
	close(l->stop_fd);
	close(l->mem.fd);
	free(l->mem.chunks);
	free(l->scratch);
	free(l->buf);
	free(l->loaded);
	memset(l, 0, sizeof(*l));
	l->uffd = l->stop_fd = -1;
}
