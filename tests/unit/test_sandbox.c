/*
 * test_sandbox.c - the seccomp filters of src/common/sandbox.c: allowed
 * work goes on, forbidden calls (execve, fork, setuid, ptrace, chroot)
 * kill the process with SIGSYS.  Each case runs in a child process.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "common/sandbox.h"
#include "unit.h"

static int	 run(enum sandbox_role, void (*)(void));
static void	*thread_main(void *);
static void	 do_allowed(void);
static void	 do_execve(void);
static void	 do_fork(void);
static void	 do_setuid(void);
static void	 do_ptrace(void);
static void	 do_chroot(void);

/* run - fn in a sandboxed child; its wait status */
static int
run(enum sandbox_role role, void (*fn)(void))
{
	pid_t	 pid;
	int	 st;

	fflush(stdout);
	if ((pid = fork()) == -1) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		/* the trap's line would clutter the test output */
		int	 null = open("/dev/null", O_WRONLY);

		if (null != -1)
			dup2(null, STDERR_FILENO);
		if (sandbox_apply(role) == -1)
			_exit(3);
		fn();
		_exit(0);
	}
	if (waitpid(pid, &st, 0) == -1) {
		perror("waitpid");
		exit(2);
	}
	return st;
}

static void *
thread_main(void *arg)
{
	return arg;
}

/* do_allowed - what a role does all day */
static void
do_allowed(void)
{
	pthread_t	 t;
	void		*r;
	char		 b[16];
	int		 fd, sv[2];

	if ((fd = open("/dev/null", O_RDWR)) == -1 || write(fd, "x", 1) != 1 ||
	    read(fd, b, sizeof(b)) != 0 || close(fd) == -1)
		_exit(10);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == -1 ||
	    send(sv[0], "ab", 2, 0) != 2 || recv(sv[1], b, sizeof(b), 0) != 2)
		_exit(11);
	if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
		_exit(12);
	if (pthread_create(&t, NULL, thread_main, b) != 0 ||
	    pthread_join(t, &r) != 0 || r != b)
		_exit(13);
	free(malloc(1 << 20));
	(void)getpid();
}

static void
do_execve(void)
{
	char	*argv[] = { "/bin/true", NULL };

	execv("/bin/true", argv);
	_exit(20);
}

static void
do_fork(void)
{
	pid_t	 pid = fork();

	if (pid == 0)
		_exit(0);
	_exit(21);
}

static void
do_setuid(void)
{
	if (setuid(0) == -1)
		_exit(22);
	_exit(23);
}

static void
do_ptrace(void)
{
	(void)ptrace(PTRACE_TRACEME, 0, NULL, NULL);
	_exit(24);
}

static void
do_chroot(void)
{
	(void)chroot("/");
	_exit(25);
}

int
main(void)
{
	static const struct {
		const char	*name;
		void		(*fn)(void);
	} bad[] = {
		{ "execve", do_execve },
		{ "fork", do_fork },
		{ "setuid", do_setuid },
		{ "ptrace", do_ptrace },
		{ "chroot", do_chroot },
	};
	enum sandbox_role	 roles[] = { SANDBOX_SMTP_IN, SANDBOX_SMTP_OUT };
	size_t			 i, k;
	int			 st;

	for (k = 0; k < 2; k++) {
		st = run(roles[k], do_allowed);
		check(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "%s: allowed work: status %#x", sandbox_name(roles[k]), st);
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			st = run(roles[k], bad[i].fn);
			check(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
			    "%s: %s must die by SIGSYS: status %#x",
			    sandbox_name(roles[k]), bad[i].name, st);
		}
	}
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail > 0;
}
