/* snapbox.h - the public library API: boot a sandbox VM, talk to its guest, read its profiles, destroy it. */
#ifndef SNAPBOX_H
#define SNAPBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Threads. Calls on different sandboxes (and pools) may run concurrently from
 * any threads. On one sandbox, the requests (snapbox_request, snapbox_ping,
 * snapbox_exec, snapbox_write_file, snapbox_read_file, snapbox_probe_fill)
 * may be made from several threads at once: the library serves them one
 * after another, each within its own timeout (waiting included), and every
 * reply reaches the call that asked for it. The other calls on one sandbox
 * (snapbox_snapshot, snapbox_resume, snapbox_destroy) must not overlap with
 * any other call on that sandbox; snapbox_destroy comes last.
 */

/*
 * Where the library's error and warning lines go: each call of fn gets one
 * whole line ("snapbox: ...", ending in a newline), possibly from any of the
 * library's threads. By default, and after snapbox_set_log(NULL, NULL), they
 * go to stderr. For a service that keeps its own log.
 */
typedef void (*snapbox_log_fn)(void *arg, const char *line);
void snapbox_set_log(snapbox_log_fn fn, void *arg);

/*
 * Seccomp confinement of the vCPU and fault-handler threads started from now
 * on: on by default; off only for strace or valgrind sessions (logged once).
 * No environment variable changes it: the program decides (the snapbox CLI
 * turns it off for SNAPBOX_SECCOMP=0, and says so).
 */
void snapbox_set_confinement(bool on);

/*
 * Deadlines on slow hosts (emulation, nested virtualisation, a loaded
 * machine): every deadline the library picks itself (a 0 timeout in an
 * options struct: the boot's READY wait, a restore's REFRESH and PING, the
 * host's grace beyond an exec's own limit, pre-warm steps, snapbox_resume's
 * REFRESH) is multiplied by this factor. A timeout the caller passes is
 * used as given; scale it with snapbox_scaled_ms. The factor is 1 by
 * default, from 1 to 1000; anything else is -EINVAL and changes nothing.
 * No environment variable changes it: the program decides (the snapbox CLI,
 * snapboxd and the test suites take SNAPBOX_TIME_SCALE).
 */
int snapbox_set_time_scale(double factor);
double snapbox_time_scale(void);
/* A factor from text ("2", "3.5"): 0 and *out, or -EINVAL (not a number from 1 to 1000). */
int snapbox_parse_time_scale(const char *s, double *out);
/* ms times the factor, rounded up (at most UINT_MAX). */
unsigned snapbox_scaled_ms(unsigned ms);

/* All durations are nanoseconds of CLOCK_MONOTONIC. */
/* Request kinds snapbox_counts.kvm_ioctl distinguishes (snapbox_kvm_ioctl_name; the last is "other"). */
#define SNAPBOX_KVM_IOCTL_KINDS 56

/*
 * Exact costs of one operation, the same on every machine (the floors are in
 * docs/benchmarks.md, "Costs"). KVM ioctls and page faults are the calling
 * thread's: work moved to another thread (a pool's refill, the vCPU thread's
 * KVM_RUN) is not on the request's path and is not counted here.
 */
struct snapbox_counts {
	uint32_t kvm_ioctl[SNAPBOX_KVM_IOCTL_KINDS];  /* by request: snapbox_kvm_ioctl_name(i) */
	uint32_t kvm_ioctls;          /* their sum */
	uint64_t minflt_thread;       /* the calling thread's minor page faults */
	uint64_t majflt_thread;
	uint64_t minflt_before_run;   /* restore: the calling thread's minor faults before the vCPU resumed */
	uint64_t minflt_process;      /* every thread of the process, over the same interval */
	uint64_t majflt_process;
	uint64_t bytes_decompressed;  /* lz4 output written into guest memory (or a cow template) */
	uint64_t bytes_copied;        /* uncompressed chunk bytes read into guest memory */
	uint32_t chunks_touched;      /* non-zero memory chunks decoded or read */
};

/* The name of kvm_ioctl[i] ("KVM_SET_REGS", ..., "other"), or NULL past the last. */
const char *snapbox_kvm_ioctl_name(unsigned i);

struct snapbox_create_profile {
	uint64_t kvm_fd_open;
	uint64_t kvm_create_vm;
	uint64_t vm_arch_setup;
	uint64_t guest_memory_mmap;
	uint64_t kernel_asset_read;
	uint64_t rootfs_asset_read;
	uint64_t kernel_elf_load;
	uint64_t rootfs_write;
	uint64_t kvm_set_user_memory_region;
	uint64_t vcpu_creation;
	uint64_t vcpu_register_config;
	uint64_t cpuid_config;
	uint64_t boot_params;
	uint64_t create_vm_total;
	uint64_t boot_wait;
	uint64_t misc;              /* create_vm_total minus the phases above it */
	uint64_t cold_start_total;  /* create_vm_total + boot_wait */
	struct snapbox_counts counts;  /* of create_vm (the build, not the boot wait) */
};

/* Guest-reported stages, in guest clock ns (kvmclock: ns since VM creation). */
enum snapbox_stage {
	SNAPBOX_STAGE_INIT_ENTRY = 0,
	SNAPBOX_STAGE_MOUNTS_DONE,
	SNAPBOX_STAGE_UART_ACCESS_DONE,
	SNAPBOX_STAGE_INIT_OK,
	SNAPBOX_STAGE_READY,
	SNAPBOX_STAGE_COMMAND_LOOP,
	SNAPBOX_STAGE_COUNT
};

struct snapbox_boot_profile {
	/* host phases, measured from the start of boot_wait */
	uint64_t vcpu_thread_start;  /* until the vCPU thread first entered KVM_RUN */
	uint64_t first_guest_byte;   /* until the first byte on COM1 or COM2 (0: none) */
	uint64_t ready;              /* until the READY frame arrived */
	uint64_t exits;              /* userspace exits before READY */
	uint64_t io_exits;
	uint64_t mmio_exits;
	/* guest stages (BOOT_TIME frames); stage_valid says which arrived */
	uint64_t stage_ns[SNAPBOX_STAGE_COUNT];
	bool stage_valid[SNAPBOX_STAGE_COUNT];
};

struct snapbox_config {
	const char *kernel;          /* ELF vmlinux, bzImage, or the probe guest ELF */
	const char *initrd;          /* optional */
	const char *cmdline;         /* optional; default "console=ttyS0 init_on_free=1" */
	uint64_t mem_bytes;          /* default 256 MiB */
	unsigned vcpus;              /* default 1; only 1 is supported today */
	int console_fd;              /* COM1 output goes here; -1 discards it */
	unsigned boot_timeout_ms;    /* 0: 10000, times snapbox_time_scale() */
	bool prepare_snapshot;       /* while the guest boots, probe which MSRs this host can save
					(done once per process, before the first snapshot; a
					scratch VM whose teardown takes ~15 ms on KVM-PVM). A
					guest READY sooner waits for it: boot_wait includes it */
	const char *kvm_path;        /* default /dev/kvm */
};

struct snapbox;   /* a running sandbox VM */

/* Exit codes of the snapbox CLI (documented in `snapbox --help`). */
enum snapbox_exit {
	SNAPBOX_EXIT_OK = 0,
	SNAPBOX_EXIT_GUEST = 1,      /* the guest failed: stopped, timed out, refused */
	SNAPBOX_EXIT_USAGE = 2,      /* bad command line */
	SNAPBOX_EXIT_INPUT = 3,      /* bad input file: missing, unreadable, not a kernel, too big */
	SNAPBOX_EXIT_KVM = 4,        /* /dev/kvm missing, no permission, or lacking features */
	SNAPBOX_EXIT_HOST = 5,       /* this host failed or cannot honour the snapshot: out of
				      * memory or descriptors, busy, I/O error, disk full,
				      * CPU features the snapshot needs */
};

/*
 * Cold-boot a VM from cfg and wait until its guest reports READY (or
 * boot_timeout_ms passes). On success *out is a running sandbox; profiles
 * are filled when non-NULL. On failure nothing is leaked, one line says why
 * on stderr, and the return is a negative errno:
 *   -ENODEV                    KVM unusable: no /dev/kvm, no permission, missing
 *                              capabilities, or a KVM ioctl failed
 *   -ENOENT, -EACCES, -EISDIR, -ENOEXEC, -ERANGE, -E2BIG, -EINVAL   bad input
 *   -ETIMEDOUT                 no READY in time
 *   -ESHUTDOWN                 the guest stopped (triple fault, reset, error)
 */
int snapbox_boot(const struct snapbox_config *cfg, struct snapbox **out,
		 struct snapbox_create_profile *cp, struct snapbox_boot_profile *bp);

/*
 * Send one request frame and wait for its reply. On success *reply is a
 * malloc'd payload (free it) of *reply_len bytes; a guest error reply gives
 * -EREMOTEIO with the reason copied into *reply. -ETIMEDOUT when no reply
 * comes in time, -ESHUTDOWN when the guest has stopped, -EIO when a lazily
 * restored chunk of guest memory failed its checksum (the guest saw zeros
 * there, so nothing it says can be trusted; destroy it).
 */
int snapbox_request(struct snapbox *sb, uint16_t type, const void *payload,
		    uint32_t len, void **reply, uint32_t *reply_len, unsigned timeout_ms);

/* PING round trip. Returns 0 or as snapbox_request. */
int snapbox_ping(struct snapbox *sb, unsigned timeout_ms);

/*
 * Running commands and moving files through the Linux guest's agent
 * (guest/agent; docs/agent-protocol.md, EXEC / WRITE_FILE / READ_FILE).
 * Every call has a deadline: a guest that stops answering gives -ETIMEDOUT
 * (or -ESHUTDOWN once it has stopped) and the sandbox can then be destroyed.
 * Each failure is logged once on stderr, the guest's own reason included.
 */
#define SNAPBOX_FILE_MAX             4186112u      /* bytes of one WRITE_FILE / READ_FILE */
#define SNAPBOX_EXEC_MAX_OUTPUT      4194272u      /* stdout_cap + stderr_cap at most */
#define SNAPBOX_EXEC_DEFAULT_STDOUT  (768u << 10)
#define SNAPBOX_EXEC_DEFAULT_STDERR  (255u << 10)

struct snapbox_exec_opts {
	const char *const *argv;     /* NULL-terminated; argv[0] is searched in the guest's PATH */
	const char *const *env;      /* NULL-terminated KEY=VALUE list, or NULL: the command gets
					exactly these, plus PATH=<default> when none is given */
	const char *cwd;             /* absolute; NULL: "/" */
	const char *user;            /* NULL: root. A name from the guest's /etc/passwd, or
					UID or UID:GID (at most 64 bytes): the command runs with
					that uid, gid and the user's groups from /etc/group, and
					gets HOME, USER and LOGNAME unless env sets them */
	const void *stdin_data;      /* written to the command's stdin, then EOF */
	size_t stdin_len;
	unsigned timeout_ms;         /* run-time limit, enforced by the guest; 0: 30000 */
	uint32_t stdout_cap;         /* bytes of stdout kept; 0: SNAPBOX_EXEC_DEFAULT_STDOUT */
	uint32_t stderr_cap;         /* 0: SNAPBOX_EXEC_DEFAULT_STDERR */
	unsigned grace_ms;           /* the host waits timeout_ms + grace_ms for the reply;
					0: 5000 + 1000 per 64 KiB of caps and stdin, times
					snapbox_time_scale() */
};

struct snapbox_exec_result {
	bool signaled;               /* killed by a signal (then `signal` is set) */
	int exit_code;               /* 0..255 when !signaled */
	int signal;                  /* the signal number when signaled */
	bool timed_out;              /* the time limit passed and the command's process group
					was killed (then usually signaled with SIGKILL) */
	uint8_t *out, *err;          /* stdout, stderr: malloc'd, NUL-terminated after *_len */
	size_t out_len, err_len;
	bool out_truncated, err_truncated;  /* more output came than the cap; the rest was dropped */
	uint64_t guest_ns;           /* fork to reap, guest clock */
	/* costs of this round trip (docs/benchmarks.md, "Costs") */
	uint64_t wire_out, wire_in;  /* bytes of the request and reply frames, headers included */
	uint64_t exits, io_exits;    /* vCPU exits to snapbox while it ran, and how many were port I/O */
};

/*
 * Run a command in the guest: in its own session and process group, with
 * argv, env, cwd and stdin from o, stdout and stderr captured separately up
 * to their caps. Returns 0 with r filled (free it with
 * snapbox_exec_result_free) whatever the command's own status, or a negative
 * errno with r empty: -EINVAL / -E2BIG for a request the protocol cannot
 * carry; -ENOENT, -EACCES, ... when the guest could not start the command
 * (missing program or cwd); -EPROTO for a malformed reply; -ETIMEDOUT,
 * -ESHUTDOWN.
 */
int snapbox_exec(struct snapbox *sb, const struct snapbox_exec_opts *o,
		 struct snapbox_exec_result *r);
void snapbox_exec_result_free(struct snapbox_exec_result *r);

/*
 * Write len (<= SNAPBOX_FILE_MAX) bytes to the absolute guest path, creating
 * or truncating it, then set its permission bits to mode (<= 07777). The
 * guest refuses a path with a symlink anywhere in it (-ELOOP), "..", or a
 * non-regular file. Returns 0 or a negative errno (-ENOENT: a directory is
 * missing; -EFBIG: too large; -ETIMEDOUT ...).
 */
int snapbox_write_file(struct snapbox *sb, const char *path, uint32_t mode, const void *data,
		       size_t len, unsigned timeout_ms);

/*
 * Read a whole regular file of at most max bytes (0: SNAPBOX_FILE_MAX) from
 * the absolute guest path, with the same symlink rules. On success *data is
 * malloc'd (NUL-terminated after *len bytes). -ENOENT when it does not
 * exist, -EFBIG when it is larger than max, -EISDIR, -ELOOP, -ETIMEDOUT ...
 */
int snapbox_read_file(struct snapbox *sb, const char *path, size_t max, void **data,
		      size_t *len, unsigned timeout_ms);

/* Why the guest stopped ("running" while it runs), with detail when known. */
const char *snapbox_stop_reason(struct snapbox *sb);

/* Statistics of the agent channel: frames, skipped garbage bytes, oversize headers. */
void snapbox_channel_stats(struct snapbox *sb, uint64_t *frames, uint64_t *skipped,
			   uint64_t *oversize);

/*
 * Copy guest RAM [gpa, gpa+len) into buf, through the checked accessor.
 * Returns 0 or -EFAULT when any byte lies outside RAM. For inspection and
 * tests; the guest may be changing the bytes while they are copied.
 */
int snapbox_read_guest(struct snapbox *sb, uint64_t gpa, void *buf, uint64_t len);

/* Unknown port/MMIO accesses seen so far. */
uint64_t snapbox_unknown_accesses(struct snapbox *sb);

/* What a snapshot cost. Durations in ns; bytes_in is guest RAM, bytes_out the files. */
struct snapbox_snapshot_profile {
	uint64_t prewarm;            /* files written and pre-warm commands run, before the pause
				      * (not in total) */
	uint64_t pause;              /* vCPU stopped at an exit boundary, I/O completed */
	uint64_t vcpu_capture;       /* vCPU state, then VM state (clock, irqchips, PIT) */
	uint64_t device_capture;     /* device table */
	uint64_t memory_compress;    /* memory file: zero scan, lz4, xxh3 (wall time less writing) */
	uint64_t write;              /* memory file and vmstate writes */
	uint64_t fsync;              /* fsync of files and directories, rename into place */
	uint64_t total;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint32_t zero_chunks, lz4_chunks, raw_chunks;
	struct snapbox_counts counts;  /* of pause to written (not prewarm) */
};

/* A file to write into the guest: its absolute path, mode and bytes. */
struct snapbox_file {
	const char *path;
	uint32_t mode;
	const void *data;
	size_t len;
};

struct snapbox_snapshot_opts {
	bool no_sync;                /* skip every fsync (faster, not crash-safe) */
	uint32_t chunk_size;         /* memory chunk size; 0: the default */
	unsigned threads;            /* compression threads; 0: one per online CPU */
	bool leave_paused;           /* do not resume the guest afterwards */
	bool no_compress;            /* store non-zero memory uncompressed (RAW chunks): faster to
					write and to restore, larger files */
	/* Pre-warming, through the Linux agent, before the pause: first every file is
	 * written (each within file_timeout_ms; 0: 30000 plus 4000 per 64 KiB), then
	 * every command runs as `sh -c CMD` (each must exit 0 within
	 * prewarm_timeout_ms; 0: 300000). Defaults are times snapbox_time_scale().
	 * The snapshot then holds their effects: compiled .pyc files, imported
	 * modules, caches. */
	const struct snapbox_file *files;
	size_t nfiles;
	const char *const *prewarm;  /* NULL-terminated, or NULL */
	unsigned prewarm_timeout_ms;
	unsigned file_timeout_ms;
};

/*
 * Snapshot a running (READY) sandbox into directory `dir`: pause the vCPU,
 * capture vCPU, VM and device state and guest memory, write them into a
 * hidden temporary directory beside `dir` and rename it into place, so `dir`
 * is either the old snapshot or the complete new one. The guest resumes
 * afterwards unless opts->leave_paused. opts may be NULL. Returns 0 or a
 * negative errno with one line on stderr (-EBUSY: the agent channel was in
 * the middle of a frame; -ESHUTDOWN: the guest had stopped).
 */
int snapbox_snapshot(struct snapbox *sb, const char *dir, const struct snapbox_snapshot_opts *opts,
		     struct snapbox_snapshot_profile *prof);

/*
 * Probe guest only: fill `mib` MiB of guest RAM (from 4 MiB up) with its
 * deterministic mix of zero, text-like and random pages for `seed`.
 * Returns 0, -EREMOTEIO when the guest refuses (too large), or as
 * snapbox_request.
 */
int snapbox_probe_fill(struct snapbox *sb, uint32_t mib, uint64_t seed, unsigned timeout_ms);

/*
 * Describe the snapshot in `dir` on f: sections, configuration, memory file
 * statistics. verify also decodes every memory chunk and checks its xxh3.
 * json prints one JSON object instead. Everything is validated before it is
 * shown. Returns 0, -ENOENT, or -EPROTO for a malformed snapshot (one line
 * on stderr says what is wrong).
 */
int snapbox_inspect(const char *dir, bool verify, bool json, FILE *f);

void snapbox_print_snapshot_profile(FILE *f, const struct snapbox_snapshot_profile *p);
void snapbox_json_snapshot_profile(FILE *f, const struct snapbox_snapshot_profile *p);

/* RestoreProfile: ns of CLOCK_MONOTONIC, in the order the design notes list them. */
struct snapbox_restore_profile {
	uint64_t snapshot_open;      /* read and validate vmstate, memory index, compatibility */
	uint64_t kvm_fd_open;
	uint64_t kvm_create_vm;
	uint64_t vm_arch_setup;
	uint64_t guest_memory_mmap;
	uint64_t kvm_set_user_memory_region;
	uint64_t vcpu_creation;      /* KVM_CREATE_VCPU, then its run thread started, confined, parked */
	uint64_t cpuid_config;
	uint64_t memory_state_write;
	uint64_t vcpu_state_restore;
	uint64_t device_state_restore; /* irqchips, PIT, clock, then the device table */
	uint64_t resume_kvm_run;     /* parked vCPU thread resumed until it entered KVM_RUN (0: not resumed) */
	uint64_t guest_refresh;      /* REFRESH round trip: fresh entropy and wall clock into the guest,
				      * before anything else reaches it (0: not resumed) */
	uint64_t total_without_resume;
	uint64_t total_with_resume;
	uint64_t restore_to_ready;   /* restore start until the guest answered PING (0: not asked) */
	bool pooled;                 /* the VM shell came ready from a pool (a pool hit) */
	bool warm;                   /* ... and warm: the pool had also restored its state, resumed it
				      * and put it through one REFRESH and PING (so state phases are 0);
				      * this request paid its own REFRESH and PING only */
	struct snapbox_counts counts;  /* of the whole restore, PING included */
};

enum snapbox_restore_mode {
	SNAPBOX_RESTORE_EAGER = 0,   /* decompress every chunk into fresh anonymous memory */
	SNAPBOX_RESTORE_COW,         /* map a shared, decompressed-once template MAP_PRIVATE */
	SNAPBOX_RESTORE_LAZY,        /* decode each chunk on first touch (userfaultfd) */
};

struct snapbox_restore_opts {
	enum snapbox_restore_mode mode;
	bool no_verify;              /* skip the per-chunk xxh3 check (eager and lazy); a cow template
				      * is verified when it is decoded, and a cached one is reused
				      * only from a file of this user that nobody else can write */
	bool resume;                 /* start the vCPU (needed for restore_to_ready) */
	bool ping;                   /* with resume: PING and fill restore_to_ready */
	unsigned threads;            /* decompression threads; 0: online CPUs */
	int console_fd;              /* COM1 output after resume; -1 discards */
	unsigned ping_timeout_ms;    /* the REFRESH every restored guest gets on resume, and the
				      * PING, each within this; 0: 5000 times snapbox_time_scale().
				      * A later snapbox_resume's REFRESH uses it too */
	const char *cache_dir;       /* cow templates; default /dev/shm/snapbox-<euid> (0700) */
};

/*
 * Rebuild a sandbox from the snapshot in `dir`. Everything on disk is
 * validated and the snapshot's recorded CPUID, memory size and vCPU count are
 * checked against this host before any VM is created; a mismatch is refused
 * with -ENOTSUP and a message listing every difference. opts may be NULL
 * (eager, verify, not resumed). On success *out is a sandbox like one from
 * snapbox_boot (paused when !resume). Returns 0 or -errno (one line on stderr).
 */
int snapbox_restore(const char *dir, const struct snapbox_restore_opts *opts, struct snapbox **out,
		    struct snapbox_restore_profile *prof);

/*
 * Start a sandbox restored without resume, or resume one a snapshot left
 * paused (snapbox_snapshot_opts.leave_paused). A restored sandbox gets its
 * REFRESH first (fresh entropy and wall clock, as a resumed restore does), so
 * it waits for the guest's answer, within the restore's ping_timeout_ms (or
 * its scaled default). Returns 0, -EINVAL when it is running already,
 * -ENOTSUP when the guest refuses REFRESH, -ETIMEDOUT, or -errno.
 */
int snapbox_resume(struct snapbox *sb);

/*
 * A shell pool for one snapshot: the snapshot is opened, validated, checked
 * against the host and decoded once; `size` VM shells (VM, irqchip, PIT,
 * memory and memory slot, vCPU, devices) are kept ready and refilled by a
 * background thread. By default the shells are warm (no_warm below): the
 * state is restored too, so a restore from the pool pays only for the
 * clone's own REFRESH and its PING; with no_warm it pays for the state (and,
 * in eager mode, memory). A shell is used once: every request gets a fresh
 * restore, never a reused sandbox.
 */
struct snapbox_pool;

struct snapbox_pool_opts {
	unsigned size;                 /* shells kept ready; default 2 */
	enum snapbox_restore_mode mode;
	unsigned threads;              /* decompression threads; 0: online CPUs */
	const char *cache_dir;         /* cow templates; default /dev/shm/snapbox-<euid> (0700) */
	bool no_refill;                /* no background thread: shells are made only on a miss */
	bool no_warm;                  /* shells only: the snapshot's state is restored at the request.
					* By default the refill thread also restores each shell's
					* state, resumes the guest and puts it through one REFRESH
					* and PING, so the pages a request touches are mapped (in
					* this process and in KVM's MMU) before it comes; the
					* request then sends the clone's own REFRESH (fresh entropy
					* and clock) and PING. The shell pool_create builds inline is
					* never warm (creating a pool runs no guest). */
};

struct snapbox_pool_stats {
	uint64_t hits;                 /* restores that found a ready shell */
	uint64_t misses;               /* restores that built their shell inline */
	uint64_t refills;              /* shells built by the refill thread */
	uint64_t refill_failures;
	unsigned ready;                /* shells ready now */
};

/* Create a pool for the snapshot in dir and fill it. Returns 0 or -errno (logged). */
int snapbox_pool_create(const char *dir, const struct snapbox_pool_opts *opts,
			struct snapbox_pool **out);

/*
 * A fresh sandbox from the pool: take a ready shell (or build one on a miss)
 * and restore the snapshot's state into it. opts as for snapbox_restore; its
 * mode and cache_dir are the pool's. Shell-building phases of prof are 0 on a
 * hit: they happened before the request. Returns 0 or -errno.
 */
int snapbox_pool_restore(struct snapbox_pool *pool, const struct snapbox_restore_opts *opts,
			 struct snapbox **out, struct snapbox_restore_profile *prof);

void snapbox_pool_get_stats(struct snapbox_pool *pool, struct snapbox_pool_stats *st);

/* Stop the refill thread and free every ready shell. NULL is fine. */
void snapbox_pool_destroy(struct snapbox_pool *pool);

void snapbox_print_restore_profile(FILE *f, const struct snapbox_restore_profile *p);
void snapbox_json_restore_profile(FILE *f, const struct snapbox_restore_profile *p);

/* Stop the vCPU and free everything. NULL is fine. */
void snapbox_destroy(struct snapbox *sb);

/* Which snapbox_exit a negative errno from this API maps to. */
int snapbox_exit_code(int err);

/*
 * The KVM backend of this host as the library sees it (and records in every
 * snapshot): "pvm" when the CPU flags show neither vmx nor svm (KVM-PVM or
 * similar), else "hardware". For reports; needs no /dev/kvm, never fails.
 */
const char *snapbox_kvm_backend(void);

/*
 * True when this host's CPU is emulated (the nested lab: QEMU TCG), where
 * timings mean nothing and benchmarks must say "emulated". SNAPBOX_EMULATED=1
 * or 0 overrides the CPUID check. Never fails.
 */
bool snapbox_host_emulated(void);

/*
 * Drop, for the whole process and for good, the privileges a VMM does not
 * need: no_new_privs, and every capability (bounding, permitted, effective,
 * inheritable, ambient). Opening /dev/kvm needs only file permission, so
 * boots, snapshots and restores keep working. With keep_lazy, CAP_SYS_PTRACE
 * is kept when the host's vm.unprivileged_userfaultfd is 0, since lazy
 * restores need it. Call it first, while the process has a single thread
 * (before any sandbox or pool exists): -EBUSY otherwise. The uid does not
 * change: a process running as root keeps what uid 0 owns (its files);
 * run it as a user in the kvm group to drop that too. The CLI calls it
 * first. Returns 0 or -errno (one line on stderr).
 */
int snapbox_drop_privileges(bool keep_lazy);

/* Profiles as readable "[create-vm-profile] name: 1.234 ms" lines. */
void snapbox_print_create_profile(FILE *f, const struct snapbox_create_profile *p);
void snapbox_print_boot_profile(FILE *f, const struct snapbox_boot_profile *p);
/* Profiles as one JSON object each (no trailing newline). */
void snapbox_json_create_profile(FILE *f, const struct snapbox_create_profile *p);
void snapbox_json_boot_profile(FILE *f, const struct snapbox_boot_profile *p);

/*
 * s as a JSON string literal ("null" for NULL): quote and backslash escaped,
 * control characters and every byte >= 0x7f as \u00XX, so the output is
 * valid ASCII JSON whatever s holds.
 */
void snapbox_json_string(FILE *f, const char *s);

/* Stage name ("init_entry", ...) or NULL. */
const char *snapbox_stage_name(enum snapbox_stage s);

/*
 * Parse one "BOOT_TIME:<stage>:<ns>" line (a trailing "\n" or "\r\n" is
 * allowed). Returns 0 with stage and ns set, or -EINVAL for anything else:
 * unknown stage, missing/extra fields, non-digits, overflow.
 */
int snapbox_parse_boot_time(const char *line, size_t len, enum snapbox_stage *stage,
			    uint64_t *ns);

/* Fill the derived fields (misc, cold_start_total) from the measured ones. */
void snapbox_create_profile_finish(struct snapbox_create_profile *p);

#ifdef __cplusplus
}
#endif
#endif
