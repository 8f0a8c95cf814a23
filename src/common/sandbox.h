/*
 * sandbox.h - least privilege beyond chroot: seccomp-bpf (libseccomp)
 * for the roles that talk to the network.
 *
 * The master calls sandbox_apply() in the new role process after the
 * privilege drop and before the role's *_run().  The filter is an
 * allow-list: every system call the role needs and nothing else.  No
 * execve, no fork (clone only for threads), no ptrace, no mount, no
 * set*id, no chroot, no file creation outside what the spool needs.
 * PR_SET_NO_NEW_PRIVS is set first (libseccomp would set it anyway).
 *
 * A forbidden call traps (SIGSYS): the handler writes one line
 * "event=seccomp_violation syscall=N" to stderr with write(2), then the
 * signal is raised again with its default action, so the role dies by
 * SIGSYS and the master restarts it (its log says signal=31).  With no
 * core dump (RLIMIT_CORE 0, not dumpable) no key or mail leaves in a
 * core file.
 */
#ifndef MOAT_SANDBOX_H
#define MOAT_SANDBOX_H

enum sandbox_role {
	SANDBOX_SMTP_IN,	/* accept, spool files in tmp/ and incoming/,
				   DNS (UDP/TCP sockets), worker threads */
	SANDBOX_SMTP_OUT	/* connect, DNS, reads passed message files */
};

/* sandbox_apply - install the filter for role; 0, or -1 (errno, logged) */
int	sandbox_apply(enum sandbox_role);

/* sandbox_name - "smtp-in", "smtp-out" */
const char *sandbox_name(enum sandbox_role);

#endif
