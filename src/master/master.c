/*
 * master.c - the root master: bind, spawn, supervise, reload, stop.
 *
 * The master never talks to the network.  It parses the config, creates
 * the spool, binds every listener and the control socket, loads the TLS
 * key, and forks the roles (src/common/role.h):
 *
 *   smtp-in   chrooted into the spool, unprivileged, the listeners
 *   queue     chrooted into the spool, unprivileged, the control socket
 *   local     unprivileged, not chrooted (writes Maildirs)
 *   smtp-out  chrooted into the spool, unprivileged; its resolver and
 *             client TLS context are set up as root just before the
 *             drop (smtp_out_preinit), the message files come from
 *             the queue as passed descriptors
 *
 * queue, local and smtp-out are a "delivery group": the queue shares a
 * socketpair with each of the other two, made for that generation, so
 * when one of them dies the others are stopped and all three are
 * started again together.
 *
 * Supervision is a plain loop on sigtimedwait(): signals are blocked in
 * the master and waited for synchronously, so there is no async-signal
 * code at all.  A role that exits while it should run is restarted after
 * a backoff that doubles on quick crashes (250 ms up to 30 s) and is
 * reset once the role has stayed up for STABLE_MS.
 *
 * Reload (SIGHUP): the new config is parsed completely first; on any
 * error the old one stays and the errors are logged.  Otherwise a new
 * smtp-in starts on the (re)bound listeners, the old one drains
 * (SIGUSR2: finishes its sessions), and the delivery group is restarted.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "lib/log.h"
#include "lib/util.h"
#include "common/config.h"
#include "common/control.h"
#include "common/role.h"
#include "common/sandbox.h"
#include "common/spool.h"
#include "common/stats.h"
#include "master/master.h"
#include "master/tls.h"

#define MAX_PROCS	32
#define BACKOFF_MIN_MS	250
#define BACKOFF_MAX_MS	30000
#define STABLE_MS	30000
#define STOP_GRACE_MS	20000
#define LISTEN_BACKLOG	1024

enum role {
	ROLE_SMTP_IN,
	ROLE_QUEUE,
	ROLE_LOCAL,
	ROLE_SMTP_OUT
};

enum pstate {
	PS_RUNNING,	/* restarted if it exits */
	PS_DRAINING,	/* old smtp-in finishing its sessions */
	PS_STOPPING	/* asked to stop; not restarted */
};

struct proc {
	enum role	 role;
	pid_t		 pid;
	enum pstate	 state;
	long long	 started;	/* monotonic ms */
};

struct master {
	const char	*conf_path;
	struct config	*conf;
	struct listener	*listeners;
	size_t		 nlisteners;
	int		 control_fd;
	void		*tls_ctx;
	int		 root;
	uid_t		 uid;
	gid_t		 gid;
	struct proc	 procs[MAX_PROCS];
	size_t		 nprocs;
	long long	 smtp_restart_at;
	long long	 smtp_backoff;
	long long	 group_restart_at;
	long long	 group_backoff;
	int		 stopping;
	long long	 stop_deadline;
	char		 pidfile[4096];
};

static pid_t		 master_pid;

static const char *const role_names[] = {
	[ROLE_SMTP_IN] = "smtp-in",
	[ROLE_QUEUE] = "queue",
	[ROLE_LOCAL] = "local",
	[ROLE_SMTP_OUT] = "smtp-out",
};

static void	master_free(struct master *);
static void	raise_nofile(void);
static void	spool_clean_tmp(const char *);
static int	master_identity(struct master *);
static int	pidfile_write(struct master *);
static int	listeners_open(struct master *, struct config *,
		    struct listener **, size_t *);
static int	listener_add(struct listener **, size_t *, size_t *,
		    const struct listen_addr *, enum listener_kind,
		    const struct listener *, size_t);
static int	listen_bind(const struct listen_addr *);
static void	listeners_close(struct listener *, size_t,
		    const struct listener *, size_t);
static int	control_open(struct master *);
static int	tls_open(struct config *, void **);
static void	spawn_smtp_in(struct master *);
static void	spawn_group(struct master *);
/* the delivery group's socketpairs: queue-local and queue-smtp-out */
struct gfds {
	int	 ql, lq;	/* queue's end, local's end */
	int	 qo, oq;	/* queue's end, smtp-out's end */
};

static pid_t	spawn(struct master *, enum role, const struct gfds *);
static void	child_setup(struct master *, enum role, struct role_ctx *,
		    const struct gfds *) __attribute__((noreturn));
static void	gfd_keep(int, int);
static void	privdrop(struct master *, struct role_ctx *, int);
static void	reap(struct master *);
static void	proc_exited(struct master *, struct proc *, int);
static struct proc *proc_find(struct master *, enum role, enum pstate);
static void	proc_signal_all(struct master *, int);
static void	reconcile(struct master *);
static void	reload(struct master *);
static void	log_config_errors(char *, size_t);

/* master_run - see master.h */
int
master_run(const char *conf_path, struct config *conf)
{
	struct master	 m;
	sigset_t	 set;
	siginfo_t	 info;
	struct timespec	 ts = { 0, 200 * 1000 * 1000 };
	int		 sig;

	memset(&m, 0, sizeof(m));
	master_pid = getpid();
	m.conf_path = conf_path;
	m.conf = conf;
	m.control_fd = -1;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		fatal("event=start sigprocmask");
	signal(SIGPIPE, SIG_IGN);

	if (master_identity(&m) == -1)
		goto fail;
	raise_nofile();
	if (spool_create(conf->spool_dir, m.uid, m.gid) == -1)
		fatalx("event=start reason=\"cannot create spool %s\"",
		    conf->spool_dir);
	if (pidfile_write(&m) == -1)
		goto fail;
	spool_clean_tmp(conf->spool_dir);
	if (stats_init() == -1)
		fatal("event=start stats_init");
	if (listeners_open(&m, conf, &m.listeners, &m.nlisteners) == -1 ||
	    control_open(&m) == -1 || tls_open(conf, &m.tls_ctx) == -1) {
		unlink(m.pidfile);
		goto fail;
	}
	log_info("event=start hostname=%s spool=%s user=%s uid=%u "
	    "listeners=%zu tls=%s", conf->hostname, conf->spool_dir,
	    m.root ? conf->user : "(self)", (unsigned)m.uid, m.nlisteners,
	    m.tls_ctx ? "yes" : "no");
	if (!m.root)
		log_info("event=start note=\"not started as root: roles run "
		    "as uid %u without chroot\"", (unsigned)m.uid);

	for (;;) {
		reap(&m);
		if (m.stopping && m.nprocs == 0)
			break;
		if (m.stopping && mono_ms() > m.stop_deadline) {
			log_warnx("event=stop reason=\"roles did not stop in "
			    "time, killing\"");
			proc_signal_all(&m, SIGKILL);
			m.stop_deadline = mono_ms() + STOP_GRACE_MS;
		}
		if (!m.stopping)
			reconcile(&m);
		sig = sigtimedwait(&set, &info, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			if (!m.stopping) {
				log_info("event=stop signal=%s",
				    sig == SIGTERM ? "TERM" : "INT");
				m.stopping = 1;
				m.stop_deadline = mono_ms() + STOP_GRACE_MS;
				proc_signal_all(&m, SIGTERM);
			}
		} else if (sig == SIGHUP && !m.stopping)
			reload(&m);
	}
	unlink(m.pidfile);
	master_free(&m);
	log_info("event=stopped");
	return 0;
fail:
	master_free(&m);
	return 1;
}

/*
 * master_free - give everything back at the end, so that a leak check
 * at exit (make integration-lsan) sees only real leaks.
 */
static void
master_free(struct master *m)
{
	listeners_close(m->listeners, m->nlisteners, NULL, 0);
	free(m->listeners);
	m->listeners = NULL;
	m->nlisteners = 0;
	if (m->tls_ctx != NULL)
		tls_ctx_free(m->tls_ctx);
	m->tls_ctx = NULL;
	if (m->control_fd != -1)
		close(m->control_fd);
	m->control_fd = -1;
	config_free(m->conf);
	m->conf = NULL;
}

/* raise_nofile - sessions need descriptors: soft limit up to the hard */
static void
raise_nofile(void)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("event=start setrlimit NOFILE");
	}
}

/*
 * spool_clean_tmp - before any role runs, every file in tmp/ is the
 * remains of a transaction that never got its 250 (a crash or kill):
 * remove them, so that they can never be taken for mail.
 */
static void
spool_clean_tmp(const char *spool)
{
	DIR		*d;
	struct dirent	*e;
	int		 dfd;
	size_t		 n = 0;
	char		 path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s/tmp", spool) >=
	    sizeof(path))
		return;
	if ((d = opendir(path)) == NULL)
		return;
	dfd = dirfd(d);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (unlinkat(dfd, e->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	if (n > 0)
		log_info("event=start removed_unfinished=%zu dir=tmp", n);
}

/* master_identity - root runs roles as conf->user, others as themselves */
static int
master_identity(struct master *m)
{
	struct passwd	*pw;

	m->root = geteuid() == 0;
	if (!m->root) {
		m->uid = geteuid();
		m->gid = getegid();
		return 0;
	}
	if ((pw = getpwnam(m->conf->user)) == NULL) {
		log_warnx("event=start reason=\"user %s does not exist\"",
		    m->conf->user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		log_warnx("event=start reason=\"user %s is root: refusing\"",
		    m->conf->user);
		return -1;
	}
	m->uid = pw->pw_uid;
	m->gid = pw->pw_gid;
	return 0;
}

/* pidfile_write - SPOOL/moatd.pid; refuse if another moatd holds it */
static int
pidfile_write(struct master *m)
{
	char	 buf[32], exe[64], target[4096];
	int	 fd, n;
	long	 pid;
	ssize_t	 r;

	n = snprintf(m->pidfile, sizeof(m->pidfile), "%s/%s",
	    m->conf->spool_dir, CONTROL_PIDFILE);
	if (n < 0 || (size_t)n >= sizeof(m->pidfile)) {
		log_warnx("event=start reason=\"spool path too long\"");
		return -1;
	}
	if ((fd = open(m->pidfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) != -1) {
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r > 0) {
			buf[r] = '\0';
			pid = strtol(buf, NULL, 10);
			n = snprintf(exe, sizeof(exe), "/proc/%ld/exe", pid);
			if (pid > 0 && pid != getpid() && kill(pid, 0) == 0 &&
			    n > 0 && (size_t)n < sizeof(exe) &&
			    (r = readlink(exe, target, sizeof(target) - 1)) > 0) {
				target[r] = '\0';
				if (strstr(target, "moatd") != NULL) {
					log_warnx("event=start reason=\"moatd "
					    "already running with this spool "
					    "(pid %ld)\"", pid);
					return -1;
				}
			}
		}
	}
	fd = open(m->pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0644);
	if (fd == -1) {
		log_warn("event=start file=%s", m->pidfile);
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write_all(fd, buf, (size_t)n) == -1) {
		log_warn("event=start file=%s", m->pidfile);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * listeners_open - bind every listener of conf, reusing the sockets of
 * m->listeners bound to the same address (reload keeps them open).
 */
static int
listeners_open(struct master *m, struct config *conf,
    struct listener **out, size_t *nout)
{
	struct listener	*v = NULL;
	size_t		 n = 0, cap = 0, i;

	for (i = 0; i < conf->nlisten; i++)
		if (listener_add(&v, &n, &cap, &conf->listen[i], LK_MX,
		    m->listeners, m->nlisteners) == -1)
			goto fail;
	for (i = 0; i < conf->nsubmission_listen; i++)
		if (listener_add(&v, &n, &cap, &conf->submission_listen[i],
		    LK_SUBMISSION, m->listeners, m->nlisteners) == -1)
			goto fail;
	for (i = 0; i < conf->nsmtps_listen; i++)
		if (listener_add(&v, &n, &cap, &conf->smtps_listen[i],
		    LK_SMTPS, m->listeners, m->nlisteners) == -1)
			goto fail;
	*out = v;
	*nout = n;
	return 0;
fail:
	listeners_close(v, n, m->listeners, m->nlisteners);
	free(v);
	return -1;
}

static int
listener_add(struct listener **v, size_t *n, size_t *cap,
    const struct listen_addr *a, enum listener_kind kind,
    const struct listener *old, size_t nold)
{
	struct listener	*nv;
	size_t		 i;
	int		 fd = -1;

	for (i = 0; i < *n; i++)
		if ((*v)[i].addr->sslen == a->sslen &&
		    memcmp(&(*v)[i].addr->ss, &a->ss, a->sslen) == 0) {
			log_warnx("event=start reason=\"address %s listed "
			    "twice\"", a->text);
			return -1;
		}
	for (i = 0; i < nold; i++)
		if (old[i].addr->sslen == a->sslen &&
		    memcmp(&old[i].addr->ss, &a->ss, a->sslen) == 0)
			fd = old[i].fd;
	if (fd == -1 && (fd = listen_bind(a)) == -1)
		return -1;
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		if ((nv = reallocarray(*v, *cap, sizeof(**v))) == NULL)
			fatal("event=start listeners");
		*v = nv;
	}
	(*v)[*n].fd = fd;
	(*v)[*n].kind = kind;
	(*v)[*n].addr = a;
	(*n)++;
	return 0;
}

static int
listen_bind(const struct listen_addr *a)
{
	int	 fd, on = 1;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_warn("event=listen addr=%s socket", a->text);
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	/*
	 * Linux gives accepted sockets the listener's TCP_NODELAY: smtp-in
	 * writes its replies in whole batches, which Nagle would only delay
	 */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (a->ss.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
		    sizeof(on));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->sslen) == -1 ||
	    listen(fd, LISTEN_BACKLOG) == -1) {
		log_warn("event=listen addr=%s", a->text);
		close(fd);
		return -1;
	}
	return fd;
}

/* listeners_close - close the sockets of v not also in keep */
static void
listeners_close(struct listener *v, size_t n, const struct listener *keep,
    size_t nkeep)
{
	size_t	 i, j;
	int	 kept;

	for (i = 0; i < n; i++) {
		kept = 0;
		for (j = 0; j < nkeep; j++)
			if (keep[j].fd == v[i].fd)
				kept = 1;
		if (!kept)
			close(v[i].fd);
	}
}

/* control_open - SPOOL/control, owned by the role user, mode 0600 */
static int
control_open(struct master *m)
{
	struct sockaddr_un	 sun;
	int			 fd, n;
	mode_t			 old;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s",
	    m->conf->spool_dir, CONTROL_SOCKET);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
		log_warnx("event=start reason=\"spool_dir too long for the "
		    "control socket path\"");
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_warn("event=start control socket");
		return -1;
	}
	(void)unlink(sun.sun_path);
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		log_warn("event=start control=%s", sun.sun_path);
		close(fd);
		return -1;
	}
	umask(old);
	if ((m->root && chown(sun.sun_path, m->uid, m->gid) == -1) ||
	    chmod(sun.sun_path, 0600) == -1 || listen(fd, 16) == -1) {
		log_warn("event=start control=%s", sun.sun_path);
		close(fd);
		return -1;
	}
	m->control_fd = fd;
	return 0;
}

/* tls_open - load the server key pair if the config names one */
static int
tls_open(struct config *conf, void **ctx)
{
	char	 err[512];

	*ctx = NULL;
	if (conf->tls_cert_file == NULL && conf->tls_key_file == NULL)
		return 0;
	if (conf->tls_cert_file == NULL || conf->tls_key_file == NULL) {
		log_warnx("event=tls reason=\"tls_cert_file and tls_key_file "
		    "go together\"");
		return -1;
	}
	*ctx = tls_server_ctx_load(conf->tls_cert_file, conf->tls_key_file,
	    err, sizeof(err));
	if (*ctx == NULL) {
		log_warnx("event=tls reason=\"%s\"", err);
		return -1;
	}
	return 0;
}

static void
spawn_smtp_in(struct master *m)
{
	static const struct gfds none = { -1, -1, -1, -1 };

	(void)spawn(m, ROLE_SMTP_IN, &none);
}

/*
 * spawn_group - queue, local and smtp-out, joined by fresh socketpairs.
 * If one of them cannot be forked, reconcile() sees half a group and
 * stops the rest.
 */
static void
spawn_group(struct master *m)
{
	struct gfds	 g;
	int		 a[2], b[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, a) == -1) {
		log_warn("event=spawn role=queue socketpair");
		m->group_restart_at = mono_ms() + BACKOFF_MAX_MS;
		return;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, b) == -1) {
		log_warn("event=spawn role=queue socketpair");
		close(a[0]);
		close(a[1]);
		m->group_restart_at = mono_ms() + BACKOFF_MAX_MS;
		return;
	}
	g.ql = a[0];
	g.lq = a[1];
	g.qo = b[0];
	g.oq = b[1];
	if (spawn(m, ROLE_QUEUE, &g) != -1 &&
	    spawn(m, ROLE_LOCAL, &g) != -1)
		(void)spawn(m, ROLE_SMTP_OUT, &g);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}

/* spawn - fork one role with its ends of the group pairs */
static pid_t
spawn(struct master *m, enum role role, const struct gfds *g)
{
	struct role_ctx	 ctx;
	pid_t		 pid;

	if (m->nprocs == MAX_PROCS) {
		log_warnx("event=spawn role=%s reason=\"process table full\"",
		    role_names[role]);
		return -1;
	}
	switch ((pid = fork())) {
	case -1:
		log_warn("event=spawn role=%s", role_names[role]);
		return -1;
	case 0:
		child_setup(m, role, &ctx, g);
	default:
		break;
	}
	m->procs[m->nprocs].role = role;
	m->procs[m->nprocs].pid = pid;
	m->procs[m->nprocs].state = PS_RUNNING;
	m->procs[m->nprocs].started = mono_ms();
	m->nprocs++;
	log_info("event=spawn role=%s pid=%ld", role_names[role], (long)pid);
	return pid;
}

/* gfd_keep - close fd unless it is keep (-1 = nothing to close) */
static void
gfd_keep(int fd, int keep)
{
	if (fd != -1 && !keep)
		close(fd);
}

/* child_setup - in the new process: signals, fds, privileges, run */
static void
child_setup(struct master *m, enum role role, struct role_ctx *ctx,
    const struct gfds *g)
{
	sigset_t	 none;
	size_t		 i;

	log_setproc(role_names[role]);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGHUP, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	memset(ctx, 0, sizeof(*ctx));
	ctx->conf = m->conf;
	ctx->control_fd = -1;
	ctx->local_sock = -1;
	ctx->out_sock = -1;
	gfd_keep(g->ql, role == ROLE_QUEUE);
	gfd_keep(g->qo, role == ROLE_QUEUE);
	gfd_keep(g->lq, role == ROLE_LOCAL);
	gfd_keep(g->oq, role == ROLE_SMTP_OUT);
	if (role == ROLE_QUEUE) {
		ctx->local_sock = g->ql;
		ctx->out_sock = g->qo;
	} else if (role == ROLE_LOCAL)
		ctx->local_sock = g->lq;
	else if (role == ROLE_SMTP_OUT)
		ctx->out_sock = g->oq;
	if (role == ROLE_SMTP_IN) {
		ctx->listeners = m->listeners;
		ctx->nlisteners = m->nlisteners;
		ctx->tls_ctx = m->tls_ctx;
		close(m->control_fd);
	} else {
		/* the private key stays with smtp-in (and the master) only:
		   OpenSSL clears key material when it frees it */
		if (m->tls_ctx != NULL)
			tls_ctx_free(m->tls_ctx);
		m->tls_ctx = NULL;
		for (i = 0; i < m->nlisteners; i++)
			close(m->listeners[i].fd);
		ctx->listeners = NULL;
		ctx->nlisteners = 0;
		if (role == ROLE_QUEUE)
			ctx->control_fd = m->control_fd;
		else
			close(m->control_fd);
	}
	if (role == ROLE_SMTP_OUT)
		smtp_out_preinit(ctx);
	else if (role == ROLE_SMTP_IN)
		smtp_in_preinit(ctx);
	privdrop(m, ctx, role != ROLE_LOCAL);
	/*
	 * After privdrop: the kernel clears the parent-death signal when
	 * the credentials change (commit_creds).  The check after it
	 * closes the race with a master that died in between.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
		fatal("event=start prctl");
	if (getppid() != master_pid)
		fatalx("event=start reason=\"master went away\"");
	/*
	 * No core file, no ptrace by the same user (DESIGN.md 1).
	 * sandbox = no is for LeakSanitizer runs only (config.c): its
	 * leak check stops the process with ptrace, which neither this
	 * nor the seccomp filter allow.
	 */
	if (m->conf->sandbox && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		fatal("event=start prctl dumpable");
	if (m->conf->sandbox && role == ROLE_SMTP_IN &&
	    sandbox_apply(SANDBOX_SMTP_IN) == -1)
		fatalx("event=start reason=\"cannot install the sandbox\"");
	if (m->conf->sandbox && role == ROLE_SMTP_OUT &&
	    sandbox_apply(SANDBOX_SMTP_OUT) == -1)
		fatalx("event=start reason=\"cannot install the sandbox\"");
	switch (role) {
	case ROLE_SMTP_IN:
		smtp_in_run(ctx);
	case ROLE_QUEUE:
		queue_run(ctx);
	case ROLE_LOCAL:
		local_run(ctx);
	case ROLE_SMTP_OUT:
		smtp_out_run(ctx);
	}
	panic("event=start reason=\"unknown role %d\"", (int)role);
}

/*
 * privdrop - cwd = spool; if root: chroot there (chrooted roles), drop
 * supplementary groups, set all three gids and uids, and prove that
 * root cannot be regained.
 */
static void
privdrop(struct master *m, struct role_ctx *ctx, int want_chroot)
{
	struct rlimit	 rl = { 0, 0 };

	if (chdir(m->conf->spool_dir) == -1)
		fatal("event=start chdir=%s", m->conf->spool_dir);
	if (!m->root) {
		ctx->chrooted = 0;
		return;
	}
	if (want_chroot) {
		if (chroot(".") == -1 || chdir("/") == -1)
			fatal("event=start chroot=%s", m->conf->spool_dir);
		ctx->chrooted = 1;
	}
	if (setgroups(1, &m->gid) == -1 ||
	    setresgid(m->gid, m->gid, m->gid) == -1 ||
	    setresuid(m->uid, m->uid, m->uid) == -1)
		fatal("event=start reason=\"cannot drop privileges\"");
	if (setuid(0) != -1 || seteuid(0) != -1)
		fatalx("event=start reason=\"could regain root after "
		    "dropping privileges\"");
	/* no core file may hold key material or mail (DESIGN.md 1) */
	(void)setrlimit(RLIMIT_CORE, &rl);
}

/* reap - collect every exited child */
static void
reap(struct master *m)
{
	pid_t	 pid;
	int	 status;
	size_t	 i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < m->nprocs; i++)
			if (m->procs[i].pid == pid)
				break;
		if (i == m->nprocs)
			continue;
		proc_exited(m, &m->procs[i], status);
		m->procs[i] = m->procs[--m->nprocs];
	}
}

static void
proc_exited(struct master *m, struct proc *p, int status)
{
	long long	 ran = mono_ms() - p->started, *backoff, *at;
	char		 how[32];

	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "signal=%d", WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "exit=%d", WEXITSTATUS(status));
	if (p->state != PS_RUNNING || m->stopping) {
		log_info("event=role_exit role=%s pid=%ld %s",
		    role_names[p->role], (long)p->pid, how);
		return;
	}
	if (p->role == ROLE_SMTP_IN) {
		backoff = &m->smtp_backoff;
		at = &m->smtp_restart_at;
	} else {
		backoff = &m->group_backoff;
		at = &m->group_restart_at;
	}
	if (ran >= STABLE_MS || *backoff == 0)
		*backoff = BACKOFF_MIN_MS;
	else if ((*backoff *= 2) > BACKOFF_MAX_MS)
		*backoff = BACKOFF_MAX_MS;
	*at = mono_ms() + *backoff;
	STATS_ADD(restarts, 1);
	log_warnx("event=role_exit role=%s pid=%ld %s restart_in=%lldms",
	    role_names[p->role], (long)p->pid, how, *backoff);
}

static struct proc *
proc_find(struct master *m, enum role role, enum pstate state)
{
	size_t	 i;

	for (i = 0; i < m->nprocs; i++)
		if (m->procs[i].role == role && m->procs[i].state == state)
			return &m->procs[i];
	return NULL;
}

static void
proc_signal_all(struct master *m, int sig)
{
	size_t	 i;

	for (i = 0; i < m->nprocs; i++)
		(void)kill(m->procs[i].pid, sig);
}

/* reconcile - start what should run; keep the delivery group whole */
static void
reconcile(struct master *m)
{
	static const enum role	 group[] = {
		ROLE_QUEUE, ROLE_LOCAL, ROLE_SMTP_OUT
	};
	struct proc		*p;
	long long		 now = mono_ms();
	size_t			 i, running = 0, stopping = 0;

	if (proc_find(m, ROLE_SMTP_IN, PS_RUNNING) == NULL &&
	    now >= m->smtp_restart_at)
		spawn_smtp_in(m);
	for (i = 0; i < sizeof(group) / sizeof(group[0]); i++) {
		if (proc_find(m, group[i], PS_RUNNING) != NULL)
			running++;
		if (proc_find(m, group[i], PS_STOPPING) != NULL)
			stopping++;
	}
	if (running > 0 && running < sizeof(group) / sizeof(group[0])) {
		/* part of a group: stop the rest, restart all together */
		for (i = 0; i < sizeof(group) / sizeof(group[0]); i++)
			if ((p = proc_find(m, group[i], PS_RUNNING)) != NULL) {
				p->state = PS_STOPPING;
				(void)kill(p->pid, SIGTERM);
			}
		return;
	}
	if (running == 0 && stopping == 0 && now >= m->group_restart_at)
		spawn_group(m);
}

/* reload - SIGHUP: new config, listeners and key, or keep the old ones */
static void
reload(struct master *m)
{
	struct config	*nc;
	struct listener	*nl;
	size_t		 nnl, i;
	void		*ntls;
	char		*errs = NULL;
	size_t		 errlen = 0;
	FILE		*errf;

	log_info("event=reload file=%s", m->conf_path);
	if ((errf = open_memstream(&errs, &errlen)) == NULL) {
		log_warn("event=reload_failed");
		return;
	}
	nc = config_load(m->conf_path, errf);
	fclose(errf);
	if (nc == NULL) {
		log_config_errors(errs, errlen);
		free(errs);
		log_warnx("event=reload_failed reason=\"config errors; "
		    "keeping the running config\"");
		return;
	}
	free(errs);
	if (strcmp(nc->spool_dir, m->conf->spool_dir) != 0 ||
	    strcmp(nc->user, m->conf->user) != 0) {
		log_warnx("event=reload_failed reason=\"spool_dir and user "
		    "change only with a restart\"");
		config_free(nc);
		return;
	}
	if (tls_open(nc, &ntls) == -1) {
		log_warnx("event=reload_failed reason=\"TLS key pair not "
		    "usable; keeping the running config\"");
		config_free(nc);
		return;
	}
	if (listeners_open(m, nc, &nl, &nnl) == -1) {
		log_warnx("event=reload_failed reason=\"cannot bind the new "
		    "listeners; keeping the running config\"");
		tls_ctx_free(ntls);
		config_free(nc);
		return;
	}
	listeners_close(m->listeners, m->nlisteners, nl, nnl);
	free(m->listeners);
	m->listeners = nl;
	m->nlisteners = nnl;
	if (m->tls_ctx)
		tls_ctx_free(m->tls_ctx);
	m->tls_ctx = ntls;
	config_free(m->conf);
	m->conf = nc;

	/* old smtp-in drains, a new one takes the listeners */
	for (i = 0; i < m->nprocs; i++) {
		if (m->procs[i].state != PS_RUNNING)
			continue;
		if (m->procs[i].role == ROLE_SMTP_IN) {
			m->procs[i].state = PS_DRAINING;
			(void)kill(m->procs[i].pid, SIGUSR2);
		} else {
			m->procs[i].state = PS_STOPPING;
			(void)kill(m->procs[i].pid, SIGTERM);
		}
	}
	m->smtp_restart_at = m->group_restart_at = 0;
	log_info("event=reloaded listeners=%zu tls=%s", m->nlisteners,
	    m->tls_ctx ? "yes" : "no");
}

/* log_config_errors - one log line per "FILE:LINE: reason" line */
static void
log_config_errors(char *errs, size_t len)
{
	char	*line, *nl, safe[512];

	for (line = errs; line < errs + len; line = nl + 1) {
		if ((nl = memchr(line, '\n', (size_t)(errs + len - line))) ==
		    NULL)
			nl = errs + len;
		if (nl > line)
			log_warnx("event=config_error error=\"%s\"",
			    log_sanitize_text(line, (size_t)(nl - line), safe,
			    sizeof(safe)));
	}
}
