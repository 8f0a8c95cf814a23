/*
 * sandbox.c - seccomp-bpf allow-lists for smtp-in and smtp-out.
 *
 * The lists were built from what the roles do (libevent with epoll,
 * OpenSSL, c-ares, glibc threads and stdio, our spool code) and checked
 * by running the whole integration suite, normal and ASan builds, with
 * the trap handler below reporting anything missing.  Calls that only
 * a sanitizer makes while reporting (readlink of /proc/self/exe) are
 * allowed in every build: they give nothing away.
 *
 * clone is allowed only with CLONE_THREAD (pthread_create); clone3
 * cannot be filtered by its flags (they are behind a pointer), so it
 * fails with ENOSYS and glibc falls back to clone.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

#include <seccomp.h>

#include "../lib/log.h"
#include "sandbox.h"

static void	sandbox_trap(int, siginfo_t *, void *);
static size_t	fmt_uint(char *, unsigned long);

/* what every sandboxed role needs */
static const int common_calls[] = {
	/* I/O on descriptors it has */
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(lseek),
	SCMP_SYS(close), SCMP_SYS(dup), SCMP_SYS(dup2), SCMP_SYS(dup3),
	SCMP_SYS(fcntl), SCMP_SYS(ioctl), SCMP_SYS(fstat),
	SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(fstatfs),
	SCMP_SYS(statfs), SCMP_SYS(fsync), SCMP_SYS(fdatasync),
	SCMP_SYS(openat), SCMP_SYS(readlink), SCMP_SYS(readlinkat),
	/* sockets: IPC with the queue, DNS, syslog */
	SCMP_SYS(socket), SCMP_SYS(connect), SCMP_SYS(bind),
	SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(recvfrom),
	SCMP_SYS(sendto), SCMP_SYS(recvmmsg), SCMP_SYS(sendmmsg),
	SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(getsockname),
	SCMP_SYS(getpeername), SCMP_SYS(shutdown), SCMP_SYS(socketpair),
	SCMP_SYS(pipe2), SCMP_SYS(eventfd2),
	/* the event loop */
	SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait), SCMP_SYS(poll), SCMP_SYS(ppoll),
	SCMP_SYS(select), SCMP_SYS(pselect6),
	SCMP_SYS(timerfd_create), SCMP_SYS(timerfd_settime),
	/* memory */
	SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap),
	SCMP_SYS(mprotect), SCMP_SYS(madvise),
	/* threads, time, signals, randomness */
	SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(get_robust_list),
	SCMP_SYS(rseq), SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
	SCMP_SYS(set_tid_address), SCMP_SYS(clock_gettime),
	SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday), SCMP_SYS(time),
	SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack),
	SCMP_SYS(restart_syscall), SCMP_SYS(getrandom),
	/* who am I (OpenSSL, glibc, logs) */
	SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getppid),
	SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid),
	SCMP_SYS(getegid), SCMP_SYS(uname), SCMP_SYS(getrlimit),
	SCMP_SYS(prlimit64), SCMP_SYS(getrusage), SCMP_SYS(sysinfo),
	/* ending: exit, and abort()/raise() for panics and the trap */
	SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(tgkill),
	SCMP_SYS(kill),
};

/* smtp-in: sessions and the spool (tmp/ -> incoming/) */
static const int smtp_in_calls[] = {
	SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(listen),
	SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(renameat2),
	SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(ftruncate),
	SCMP_SYS(fchmod), SCMP_SYS(umask),
	/* the listing of recycled files (spool.c, free/) */
	SCMP_SYS(getdents64),
};

/* the role's name for the trap's line (set before the filter) */
static const char	*trap_role = "";

/* sandbox_name - see sandbox.h */
const char *
sandbox_name(enum sandbox_role role)
{
	return role == SANDBOX_SMTP_IN ? "smtp-in" : "smtp-out";
}

/* sandbox_apply - see sandbox.h */
int
sandbox_apply(enum sandbox_role role)
{
	struct sigaction	 sa;
	scmp_filter_ctx		 ctx;
	const int		*extra;
	size_t			 i, nextra;
	int			 r;

	if (role == SANDBOX_SMTP_IN) {
		extra = smtp_in_calls;
		nextra = sizeof(smtp_in_calls) / sizeof(smtp_in_calls[0]);
	} else {
		/* smtp-out: what all have (connect, the passed files) */
		extra = NULL;
		nextra = 0;
	}
	trap_role = sandbox_name(role);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		log_warn("event=sandbox role=%s no_new_privs",
		    sandbox_name(role));
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sandbox_trap;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) == -1) {
		log_warn("event=sandbox role=%s sigaction", sandbox_name(role));
		return -1;
	}
	if ((ctx = seccomp_init(SCMP_ACT_TRAP)) == NULL) {
		log_warnx("event=sandbox role=%s reason=\"seccomp_init "
		    "failed\"", sandbox_name(role));
		return -1;
	}
	r = 0;
	for (i = 0; r == 0 && i < sizeof(common_calls) /
	    sizeof(common_calls[0]); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, common_calls[i], 0);
	for (i = 0; r == 0 && i < nextra; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, extra[i], 0);
	/* threads only: a new process could escape nothing, but need not be */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
		    SCMP_SYS(clone3), 0);
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	if (r != 0) {
		errno = -r;
		log_warn("event=sandbox role=%s seccomp", sandbox_name(role));
		return -1;
	}
	return 0;
}

/*
 * sandbox_trap - SIGSYS from the filter: say which call, then die by
 * the signal (SA_RESETHAND restored the default action).  Only
 * async-signal-safe calls, all of them allowed by the filter.
 */
static void
sandbox_trap(int sig, siginfo_t *si, void *uc)
{
	char	 line[128];
	size_t	 n, rl = strlen(trap_role);

	(void)uc;
	if (rl > 32)
		rl = 32;
	memcpy(line, trap_role, rl);
	memcpy(line + rl, ": event=seccomp_violation syscall=", 34);
	n = rl + 34;
	n += fmt_uint(line + n, (unsigned long)si->si_syscall);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nothing more can be done about it here */
	}
	(void)raise(sig);
	_exit(128 + sig);
}

/* fmt_uint - decimal digits of v into p (at most 20); their count */
static size_t
fmt_uint(char *p, unsigned long v)
{
	char	 t[20];
	size_t	 n = 0, i;

	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0 && n < sizeof(t));
	for (i = 0; i < n; i++)
		p[i] = t[n - 1 - i];
	return n;
}
