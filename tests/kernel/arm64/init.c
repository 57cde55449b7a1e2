/*
 * The arm64 guest side of the kernel cross-check (tests/kernel/arm64.rs).
 *
 * One static binary, /init of the initramfs, in two roles:
 *
 * - As PID 1 it is the router. It mounts /proc, /sys, /dev and the ext4 disk holding the
 *   harness files, loads the modules listed in /modules/order, puts the serial console in
 *   raw mode and serves the harness driver's requests from it. Each 64-byte request carries
 *   a channel: the executor it is for, or the router itself. Replies are forwarded
 *   unchanged, so the driver speaks the protocol of tests/kernel/executor.rs.
 * - Run as `/init exec` it is an executor: the C twin of tests/kernel/executor.rs. It makes
 *   raw memory syscalls on request and reports /proc/self/maps and smaps, allocating nothing
 *   once it runs.
 *
 * Built with aarch64-linux-gnu-gcc -static -O2.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* Executor operations (tests/kernel/executor.rs, mod op). */
enum {
	OP_MMAP = 1, OP_MUNMAP = 2, OP_MPROTECT = 3, OP_MADVISE = 4, OP_BRK = 5,
	OP_MINCORE = 6, OP_MAPS = 7, OP_SMAPS = 8, OP_EXIT = 9, OP_TOUCH_SIGNAL = 10,
	OP_TOUCH = 11, OP_MMAP_FILE = 12, OP_MREMAP = 13, OP_FORK = 14,
};

/* Router operations (channel ROUTER). Requests may carry a0..a4 and, when a5 is set,
 * a5 trailing bytes (a path). */
enum {
	R_SPAWN = 100,      /* a0: new channel, a1: throwaway → ret pid */
	R_READ = 101,       /* path → payload: the file's bytes */
	R_PAGEMAP = 102,    /* a0 pid, a1 start, a2 end → payload: entries */
	R_STAT = 103,       /* path → payload: major, minor, ino, size (u64 each) */
	R_FILES = 104,      /* a0: count, a1..: sizes (at most 4) → creates dir/fN and replay/fN */
	R_EXEC_STOP = 105,  /* a0 personality; path, NUL, argv, "--", envp → payload: maps at exec */
	R_POWEROFF = 106,
	R_PROBE = 107,      /* → ret: 1 when a hint above 2^48 gets an address above it;
			     * a0 = 1: where a hint at the first page lands (mmap_min_addr) */
	R_RUN = 108,        /* path, NUL, argv, "--", envp → ret: wait status, payload: what
			     * the program wrote to stdout and stderr (a pipe) */
};

#define ROUTER 0xffffffffu
#define SNAP_CAP (4u << 20)
#define FILES 8
#define MAX_CHANNELS 4096
#define FILES_DIR "/mnt/pagesim-harness-arm64"
#define CHANNELS_DIR "/tmp/channels"

struct request {
	uint32_t op;
	uint32_t chan;
	uint64_t a[6];
};

static int read_exact(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t r = write(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Reads one request from the console port: the 64-byte record, then, for the router's
 * own requests, the a5 trailing bytes it announces (a path). */
static int read_request(int fd, unsigned char *out, size_t cap, size_t *len)
{
	if (read_exact(fd, out, 64) != 0)
		return -1;
	uint32_t chan;
	uint64_t extra;
	memcpy(&chan, out + 4, 4);
	memcpy(&extra, out + 48, 8);
	*len = 64;
	if (chan != 0xffffffffu || extra == 0)
		return 0;
	if (extra > cap - 64)
		return -1;
	if (read_exact(fd, out + 64, (size_t)extra) != 0)
		return -1;
	*len = 64 + (size_t)extra;
	return 0;
}

static void decode(const unsigned char *b, struct request *r)
{
	memcpy(&r->op, b, 4);
	memcpy(&r->chan, b + 4, 4);
	memcpy(r->a, b + 8, 48);
}

static int cpus(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		return 1;
	return CPU_COUNT(&set);
}

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof set, &set);
}

/* ---------------------------------------------------------------- executor */

static unsigned char *snap;

static void on_segv(int sig, siginfo_t *info, void *ctx)
{
	(void)ctx;
	unsigned char msg[32];
	int64_t ret = -2;
	int32_t code = info->si_code;
	uint32_t len = 16;
	uint64_t addr = (uint64_t)info->si_addr, signo = (uint64_t)sig;
	memcpy(msg, &ret, 8);
	memcpy(msg + 8, &code, 4);
	memcpy(msg + 12, &len, 4);
	memcpy(msg + 16, &addr, 8);
	memcpy(msg + 24, &signo, 8);
	write(1, msg, 32);
	_exit(0);
}

static size_t read_file_into(int fd, unsigned char *buf, size_t cap)
{
	size_t n = 0;
	if (lseek(fd, 0, SEEK_SET) != 0)
		return 0;
	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	return n;
}

static int executor(void)
{
	/* Pre-touch stack so that [stack] does not grow during a sequence. */
	volatile char pad[256 * 1024];
	for (size_t i = 0; i < sizeof pad; i += 512)
		pad[i] = 0;
	long page = sysconf(_SC_PAGESIZE);
	const char *dir = getenv("PAGESIM_FILES_DIR");
	if (!dir)
		dir = FILES_DIR;
	static char paths[FILES][256];
	for (int i = 0; i < FILES; i++)
		snprintf(paths[i], sizeof paths[i], "%s/f%d", dir, i);
	int maps = open("/proc/self/maps", O_RDONLY);
	int smaps = open("/proc/self/smaps", O_RDONLY);
	int fd = memfd_create("pagesim-snapshots", 0);
	if (fd < 0 || ftruncate(fd, SNAP_CAP) != 0)
		_exit(2);
	snap = mmap(NULL, SNAP_CAP, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (snap == MAP_FAILED)
		_exit(2);
	close(fd);
	for (size_t i = 0; i < SNAP_CAP; i += (size_t)page)
		snap[i] = 1;
	unsigned char raw[64];
	for (;;) {
		struct request r;
		if (read_exact(0, raw, 64) != 0)
			_exit(0);
		decode(raw, &r);
		uint64_t *a = r.a;
		int64_t ret = 0;
		int32_t err = 0;
		uint32_t payload = 0;
		errno = 0;
		switch (r.op) {
		case OP_MMAP:
			ret = (int64_t)mmap((void *)a[0], a[1], (int)a[2], (int)a[3], -1, 0);
			break;
		case OP_MMAP_FILE:
			if (a[4] >= FILES) {
				ret = -1;
				errno = EBADF;
				break;
			}
			{
				int f = open(paths[a[4]], O_RDWR);
				ret = (int64_t)mmap((void *)a[0], a[1], (int)a[2], (int)a[3], f,
						    (off_t)a[5]);
				int e = errno;
				close(f);
				errno = e;
			}
			break;
		case OP_FORK: {
			pid_t pid = fork();
			if (pid == 0) {
				char req[128], resp[128];
				snprintf(req, sizeof req, CHANNELS_DIR "/req%llu",
					 (unsigned long long)a[0]);
				snprintf(resp, sizeof resp, CHANNELS_DIR "/resp%llu",
					 (unsigned long long)a[0]);
				int i = open(req, O_RDONLY);
				int o = open(resp, O_WRONLY);
				if (i < 0 || o < 0)
					_exit(3);
				dup2(i, 0);
				dup2(o, 1);
				close(i);
				close(o);
				close(maps);
				close(smaps);
				maps = open("/proc/self/maps", O_RDONLY);
				smaps = open("/proc/self/smaps", O_RDONLY);
				continue;
			}
			ret = pid;
			break;
		}
		case OP_MREMAP:
			ret = syscall(SYS_mremap, a[0], a[1], a[2], a[3], a[4]);
			break;
		case OP_MUNMAP:
			ret = munmap((void *)a[0], a[1]);
			break;
		case OP_MPROTECT:
			ret = mprotect((void *)a[0], a[1], (int)a[2]);
			break;
		case OP_MADVISE:
			ret = madvise((void *)a[0], a[1], (int)a[2]);
			break;
		case OP_BRK:
			ret = syscall(SYS_brk, a[0]);
			break;
		case OP_MINCORE: {
			uint64_t pages = (a[1] + (uint64_t)page - 1) / (uint64_t)page;
			ret = mincore((void *)a[0], a[1], snap);
			if (ret == 0)
				payload = (uint32_t)(pages < SNAP_CAP ? pages : SNAP_CAP);
			break;
		}
		case OP_MAPS:
		case OP_SMAPS:
			payload = (uint32_t)read_file_into(r.op == OP_MAPS ? maps : smaps, snap,
							   SNAP_CAP);
			ret = payload;
			break;
		case OP_TOUCH_SIGNAL: {
			struct sigaction sa;
			memset(&sa, 0, sizeof sa);
			sa.sa_sigaction = on_segv;
			sa.sa_flags = SA_SIGINFO;
			sigaction(SIGSEGV, &sa, NULL);
			sigaction(SIGBUS, &sa, NULL);
			volatile unsigned char *p = (unsigned char *)a[0];
			if (a[1])
				*p = 0;
			else
				(void)*p;
			break;
		}
		case OP_TOUCH:
			for (uint64_t i = 0; i < a[1]; i++) {
				volatile unsigned char *p =
					(unsigned char *)(a[0] + i * (uint64_t)page);
				if (a[2])
					*p = 0;
				else
					(void)*p;
			}
			break;
		default:
			_exit(0);
		}
		if (ret == -1)
			err = errno;
		unsigned char head[16];
		memcpy(head, &ret, 8);
		memcpy(head + 8, &err, 4);
		memcpy(head + 12, &payload, 4);
		if (write_all(1, head, 16) != 0 || write_all(1, snap, payload) != 0)
			_exit(0);
	}
}

/* ---------------------------------------------------------------- router */

struct channel {
	int used;
	pid_t pid;
	int tx, rx; /* requests to the executor, replies from it */
};

static struct channel chans[MAX_CHANNELS];
static int con_in = 0, con_out = 1;
static unsigned char *buf; /* payload scratch */
#define BUF_CAP (8u << 20)

static void reply(int64_t ret, int32_t err, const void *payload, uint32_t n)
{
	unsigned char head[16];
	memcpy(head, &ret, 8);
	memcpy(head + 8, &err, 4);
	memcpy(head + 12, &n, 4);
	write_all(con_out, head, 16);
	if (n)
		write_all(con_out, payload, n);
}

static void die(const char *what)
{
	char msg[256];
	int n = snprintf(msg, sizeof msg, "\nPAGESIM-ROUTER-FAILED %s: %s\n", what,
			 strerror(errno));
	write(2, msg, (size_t)n);
	sync();
	reboot(RB_POWER_OFF);
	_exit(1);
}

static void reap(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/* Waits until `pid` is gone or a zombie (its address space torn down), reaping it where
 * it is the router's child. */
static void wait_gone(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	for (int i = 0; i < 20000; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			return;
		char s[512];
		ssize_t n = read(fd, s, sizeof s - 1);
		close(fd);
		if (n <= 0)
			return;
		s[n] = 0;
		char *p = strrchr(s, ')');
		if (p && (p[2] == 'Z' || p[2] == 'X'))
			return;
		usleep(200);
	}
}

static void load_modules(void)
{
	int list = open("/modules/order", O_RDONLY);
	if (list < 0)
		return;
	static char names[16384];
	ssize_t n = read(list, names, sizeof names - 1);
	close(list);
	if (n <= 0)
		return;
	names[n] = 0;
	for (char *save = NULL, *name = strtok_r(names, "\n", &save); name;
	     name = strtok_r(NULL, "\n", &save)) {
		char path[256];
		snprintf(path, sizeof path, "/modules/%s", name);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			die(path);
		if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST)
			die(path);
		close(fd);
	}
}

static int make_file(const char *path, uint64_t size)
{
	unlink(path);
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	static char chunk[4096];
	uint64_t left = size;
	unsigned page = 0;
	while (left > 0) {
		size_t n = left < 4096 ? (size_t)left : 4096;
		memset(chunk, 'a' + page % 26, n);
		if (write_all(fd, chunk, n) != 0) {
			close(fd);
			return -1;
		}
		left -= n;
		page++;
	}
	int r = fsync(fd);
	close(fd);
	return r;
}

static void spawn(uint32_t chan, int throwaway)
{
	int req[2], resp[2];
	if (chan >= MAX_CHANNELS || pipe(req) != 0 || pipe(resp) != 0) {
		reply(-1, EINVAL, NULL, 0);
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		int n = cpus();
		if (n >= 2)
			pin(throwaway ? 0 : n - 1);
		personality(ADDR_NO_RANDOMIZE);
		struct rlimit lim = {8 << 20, 8 << 20};
		setrlimit(RLIMIT_STACK, &lim);
		dup2(req[0], 0);
		dup2(resp[1], 1);
		close(req[0]);
		close(req[1]);
		close(resp[0]);
		close(resp[1]);
		char *argv[] = {"/init", "exec", NULL};
		char *envp[] = {throwaway ? "PAGESIM_FILES_DIR=" FILES_DIR "/replay"
					  : "PAGESIM_FILES_DIR=" FILES_DIR,
				NULL};
		execve("/init", argv, envp);
		_exit(4);
	}
	close(req[0]);
	close(resp[1]);
	chans[chan] = (struct channel){1, pid, req[1], resp[0]};
	reply(pid, 0, NULL, 0);
}

/* Forwards one request to an executor and its reply (head and payload) to the driver. */
static int forward(struct channel *c, const unsigned char *raw)
{
	unsigned char head[16];
	if (write_all(c->tx, raw, 64) != 0 || read_exact(c->rx, head, 16) != 0)
		return -1;
	uint32_t n;
	memcpy(&n, head + 12, 4);
	if (n > BUF_CAP || read_exact(c->rx, buf, n) != 0)
		return -1;
	write_all(con_out, head, 16);
	write_all(con_out, buf, n);
	return 0;
}

/* Splits a request's trailing bytes "path \0 arg0 \0 arg1 \0 ... -- \0 env0 \0 ..." into
 * NULL-terminated argv and envp (64 slots each); returns the path. */
static const char *split_args(const char *args, size_t len, char **argv, char **envp)
{
	int na = 0, ne = 0, env = 0;
	const char *p = args;
	const char *path = p;
	p += strlen(p) + 1;
	while (p < args + len && na < 63 && ne < 63) {
		if (strcmp(p, "--") == 0)
			env = 1;
		else if (env)
			envp[ne++] = (char *)p;
		else
			argv[na++] = (char *)p;
		p += strlen(p) + 1;
	}
	argv[na] = NULL;
	envp[ne] = NULL;
	return path;
}

static void exec_stop(const char *args, size_t len, unsigned long pers)
{
	static char *argv[64], *envp[64];
	const char *path = split_args(args, len, argv, envp);
	pid_t pid = fork();
	if (pid == 0) {
		personality(pers);
		struct rlimit lim = {8 << 20, 8 << 20};
		setrlimit(RLIMIT_STACK, &lim);
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		execve(path, argv, envp);
		_exit(5);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) {
		reply(-1, ENOEXEC, NULL, 0);
		return;
	}
	char m[64];
	snprintf(m, sizeof m, "/proc/%d/maps", pid);
	int fd = open(m, O_RDONLY);
	size_t n = fd < 0 ? 0 : read_file_into(fd, buf, BUF_CAP);
	if (fd >= 0)
		close(fd);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	reply((int64_t)n, 0, buf, (uint32_t)n);
}

static int probe_va52(void)
{
	void *hint = (void *)(1ull << 50);
	void *p = mmap(hint, 1 << 16, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	munmap(p, 1 << 16);
	return (uint64_t)p >= (1ull << 48);
}

/* Runs a program to its end as a shell would (ASLR off, an 8 MiB stack rlimit), its
 * stdout and stderr into one pipe; replies with its wait status and output. */
static void run_program(const char *args, size_t len)
{
	static char *argv[64], *envp[64];
	const char *path = split_args(args, len, argv, envp);
	int out[2];
	if (pipe(out) != 0) {
		reply(-1, errno, NULL, 0);
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		personality(ADDR_NO_RANDOMIZE);
		struct rlimit lim = {8 << 20, 8 << 20};
		setrlimit(RLIMIT_STACK, &lim);
		dup2(out[1], 1);
		dup2(out[1], 2);
		close(out[0]);
		close(out[1]);
		/* A path like ./NAME runs from pagesim-emu's program directory. */
		if (chdir("/emu-progs") != 0)
			_exit(126);
		execve(path, argv, envp);
		_exit(127);
	}
	close(out[1]);
	size_t n = 0;
	for (;;) {
		ssize_t r = read(out[0], buf + n, BUF_CAP - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(out[0]);
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) != pid) {
		reply(-1, ECHILD, NULL, 0);
		return;
	}
	reply(status, 0, buf, (uint32_t)n);
}

/* The effective mmap_min_addr: where a one-page map hinted at the first page lands
 * (round_hint_to_min raises a lower hint to it; CONFIG_LSM_MMAP_MIN_ADDR can put it above
 * the sysctl). */
static int64_t probe_min_addr(void)
{
	long page = sysconf(_SC_PAGESIZE);
	void *p = mmap((void *)page, (size_t)page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	munmap(p, (size_t)page);
	return (int64_t)(uintptr_t)p;
}

static int router(void)
{
	mkdir("/proc", 0755);
	mkdir("/sys", 0755);
	mkdir("/dev", 0755);
	mkdir("/tmp", 01777);
	mkdir("/mnt", 0755);
	if (mount("proc", "/proc", "proc", 0, NULL) != 0)
		die("mount /proc");
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mount("tmpfs", "/tmp", "tmpfs", 0, NULL);
	load_modules();
	/* The disk appears once its driver probed. */
	for (int i = 0; i < 5000 && access("/dev/vda", F_OK) != 0; i++)
		usleep(1000);
	if (mount("/dev/vda", "/mnt", "ext4", 0, NULL) != 0)
		die("mount /dev/vda");
	/* khugepaged collapses PTE-mapped ranges into THPs in the background, at times no model
	 * of the calls can know (THP is "always" here): put it to sleep. */
	int kh = open("/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs", O_WRONLY);
	if (kh >= 0) {
		write_all(kh, "4294967295", 10);
		close(kh);
	}
	/* The multi-gen LRU (on by default in Debian's 6.12) marks a folio accessed only once it
	 * left the per-CPU lru_add batch; pagesim models the classic LRU, whose
	 * folio_mark_accessed sets PG_referenced at once (see the note on the arm64 harness). */
	int lg = open("/sys/kernel/mm/lru_gen/enabled", O_WRONLY);
	if (lg >= 0) {
		write_all(lg, "n", 1);
		close(lg);
	}
	mkdir(FILES_DIR, 0755);
	mkdir(FILES_DIR "/replay", 0755);
	mkdir(CHANNELS_DIR, 0755);
	buf = mmap(NULL, BUF_CAP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		die("mmap");
	/* The driver's channel: a virtio-serial port (far faster than the PL011 console under
	 * TCG: one interrupt per buffer, not per 16 bytes, and no line discipline). Its node
	 * appears once virtio-mmio probed the device. */
	int tty = -1;
	for (int i = 0; i < 10000 && tty < 0; i++) {
		/* The port is named "pagesim" (QEMU's virtserialport name=); its node is
		 * /dev/vport<device index>p<port>. */
		DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *e;
		while (d && tty < 0 && (e = readdir(d)) != NULL) {
			char p[300], name[32] = {0};
			snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", e->d_name);
			int fd = open(p, O_RDONLY);
			if (fd < 0)
				continue;
			ssize_t n = read(fd, name, sizeof name - 1);
			close(fd);
			if (n >= 7 && strncmp(name, "pagesim", 7) == 0) {
				snprintf(p, sizeof p, "/dev/%s", e->d_name);
				tty = open(p, O_RDWR | O_NOCTTY);
			}
		}
		if (d)
			closedir(d);
		if (tty < 0)
			usleep(1000);
	}
	if (tty < 0)
		die("open the pagesim virtio-serial port");
	con_in = con_out = tty;
	if (cpus() >= 2)
		pin(0);
	signal(SIGPIPE, SIG_IGN);
	static const char ready[] = "PAGESIM-ROUTER-READY\n";
	write_all(con_out, ready, sizeof ready - 1);
	/* Room for an exec stop's argv and envp (the harness sends up to about 230 KiB). */
	static unsigned char line[(1u << 20) + 64];
	for (;;) {
		struct request r;
		size_t len;
		if (read_request(con_in, line, sizeof line - 1, &len) != 0)
			die("read request");
		if (len < 64) {
			reply(-1, EINVAL, NULL, 0);
			continue;
		}
		unsigned char *raw = line;
		decode(raw, &r);
		reap();
		char *extra = (char *)line + 64;
		size_t nx = len - 64;
		extra[nx] = 0;
		if (r.chan != ROUTER) {
			struct channel *c = r.chan < MAX_CHANNELS ? &chans[r.chan] : NULL;
			if (!c || !c->used) {
				reply(-1, ESRCH, NULL, 0);
				continue;
			}
			if (r.op == OP_EXIT) {
				write_all(c->tx, raw, 64);
				close(c->tx);
				close(c->rx);
				wait_gone(c->pid);
				c->used = 0;
				reply(0, 0, NULL, 0);
				continue;
			}
			if (r.op == OP_FORK) {
				char req[128], resp[128];
				uint64_t k = r.a[0];
				snprintf(req, sizeof req, CHANNELS_DIR "/req%llu", (unsigned long long)k);
				snprintf(resp, sizeof resp, CHANNELS_DIR "/resp%llu",
					 (unsigned long long)k);
				if (k >= MAX_CHANNELS || mkfifo(req, 0600) != 0 ||
				    mkfifo(resp, 0600) != 0) {
					reply(-1, errno ? errno : EINVAL, NULL, 0);
					continue;
				}
				unsigned char head[16];
				if (write_all(c->tx, raw, 64) != 0 || read_exact(c->rx, head, 16) != 0)
					die("fork request");
				int64_t pid;
				memcpy(&pid, head, 8);
				if (pid > 0) {
					int tx = open(req, O_WRONLY);
					int rx = open(resp, O_RDONLY);
					chans[k] = (struct channel){1, (pid_t)pid, tx, rx};
				}
				unlink(req);
				unlink(resp);
				write_all(con_out, head, 16);
				continue;
			}
			if (forward(c, raw) != 0) {
				/* The executor died (a SIGSEGV the driver did not expect). */
				c->used = 0;
				close(c->tx);
				close(c->rx);
				reply(-3, EPIPE, NULL, 0);
			}
			continue;
		}
		switch (r.op) {
		case R_SPAWN:
			spawn((uint32_t)r.a[0], r.a[1] != 0);
			break;
		case R_READ: {
			int fd = open(extra, O_RDONLY);
			if (fd < 0) {
				reply(-1, errno, NULL, 0);
				break;
			}
			size_t n = read_file_into(fd, buf, BUF_CAP);
			close(fd);
			reply((int64_t)n, 0, buf, (uint32_t)n);
			break;
		}
		case R_PAGEMAP: {
			char path[64];
			long page = sysconf(_SC_PAGESIZE);
			snprintf(path, sizeof path, "/proc/%llu/pagemap", (unsigned long long)r.a[0]);
			int fd = open(path, O_RDONLY);
			uint64_t n = (r.a[2] - r.a[1]) / (uint64_t)page * 8;
			if (fd < 0 || n > BUF_CAP ||
			    pread(fd, buf, n, (off_t)(r.a[1] / (uint64_t)page * 8)) != (ssize_t)n) {
				reply(-1, errno, NULL, 0);
			} else {
				reply((int64_t)n, 0, buf, (uint32_t)n);
			}
			if (fd >= 0)
				close(fd);
			break;
		}
		case R_STAT: {
			struct stat st;
			if (stat(extra, &st) != 0) {
				reply(-1, errno, NULL, 0);
				break;
			}
			uint64_t v[4] = {major(st.st_dev), minor(st.st_dev), st.st_ino,
					 (uint64_t)st.st_size};
			reply(0, 0, v, sizeof v);
			break;
		}
		case R_FILES: {
			int ok = 0;
			for (uint64_t i = 0; i < r.a[0] && i < 4; i++) {
				char p[256];
				snprintf(p, sizeof p, FILES_DIR "/f%llu", (unsigned long long)i);
				ok |= make_file(p, r.a[1 + i]);
				snprintf(p, sizeof p, FILES_DIR "/replay/f%llu", (unsigned long long)i);
				ok |= make_file(p, r.a[1 + i]);
			}
			reply(ok, ok ? errno : 0, NULL, 0);
			break;
		}
		case R_EXEC_STOP:
			exec_stop(extra, nx, r.a[0] ? (unsigned long)r.a[0] : ADDR_NO_RANDOMIZE);
			break;
		case R_RUN:
			run_program(extra, nx);
			break;
		case R_PROBE:
			if (r.a[0] == 1)
				reply(probe_min_addr(), 0, NULL, 0);
			else
				reply(probe_va52(), 0, NULL, 0);
			break;
		case R_POWEROFF:
			reply(0, 0, NULL, 0);
			sync();
			reboot(RB_POWER_OFF);
			_exit(0);
		default:
			reply(-1, ENOSYS, NULL, 0);
		}
	}
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "exec") == 0)
		return executor();
	return router();
}
