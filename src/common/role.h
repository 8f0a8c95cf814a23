/*
 * role.h - what the master hands each role process.
 *
 * The master (root) parses the config, creates the spool, binds the
 * listeners and the control socket, loads TLS keys, creates the
 * socketpairs, then forks.  In the child it drops privileges (chdir to
 * the spool; chroot(".") there for chrooted roles when root;
 * setgroups, setresgid, setresuid to `user`; checks that setuid(0)
 * fails) and only then calls the role's *_run(), which never returns.
 *
 * Signals every role handles (through its event loop):
 *   SIGTERM  stop now: smtp-in answers 421 to every session and aborts
 *            unfinished transactions; queue waits (bounded) for
 *            deliveries in flight, then exits 0.
 *   SIGUSR2  (smtp-in only) drain: close the listeners, let sessions
 *            finish (normal timeouts apply), exit 0 when none is left.
 *            Used for SIGHUP reload: a new smtp-in with the new config
 *            takes over the same listening sockets.
 * Roles set PR_SET_PDEATHSIG(SIGTERM) so that they never outlive the
 * master.  A role exits non-zero only on fatal errors; the master then
 * restarts it with backoff.
 */
#ifndef MOAT_ROLE_H
#define MOAT_ROLE_H

#include <stddef.h>

#include "config.h"

enum listener_kind {
	LK_MX,		/* listen: port 25 service */
	LK_SUBMISSION,	/* submission_listen: STARTTLS + AUTH required */
	LK_SMTPS	/* smtps_listen: implicit TLS + AUTH */
};

struct listener {
	int			 fd;	/* bound, listening, non-blocking */
	enum listener_kind	 kind;
	const struct listen_addr *addr;	/* into the config */
};

struct role_ctx {
	struct config	*conf;
	int		 chrooted;	/* cwd is "/" = the spool */
	/* smtp-in */
	struct listener	*listeners;
	size_t		 nlisteners;
	void		*tls_ctx;	/* SSL_CTX * or NULL; loaded as root */
	/* queue */
	int		 control_fd;	/* listening unix socket "control" */
	int		 local_sock;	/* SOCK_SEQPACKET to local delivery */
	int		 out_sock;	/* SOCK_SEQPACKET queue <-> smtp-out */
	/* smtp-out: made by smtp_out_preinit() before the privilege drop */
	void		*out_state;
};

/*
 * smtp_in_preinit - what smtp-in needs from outside the chroot, done
 * before privdrop: its event base and, when a policy check needs DNS,
 * dns_init() (reads /etc/resolv.conf).  Exits on failure.
 */
void	smtp_in_preinit(struct role_ctx *);
void	smtp_in_run(struct role_ctx *) __attribute__((noreturn));
void	queue_run(struct role_ctx *) __attribute__((noreturn));
void	local_run(struct role_ctx *) __attribute__((noreturn));
/*
 * smtp_out_preinit - what smtp-out needs from outside the chroot, done
 * as root before privdrop: the event base, dns_init() (reads
 * /etc/resolv.conf), the client SSL_CTX with tls_ca_file.  Stores its
 * state in ctx->out_state; exits on failure.
 */
void	smtp_out_preinit(struct role_ctx *);
void	smtp_out_run(struct role_ctx *) __attribute__((noreturn));

#endif
