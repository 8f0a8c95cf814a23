/*
 * smtp_greylist.c - greylisting (greylist = yes) of untrusted clients.
 *
 * A recipient is refused with "450 4.7.1 Greylisted, try again later"
 * the first time a triplet (client network, sender, recipient) is seen;
 * a retry of the same triplet after greylist_delay and within
 * greylist_retry_window of the first attempt is accepted, and from then
 * on the triplet passes at once as long as it is used within
 * greylist_max_age.  Real MTAs retry (RFC 5321 4.5.4.1); most spam
 * engines do not.  The client network is the /24 of an IPv4 address or
 * the /64 of an IPv6 one, because large senders retry from another
 * host of the same pool.  A client whose triplets passed
 * greylist_auto_allow times (0 = never) is no longer greylisted, until
 * it has not passed for greylist_max_age.  relay_networks,
 * authenticated clients, the submission listeners and postmaster are
 * exempt.
 *
 * State: one table in memory, bounded (GL_MAX entries, the least
 * recently used goes first), kept in the spool as the text file
 * state/greylist.db ("FIRST LAST COUNT KEY" lines, times in seconds of
 * the epoch) so that it survives restarts.  It is read at the first
 * check and written, after a change, at most every GL_SAVE_SECONDS:
 * written to a temporary file, fsync'ed and renamed over the old one,
 * so a crash leaves the old or the new file, never a mix.  Changes of
 * the last GL_SAVE_SECONDS before a stop are lost: a few clients are
 * greylisted once more.
 *
 * Keys hold the sender and the recipient in lower case, as text
 * (readable by the admin); addresses never contain CR or LF (the
 * command parser refuses them), so one entry is one line.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/config.h"
#include "smtp_in.h"

#define GL_MAX		100000		/* entries kept */
#define GL_BUCKETS	16384
#define GL_KEY_MAX	(2 * (2 * ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 8) + 64)
#define GL_LINE_MAX	(GL_KEY_MAX + 80)
#define GL_SAVE_SECONDS	5
#define GL_COUNT_MAX	1000000		/* passes counted, at most */
#define GL_FILE		"state/greylist.db"
#define GL_TMP		"state/greylist.db.tmp"

struct gl_entry {
	struct gl_entry		*next;		/* hash chain */
	TAILQ_ENTRY(gl_entry)	 lru;		/* least recently used first */
	time_t			 first;		/* first attempt */
	time_t			 last;		/* last attempt or pass */
	unsigned		 count;		/* passes; 0 = greylisted */
	size_t			 keylen;
	char			 key[];		/* "T net from to", "C net" */
};

static void	gl_load(void);
static void	gl_save(void);
static void	gl_changed(void);
static void	gl_timer(evutil_socket_t, short, void *);
static int	gl_expired(const struct gl_entry *, time_t);
static struct gl_entry *gl_find(const char *, size_t);
static struct gl_entry *gl_add(const char *, size_t, time_t, time_t,
		    unsigned);
static void	gl_remove(struct gl_entry *);
static uint32_t	gl_hash(const char *, size_t);
static int	gl_net(const struct smtp_session *, char *, size_t);
static void	gl_credit(const char *, time_t);

static struct gl_entry	*gl_table[GL_BUCKETS];
static TAILQ_HEAD(, gl_entry) gl_lru = TAILQ_HEAD_INITIALIZER(gl_lru);
static size_t		 gl_count;
static int		 gl_loaded;
static struct event	*gl_ev;
static time_t		 gl_saved;	/* time of the last write */

/*
 * smtp_greylist_rcpt - the greylisting verdict for recipient a[0..n)
 * of the current transaction: 0 to go on, -1 answered 450 4.7.1
 */
int
smtp_greylist_rcpt(struct smtp_session *s, const char *a, size_t n)
{
	const struct config	*conf = smtp_srv->conf;
	struct gl_entry		*e, *c;
	char			 net[64], key[GL_KEY_MAX], la[GL_KEY_MAX];
	const char		*from;
	time_t			 now = time(NULL);
	int			 r;

	if (!conf->greylist || s->kind != LK_MX ||
	    (s->flags & (SF_RELAY | SF_AUTH)) || s->txn == NULL ||
	    gl_net(s, net, sizeof(net)) == -1)
		return 0;
	if (!gl_loaded)
		gl_load();
	r = snprintf(key, sizeof(key), "C %s", net);
	c = r > 0 && (size_t)r < sizeof(key) ? gl_find(key, (size_t)r) : NULL;
	if (c != NULL && gl_expired(c, now)) {
		gl_remove(c);
		c = NULL;
	}
	if (c != NULL && conf->greylist_auto_allow > 0 &&
	    c->count >= conf->greylist_auto_allow)
		return 0;
	from = s->txn->env.sender;
	r = snprintf(key, sizeof(key), "T %s %s %.*s", net, from, (int)n, a);
	if (r < 0 || (size_t)r >= sizeof(key))
		return 0;	/* longer than any valid pair of addresses */
	mem_ascii_lower(key + 2, (size_t)r - 2);	/* not the "T" */
	if ((e = gl_find(key, (size_t)r)) != NULL && gl_expired(e, now)) {
		gl_remove(e);
		e = NULL;
	}
	if (e != NULL && (e->count > 0 ||
	    now - e->first >= conf->greylist_delay)) {
		if (e->count == 0) {
			log_info("event=greylist action=pass client=%s "
			    "net=%s waited=%llds sid=%lu", s->addrtext, net,
			    (long long)(now - e->first), s->id);
			gl_credit(net, now);
		}
		if (e->count < GL_COUNT_MAX)
			e->count++;
		e->last = now;
		gl_changed();
		return 0;
	}
	if (e == NULL)
		e = gl_add(key, (size_t)r, now, now, 0);
	else
		e->last = now;
	gl_changed();
	log_sanitize_text(key, (size_t)r, la, sizeof(la));
	log_info("event=greylist action=defer client=%s triplet=\"%s\" "
	    "age=%llds sid=%lu", s->addrtext, la,
	    e != NULL ? (long long)(now - e->first) : 0LL, s->id);
	smtp_reply(s, "450 4.7.1 Greylisted, try again later");
	return -1;
}

/* gl_credit - a triplet of the client's network passed for the first time */
static void
gl_credit(const char *net, time_t now)
{
	struct gl_entry	*c;
	char		 key[64 + 3];
	int		 r;

	r = snprintf(key, sizeof(key), "C %s", net);
	if (r < 0 || (size_t)r >= sizeof(key))
		return;
	if ((c = gl_find(key, (size_t)r)) == NULL) {
		(void)gl_add(key, (size_t)r, now, now, 1);
		return;
	}
	if (c->count < GL_COUNT_MAX)
		c->count++;
	c->last = now;
}

/*
 * gl_net - "192.0.2.0/24" or "2001:db8:1:2::/64" of the client (an
 * address a sender's pool changes at will within)
 */
static int
gl_net(const struct smtp_session *s, char *out, size_t outsz)
{
	uint8_t		 a[16];
	char		 t[INET6_ADDRSTRLEN];
	int		 r;

	memset(a, 0, sizeof(a));
	memcpy(a, s->addr, s->family == AF_INET ? 3 : 8);
	if (inet_ntop(s->family, a, t, sizeof(t)) == NULL)
		return -1;
	r = snprintf(out, outsz, "%s/%d", t, s->family == AF_INET ? 24 : 64);
	return r < 0 || (size_t)r >= outsz ? -1 : 0;
}

/*
 * gl_expired - a greylisted triplet whose retry window is over, or a
 * passed triplet or client not seen for greylist_max_age
 */
static int
gl_expired(const struct gl_entry *e, time_t now)
{
	const struct config	*conf = smtp_srv->conf;

	if (e->count == 0)
		return now - e->first > conf->greylist_delay +
		    conf->greylist_retry_window;
	return now - e->last > conf->greylist_max_age;
}

/* ---- the table ---------------------------------------------------- */

static uint32_t
gl_hash(const char *k, size_t n)
{
	uint32_t	 h = 2166136261u;
	size_t		 i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)k[i]) * 16777619u;
	return h % GL_BUCKETS;
}

/* gl_find - the entry of key, moved to the young end; or NULL */
static struct gl_entry *
gl_find(const char *k, size_t n)
{
	struct gl_entry	*e;

	for (e = gl_table[gl_hash(k, n)]; e != NULL; e = e->next)
		if (e->keylen == n && memcmp(e->key, k, n) == 0) {
			TAILQ_REMOVE(&gl_lru, e, lru);
			TAILQ_INSERT_TAIL(&gl_lru, e, lru);
			return e;
		}
	return NULL;
}

/* gl_add - a new entry; at GL_MAX the least recently used one goes */
static struct gl_entry *
gl_add(const char *k, size_t n, time_t first, time_t last, unsigned count)
{
	struct gl_entry	*e;
	uint32_t	 h;

	if (gl_count >= GL_MAX && (e = TAILQ_FIRST(&gl_lru)) != NULL)
		gl_remove(e);
	if ((e = malloc(sizeof(*e) + n + 1)) == NULL) {
		log_warn("event=error error=alloc what=greylist");
		return NULL;
	}
	memcpy(e->key, k, n);
	e->key[n] = '\0';
	e->keylen = n;
	e->first = first;
	e->last = last;
	e->count = count;
	h = gl_hash(k, n);
	e->next = gl_table[h];
	gl_table[h] = e;
	TAILQ_INSERT_TAIL(&gl_lru, e, lru);
	gl_count++;
	return e;
}

static void
gl_remove(struct gl_entry *e)
{
	struct gl_entry	**pp;

	for (pp = &gl_table[gl_hash(e->key, e->keylen)]; *pp != e;
	    pp = &(*pp)->next)
		;
	*pp = e->next;
	TAILQ_REMOVE(&gl_lru, e, lru);
	gl_count--;
	free(e);
}

/* ---- the state file ------------------------------------------------ */

/*
 * gl_load - read state/greylist.db once; a bad line is skipped (and
 * counted in the log), a missing file is an empty table
 */
static void
gl_load(void)
{
	FILE		*f;
	char		 line[GL_LINE_MAX];
	long long	 first, last;
	unsigned	 count;
	size_t		 n, nbad = 0, nread = 0;
	time_t		 now = time(NULL);
	int		 off;
	struct gl_entry	*e;

	gl_loaded = 1;
	if ((f = fopen(GL_FILE, "r")) == NULL) {
		if (errno != ENOENT)
			log_warn("event=error error=greylist_read file=%s",
			    GL_FILE);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL && nread < GL_MAX) {
		n = strcspn(line, "\n");
		if (line[n] != '\n') {
			/* too long: skip the rest of it */
			int	 ch;

			while ((ch = getc(f)) != EOF && ch != '\n')
				;
			nbad++;
			continue;
		}
		line[n] = '\0';
		if (line[0] == '#' || n == 0)
			continue;
		off = 0;
		if (sscanf(line, "%lld %lld %u %n", &first, &last, &count,
		    &off) != 3 || off <= 0 || (size_t)off >= n ||
		    (line[off] != 'T' && line[off] != 'C') ||
		    line[off + 1] != ' ') {
			nbad++;
			continue;
		}
		e = gl_find(line + off, n - (size_t)off);
		if (e == NULL)
			e = gl_add(line + off, n - (size_t)off, (time_t)first,
			    (time_t)last, count);
		if (e != NULL && gl_expired(e, now))
			gl_remove(e);
		nread++;
	}
	fclose(f);
	log_info("event=greylist_load entries=%zu bad_lines=%zu", gl_count,
	    nbad);
}

/*
 * gl_save - write the live entries to a new file and rename it over
 * the old one (DESIGN.md: write-new-then-rename)
 */
static void
gl_save(void)
{
	struct gl_entry	*e, *next;
	FILE		*f;
	time_t		 now = time(NULL);
	int		 bad;

	gl_saved = now;
	if ((f = fopen(GL_TMP, "w")) == NULL) {
		log_warn("event=error error=greylist_write file=%s", GL_TMP);
		return;
	}
	bad = fprintf(f, "# moat greylist: first last count key\n") < 0;
	for (e = TAILQ_FIRST(&gl_lru); e != NULL && !bad; e = next) {
		next = TAILQ_NEXT(e, lru);
		if (gl_expired(e, now)) {
			gl_remove(e);
			continue;
		}
		bad = fprintf(f, "%lld %lld %u %s\n", (long long)e->first,
		    (long long)e->last, e->count, e->key) < 0;
	}
	if (bad || fflush(f) == EOF || fsync(fileno(f)) == -1) {
		log_warn("event=error error=greylist_write file=%s", GL_TMP);
		fclose(f);
		unlink(GL_TMP);
		return;
	}
	if (fclose(f) == EOF || rename(GL_TMP, GL_FILE) == -1) {
		log_warn("event=error error=greylist_write file=%s", GL_FILE);
		unlink(GL_TMP);
	}
}

/* gl_changed - write soon, at most every GL_SAVE_SECONDS */
static void
gl_changed(void)
{
	struct timeval	 tv = { 0, 0 };
	time_t		 now = time(NULL);

	if (gl_ev == NULL && (gl_ev = evtimer_new(smtp_srv->base, gl_timer,
	    NULL)) == NULL) {
		log_warnx("event=error error=timer what=greylist");
		return;
	}
	if (evtimer_pending(gl_ev, NULL))
		return;
	if (now >= gl_saved && now - gl_saved < GL_SAVE_SECONDS)
		tv.tv_sec = GL_SAVE_SECONDS - (now - gl_saved);
	evtimer_add(gl_ev, &tv);
}

static void
gl_timer(evutil_socket_t fd, short what, void *arg)
{
	gl_save();
}
