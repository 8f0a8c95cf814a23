/*
 * content.c - the content policy engine (see content.h).
 *
 * One scan per message.  The MIME parser (mime.c) calls back for each
 * header field, part start, decoded body chunk and part end; this file
 * keeps the state of the one leaf part that is streaming at a time:
 *
 *   sniff   its first CONTENT_SNIFF_MAX decoded octets, for libmagic
 *   zip     a ring of its last CONTENT_ZIP_TAIL octets when it is a zip
 *   win     a PCRE2 window of CONTENT_WINDOW octets; CONTENT_OVERLAP
 *           octets are kept when it slides, so a match that straddles
 *           two chunks is found if it is no longer than the overlap
 *
 * Invariants:
 *  - Memory per scan is bounded: the parser's, the sniff buffer, and
 *    the window and ring, allocated on first use.  Findings beyond
 *    CONTENT_FINDINGS_MAX are neither logged nor kept; the verdict
 *    stays the most severe action of all of them.
 *  - Strip targets: a part is removed together with its enclosing
 *    parts up to the nearest one that is a part of a multipart (a
 *    message/rfc822 part is removed whole).  When there is none, the
 *    message's own body is replaced and its Content-* fields rewritten.
 *    Ranges are kept sorted and disjoint: an inner range is dropped
 *    when an enclosing one is recorded (parts end inner first).
 *  - Nothing received reaches a log line or a reply unsanitized:
 *    rule names are checked at load, file names go through
 *    log_sanitize_text(), the replacement text is printable ASCII.
 *
 * Failure grades: a rules file that does not load fails the config
 * load; libmagic missing or failing degrades to the built-in PE/ELF
 * sniffing (logged once); PCRE2 match-limit errors count as no match
 * (logged).  Memory exhaustion while scanning is fatal() like the rest
 * of smtp-in.
 */
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <magic.h>
#include <pcre2.h>

#include "../lib/buf.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "config.h"
#include "content.h"
#include "mime.h"

#define RULES_FILE_MAX		(1024 * 1024)
#define CONTENT_FINDINGS_MAX	32
#define REPL_NAME_MAX		100	/* file name in the notice */
#define ZIP_NAMES_MAX		10000	/* entries looked at per archive */
#define RE_MATCH_LIMIT		200000	/* PCRE2 backtracking bound */
#define RE_DEPTH_LIMIT		2000
#define RE_HEAP_LIMIT		4096	/* KiB */
#define HDR_SECTION_MAX		(16 * 1024 * 1024)

#define SCOPE_HEADERS		0x1
#define SCOPE_BODY		0x2
#define SCOPE_ATTACH		0x4

#define DIR_INBOUND		0x1
#define DIR_OUTBOUND		0x2

struct content_rule {
	char		 name[CONTENT_RULE_NAME_MAX + 1];
	unsigned	 scope;		/* SCOPE_* */
	unsigned	 dir;		/* DIR_* */
	enum content_action action;
	pcre2_code	*re;
	unsigned	 line;
};

struct content_rules {
	struct content_rule	*v;
	size_t			 n;
	pcre2_match_context	*mctx;
};

struct finding {
	const char		*rule;	/* static or a rule's name */
	enum content_action	 action;
};

/* a part to replace: [start, end) of the content */
struct strip {
	uint64_t	 start;
	uint64_t	 end;
	int		 root;		/* the message body; start = body */
	char		 what[REPL_NAME_MAX + 1];
	char		 rule[CONTENT_RULE_NAME_MAX + 1];
};

struct content_scan {
	const struct config	*conf;
	unsigned		 dir;		/* DIR_* */
	char			 qid[32];
	struct mime_parser	*mp;
	pcre2_match_data	*md;
	struct content_verdict	 v;
	int			 ended;
	int			 accepted;	/* an "accept" rule matched */
	struct finding		 f[CONTENT_FINDINGS_MAX];
	size_t			 nf;
	unsigned char		*rulehit;	/* per rule: found already */

	/* strip targets pending per depth, and the ranges recorded */
	unsigned char		 pend[MIME_DEPTH_HARD + 1];
	char			 pend_what[MIME_DEPTH_HARD + 1][REPL_NAME_MAX
				    + 1];
	const char		*pend_rule[MIME_DEPTH_HARD + 1];
	struct strip		*strips;
	size_t			 nstrips;
	uint64_t		 root_hdr_end;	/* end of the message header */

	/* the leaf part streaming now */
	int			 leaf;		/* a leaf is open */
	unsigned		 leaf_scope;	/* SCOPE_BODY or SCOPE_ATTACH */
	int			 leaf_strip;	/* strip it at its end */
	const char		*leaf_strip_rule;
	char			 sniff[CONTENT_SNIFF_MAX];
	size_t			 sniffn;
	int			 sniffed;
	int			 is_zip;
	unsigned char		*zip;		/* ring, CONTENT_ZIP_TAIL */
	uint64_t		 ziplen;	/* octets through the ring */
	struct buf		 win;
	unsigned		 win_rules;	/* rules for this leaf */
	const struct mime_part	*cur;		/* during callbacks only */
};

struct zip_ctx {
	struct content_scan	*s;
	const struct mime_part	*mp;
};

static int	 rules_line(struct content_rules *, const char *, unsigned,
		    const char *, size_t, FILE *);
static int	 parse_action(const char *, size_t);
static void	 cb_header(void *, const struct mime_part *, const char *,
		    size_t);
static void	 cb_start(void *, const struct mime_part *);
static void	 cb_body(void *, const struct mime_part *, const char *,
		    size_t);
static void	 cb_end(void *, const struct mime_part *);
static void	 leaf_sniff(struct content_scan *, const struct mime_part *);
static void	 leaf_zip(struct content_scan *, const struct mime_part *);
static void	 zip_name(void *, const char *, size_t);
static void	 win_scan(struct content_scan *, const struct mime_part *);
static void	 rules_run(struct content_scan *, unsigned,
		    const struct mime_part *, const char *, size_t);
static void	 finding(struct content_scan *, const char *,
		    enum content_action, const struct mime_part *,
		    const char *, size_t);
static void	 mark_strip(struct content_scan *, const struct mime_part *,
		    const char *);
static void	 record_strip(struct content_scan *, const struct mime_part *);
static enum content_action attach_action(const struct content_scan *);
static int	 is_exec_type(const char *);
static int	 is_exec_name(const char *, size_t);
static int	 has_bidi(const char *, size_t);
static const char *builtin_sniff(const unsigned char *, size_t);
static void	 verdict(struct content_scan *);
static void	 repl_text(struct buf *, const struct strip *);
static int	 root_header(int, off_t, uint64_t, content_write_fn *, void *);
static uint32_t	 le32(const unsigned char *);
static uint16_t	 le16(const unsigned char *);

const char *const content_action_names[] = {
	"accept", "log", "tag", "strip", "discard", "quarantine",
	"tempfail", "reject", NULL
};

/* extensions and types that are programs, for attachment_mismatch */
static const char *const exec_exts[] = {
	"bat", "bin", "cmd", "com", "cpl", "dll", "drv", "efi", "elf", "exe",
	"msi", "ocx", "out", "pif", "run", "scr", "so", "sys", NULL
};
static const char *const exec_types[] = {
	"application/vnd.microsoft.portable-executable",
	"application/x-dosexec", "application/x-elf",
	"application/x-executable", "application/x-mach-binary",
	"application/x-msdownload", "application/x-msi",
	"application/x-pie-executable", "application/x-sharedlib", NULL
};

static magic_t	 content_magic;
static int	 magic_warned;

/* content_preinit - open the magic database while it is reachable */
int
content_preinit(void)
{
	if (content_magic != NULL)
		return 0;
	/* no decompression: libmagic would fork helpers for some formats */
	content_magic = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS |
	    MAGIC_ERROR);
	if (content_magic == NULL) {
		log_warn("content: magic_open");
		return -1;
	}
	if (magic_load(content_magic, NULL) == -1) {
		log_warnx("content: magic_load: %s",
		    magic_error(content_magic));
		magic_close(content_magic);
		content_magic = NULL;
		return -1;
	}
	return 0;
}

/* content_rules_load - read path (at most RULES_FILE_MAX) and parse it */
struct content_rules *
content_rules_load(const char *path, FILE *errf, size_t *nerr)
{
	struct content_rules	*r;
	struct buf		 b;
	char			 tmp[8192];
	ssize_t			 n;
	int			 fd;

	*nerr = 0;
	buf_init(&b, RULES_FILE_MAX + 1);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errf != NULL)
			fprintf(errf, "%s: %s\n", path, strerror(errno));
		*nerr = 1;
		return NULL;
	}
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		if (buf_append(&b, tmp, (size_t)n) == -1) {
			n = -2;
			break;
		}
	close(fd);
	if (n < 0) {
		if (errf != NULL)
			fprintf(errf, "%s: %s\n", path, n == -2 ?
			    "larger than 1 MiB" : strerror(errno));
		*nerr = 1;
		buf_free(&b);
		return NULL;
	}
	r = content_rules_mem(path, b.data != NULL ? b.data : "", b.len, errf,
	    nerr);
	buf_free(&b);
	return r;
}

/* content_rules_mem - parse every line, report every error */
struct content_rules *
content_rules_mem(const char *name, const char *p, size_t len, FILE *errf,
    size_t *nerr)
{
	struct content_rules	*r;
	const char		*nl;
	unsigned		 line = 0;
	size_t			 n;

	*nerr = 0;
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->v = calloc(CONTENT_RULES_MAX, sizeof(*r->v))) == NULL)
		fatal("content: rules");
	if ((r->mctx = pcre2_match_context_create(NULL)) == NULL)
		fatal("content: pcre2 match context");
	pcre2_set_match_limit(r->mctx, RE_MATCH_LIMIT);
	pcre2_set_depth_limit(r->mctx, RE_DEPTH_LIMIT);
	pcre2_set_heap_limit(r->mctx, RE_HEAP_LIMIT);
	while (len > 0) {
		line++;
		nl = memchr(p, '\n', len);
		n = nl != NULL ? (size_t)(nl - p) : len;
		if (rules_line(r, name, line, p, n, errf) == -1)
			(*nerr)++;
		if (nl == NULL)
			break;
		p += n + 1;
		len -= n + 1;
	}
	if (*nerr > 0) {
		content_rules_free(r);
		return NULL;
	}
	return r;
}

size_t
content_rules_count(const struct content_rules *r)
{
	return r != NULL ? r->n : 0;
}

void
content_rules_free(struct content_rules *r)
{
	size_t	 i;

	if (r == NULL)
		return;
	for (i = 0; i < r->n; i++)
		pcre2_code_free(r->v[i].re);
	pcre2_match_context_free(r->mctx);
	free(r->v);
	free(r);
}

/* content_enabled - content_filter = yes */
int
content_enabled(const struct config *c)
{
	return c->content_filter;
}

/* content_scan_new - the state of one message's scan */
struct content_scan *
content_scan_new(const struct config *c, int outbound, const char *qid)
{
	static const struct mime_cb	 cb = { cb_header, cb_start, cb_body,
					    cb_end };
	struct content_scan		*s;
	struct mime_limits		 lim;
	size_t				 nrules = content_rules_count(
					    c->content_rules);

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->conf = c;
	s->dir = outbound ? DIR_OUTBOUND : DIR_INBOUND;
	snprintf(s->qid, sizeof(s->qid), "%s", qid != NULL ? qid : "-");
	lim.max_depth = (unsigned)c->mime_max_depth;
	lim.max_parts = (unsigned)c->mime_max_parts;
	lim.max_header = c->mime_max_header;
	buf_init(&s->win, CONTENT_WINDOW + 1);
	if ((s->mp = mime_new(&lim, &cb, s)) == NULL ||
	    (nrules > 0 && ((s->rulehit = calloc(nrules, 1)) == NULL ||
	    (s->md = pcre2_match_data_create(1, NULL)) == NULL))) {
		content_scan_free(s);
		return NULL;
	}
	return s;
}

/* content_scan_data - feed the parser */
void
content_scan_data(struct content_scan *s, const char *p, size_t len)
{
	if (!s->ended)
		mime_feed(s->mp, p, len);
}

/* content_scan_end - close the parse and decide */
const struct content_verdict *
content_scan_end(struct content_scan *s)
{
	const char	*mal;

	if (s->ended)
		return &s->v;
	mime_end(s->mp);
	s->ended = 1;
	if ((mal = mime_malformed(s->mp)) != NULL)
		finding(s, "mime_malformed",
		    (enum content_action)s->conf->mime_malformed, NULL, mal,
		    strlen(mal));
	verdict(s);
	return &s->v;
}

void
content_scan_free(struct content_scan *s)
{
	if (s == NULL)
		return;
	mime_free(s->mp);
	pcre2_match_data_free(s->md);
	free(s->rulehit);
	free(s->strips);
	free(s->zip);
	buf_free(&s->win);
	free(s);
}

/*
 * content_rewrite - copy the original with the strip ranges replaced,
 * the X-Moat-Content header first when anything was tagged or removed
 */
int
content_rewrite(const struct content_scan *s, int fd, off_t off,
    uint64_t size, content_write_fn *out, void *arg)
{
	struct buf	 b;
	uint64_t	 pos = 0;
	size_t		 i, j;
	int		 rc = -1, any = 0;

	buf_init(&b, 0);
	for (i = 0; i < s->nf; i++)
		if (s->f[i].action == CA_TAG || s->f[i].action == CA_STRIP) {
			for (j = 0; j < i; j++)
				if (strcmp(s->f[j].rule, s->f[i].rule) == 0)
					break;
			if (j < i)
				continue;
			buf_appendf(&b, "%s%s%s", any ? ", " :
			    "X-Moat-Content: ", s->f[i].rule,
			    s->f[i].action == CA_STRIP ? " (removed)" : "");
			any = 1;
		}
	if (any && (buf_appends(&b, "\r\n") == -1 ||
	    out(arg, b.data, b.len) == -1))
		goto fail;
	for (i = 0; i < s->nstrips; i++) {
		const struct strip	*st = &s->strips[i];

		if (st->start < pos || st->end > size)
			goto fail;
		if (st->root) {
			if (root_header(fd, off, st->start, out, arg) == -1)
				goto fail;
		} else if (fd_copy_range(fd, off + (off_t)pos, st->start - pos,
		    out, arg) == -1)
			goto fail;
		buf_reset(&b);
		repl_text(&b, st);
		if (out(arg, b.data, b.len) == -1)
			goto fail;
		pos = st->end;
	}
	if (fd_copy_range(fd, off + (off_t)pos, size - pos, out, arg) == -1)
		goto fail;
	rc = 0;
fail:
	buf_free(&b);
	return rc;
}

/* content_name_blocked - every dotted suffix of the last path element */
int
content_name_blocked(char *const *list, size_t n, const char *name,
    size_t len)
{
	const char	*base = name, *dot, *w;
	size_t		 i, k, e, blen;

	while (len > 0 && (name[len - 1] == '.' || name[len - 1] == ' ' ||
	    name[len - 1] == '\t' || name[len - 1] == '\0'))
		len--;
	for (i = 0; i < len; i++)
		if (name[i] == '/' || name[i] == '\\')
			base = name + i + 1;
	blen = len - (size_t)(base - name);
	/* each ".ext" after the first character of the base name */
	for (i = 1; i < blen; i++) {
		if (base[i] != '.')
			continue;
		dot = base + i + 1;
		for (k = 0; dot + k < base + blen && dot[k] != '.'; k++)
			;
		for (e = 0; e < n; e++) {
			w = list[e];
			if (w[0] == '.')
				w++;
			if (strchr(w, '/') == NULL && strlen(w) == k && k > 0 &&
			    mem_casecmp(dot, w, k) == 0)
				return 1;
		}
	}
	return 0;
}

/* content_type_blocked - exact, or any subtype of "type/" + star */
int
content_type_blocked(char *const *list, size_t n, const char *type)
{
	const char	*slash;
	size_t		 i, wl;

	if (type == NULL || *type == '\0')
		return 0;
	for (i = 0; i < n; i++) {
		if ((slash = strchr(list[i], '/')) == NULL)
			continue;
		wl = strlen(list[i]);
		if (strcasecmp(list[i], type) == 0)
			return 1;
		if (slash[1] == '*' && slash[2] == '\0' &&
		    strncasecmp(list[i], type, wl - 1) == 0)
			return 1;
	}
	return 0;
}

/*
 * content_zip_names - APPNOTE.TXT 4.3.16 end of central directory,
 * 4.3.12 central directory file headers
 */
int
content_zip_names(const unsigned char *p, size_t len,
    void (*fn)(void *, const char *, size_t), void *arg)
{
	size_t		 i, eocd, cdsize, pos, nlen, elen, clen;
	int		 n = 0;

	if (len < 22)
		return -1;
	for (i = len - 22 + 1; i-- > 0;)
		if (le32(p + i) == 0x06054b50)
			break;
	if (i == (size_t)-1)
		return -1;
	eocd = i;
	cdsize = le32(p + eocd + 12);
	if (cdsize <= eocd)
		pos = eocd - cdsize;
	else {
		/* the directory starts before the tail we kept */
		for (pos = 0; pos + 4 <= eocd; pos++)
			if (le32(p + pos) == 0x02014b50)
				break;
	}
	while (pos + 46 <= eocd && le32(p + pos) == 0x02014b50 &&
	    n < ZIP_NAMES_MAX) {
		nlen = le16(p + pos + 28);
		elen = le16(p + pos + 30);
		clen = le16(p + pos + 32);
		if (pos + 46 + nlen > eocd)
			break;
		fn(arg, (const char *)p + pos + 46, nlen);
		n++;
		pos += 46 + nlen + elen + clen;
	}
	return n;
}

/*
 * rules_line - "NAME SCOPE DIRECTION ACTION /PATTERN/FLAGS"; blank
 * lines and '#' comments are skipped.  0, or -1 after reporting.
 */
static int
rules_line(struct content_rules *r, const char *file, unsigned line,
    const char *p, size_t len, FILE *errf)
{
	struct content_rule	*ru;
	const char		*f[4], *why = NULL, *pat, *last;
	size_t			 fl[4], i = 0, k, plen;
	uint32_t		 opts = 0;
	PCRE2_UCHAR		 emsg[120];
	PCRE2_SIZE		 eoff;
	int			 ecode, a;

	while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == ' ' ||
	    p[len - 1] == '\t'))
		len--;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i == len || p[i] == '#')
		return 0;
	if (memchr(p, '\0', len) != NULL) {
		why = "NUL in line";
		goto bad;
	}
	for (k = 0; k < 4; k++) {
		while (i < len && (p[i] == ' ' || p[i] == '\t'))
			i++;
		f[k] = p + i;
		while (i < len && p[i] != ' ' && p[i] != '\t')
			i++;
		fl[k] = (size_t)(p + i - f[k]);
		if (fl[k] == 0) {
			why = "expected NAME SCOPE DIRECTION ACTION /PATTERN/";
			goto bad;
		}
	}
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (r->n >= CONTENT_RULES_MAX) {
		why = "too many rules";
		goto bad;
	}
	ru = &r->v[r->n];
	memset(ru, 0, sizeof(*ru));
	ru->line = line;
	if (fl[0] > CONTENT_RULE_NAME_MAX) {
		why = "rule name longer than 64";
		goto bad;
	}
	for (k = 0; k < fl[0]; k++)
		if (!isalnum((unsigned char)f[0][k]) &&
		    strchr("_.-", f[0][k]) == NULL) {
			why = "rule name: letters, digits, '_', '.', '-' only";
			goto bad;
		}
	memcpy(ru->name, f[0], fl[0]);
	if (fl[1] == 7 && memcmp(f[1], "headers", 7) == 0)
		ru->scope = SCOPE_HEADERS;
	else if (fl[1] == 4 && memcmp(f[1], "body", 4) == 0)
		ru->scope = SCOPE_BODY;
	else if (fl[1] == 10 && memcmp(f[1], "attachment", 10) == 0)
		ru->scope = SCOPE_ATTACH;
	else if (fl[1] == 3 && memcmp(f[1], "any", 3) == 0)
		ru->scope = SCOPE_HEADERS | SCOPE_BODY | SCOPE_ATTACH;
	else {
		why = "scope must be headers, body, attachment or any";
		goto bad;
	}
	if (fl[2] == 7 && memcmp(f[2], "inbound", 7) == 0)
		ru->dir = DIR_INBOUND;
	else if (fl[2] == 8 && memcmp(f[2], "outbound", 8) == 0)
		ru->dir = DIR_OUTBOUND;
	else if (fl[2] == 3 && memcmp(f[2], "any", 3) == 0)
		ru->dir = DIR_INBOUND | DIR_OUTBOUND;
	else {
		why = "direction must be inbound, outbound or any";
		goto bad;
	}
	if ((a = parse_action(f[3], fl[3])) == -1) {
		why = "action must be accept, log, tag, strip, discard, "
		    "quarantine, tempfail or reject";
		goto bad;
	}
	ru->action = (enum content_action)a;
	if (ru->action == CA_STRIP && ru->scope == SCOPE_HEADERS) {
		why = "strip needs scope body, attachment or any";
		goto bad;
	}
	/* the pattern: from the first '/' to the last, then flags */
	if (i >= len || p[i] != '/' ||
	    (last = memrchr(p + i + 1, '/', len - i - 1)) == NULL) {
		why = "pattern must be written /PATTERN/FLAGS";
		goto bad;
	}
	pat = p + i + 1;
	plen = (size_t)(last - pat);
	for (k = (size_t)(last + 1 - p); k < len; k++) {
		if (p[k] == 'i')
			opts |= PCRE2_CASELESS;
		else if (p[k] == 'm')
			opts |= PCRE2_MULTILINE;
		else if (p[k] == 's')
			opts |= PCRE2_DOTALL;
		else if (p[k] == 'x')
			opts |= PCRE2_EXTENDED;
		else {
			why = "pattern flags: i, m, s, x only";
			goto bad;
		}
	}
	if (plen == 0) {
		why = "empty pattern";
		goto bad;
	}
	for (k = 0; k < r->n; k++)
		if (strcmp(r->v[k].name, ru->name) == 0 &&
		    (r->v[k].dir & ru->dir) != 0 &&
		    (r->v[k].scope & ru->scope) != 0) {
			why = "duplicate rule name for the same scope and "
			    "direction";
			goto bad;
		}
	/* octets, not UTF-8: mail holds any charset */
	ru->re = pcre2_compile((PCRE2_SPTR)pat, plen, opts | PCRE2_NEVER_UTF,
	    &ecode, &eoff, NULL);
	if (ru->re == NULL) {
		pcre2_get_error_message(ecode, emsg, sizeof(emsg));
		if (errf != NULL)
			fprintf(errf, "%s:%u: bad pattern at offset %zu: %s\n",
			    file, line, (size_t)eoff, (const char *)emsg);
		return -1;
	}
	r->n++;
	return 0;
bad:
	if (errf != NULL)
		fprintf(errf, "%s:%u: %s\n", file, line, why);
	return -1;
}

/* parse_action - index in content_action_names or -1 */
static int
parse_action(const char *s, size_t len)
{
	int	 i;

	for (i = 0; content_action_names[i] != NULL; i++)
		if (strlen(content_action_names[i]) == len &&
		    memcmp(content_action_names[i], s, len) == 0)
			return i;
	return -1;
}

/* cb_header - header rules over each unfolded field of every entity */
static void
cb_header(void *arg, const struct mime_part *mp, const char *p, size_t len)
{
	struct content_scan	*s = arg;

	rules_run(s, SCOPE_HEADERS, mp, p, len);
}

/*
 * cb_start - a part's header section is read.  For a leaf: the name
 * and declared-type checks now; the rest streams.
 */
static void
cb_start(void *arg, const struct mime_part *mp)
{
	struct content_scan	*s = arg;
	const struct config	*c = s->conf;
	const struct content_rules *r = c->content_rules;
	size_t			 i;

	if (mp->depth == 0)
		s->root_hdr_end = mp->body;
	if (mp->flags & (MP_MULTIPART | MP_MESSAGE))
		return;
	s->leaf = 1;
	s->leaf_strip = 0;
	s->sniffn = 0;
	s->sniffed = 0;
	s->is_zip = 0;
	s->ziplen = 0;
	buf_reset(&s->win);
	s->leaf_scope = (mp->flags & (MP_ATTACHMENT | MP_HAS_NAME)) ||
	    strncmp(mp->type, "text/", 5) != 0 ? SCOPE_ATTACH : SCOPE_BODY;
	s->win_rules = 0;
	for (i = 0; r != NULL && i < r->n; i++)
		if ((r->v[i].scope & s->leaf_scope) && (r->v[i].dir & s->dir))
			s->win_rules++;
	if (mp->namelen > 0 && content_name_blocked(c->attachment_block,
	    c->nattachment_block, mp->name, mp->namelen))
		finding(s, "attachment_block", attach_action(s), mp,
		    mp->name, mp->namelen);
	else if (has_bidi(mp->name, mp->namelen))
		finding(s, "attachment_block", attach_action(s), mp,
		    "bidi override in the file name", 30);
	if (content_type_blocked(c->attachment_block, c->nattachment_block,
	    mp->type))
		finding(s, "attachment_block", attach_action(s), mp,
		    mp->type, strlen(mp->type));
}

/* cb_body - decoded octets of the current leaf */
static void
cb_body(void *arg, const struct mime_part *mp, const char *p, size_t len)
{
	struct content_scan	*s = arg;
	size_t			 n, at, k = 0;

	if (!s->sniffed) {
		k = sizeof(s->sniff) - s->sniffn;
		if (k > len)
			k = len;
		memcpy(s->sniff + s->sniffn, p, k);
		s->sniffn += k;
		/* at sniff time its octets go to the zip ring */
		if (s->sniffn == sizeof(s->sniff))
			leaf_sniff(s, mp);
	}
	if (s->is_zip && s->zip != NULL)
		for (; k < len; k += n) {
			at = (size_t)(s->ziplen % CONTENT_ZIP_TAIL);
			n = CONTENT_ZIP_TAIL - at;
			if (n > len - k)
				n = len - k;
			memcpy(s->zip + at, p + k, n);
			s->ziplen += n;
		}
	if (s->win_rules == 0)
		return;
	for (k = 0; k < len; k += n) {
		n = CONTENT_WINDOW - s->win.len;
		if (n > len - k)
			n = len - k;
		if (buf_append(&s->win, p + k, n) == -1)
			fatal("content: window");
		if (s->win.len == CONTENT_WINDOW) {
			win_scan(s, mp);
			buf_consume(&s->win, CONTENT_WINDOW - CONTENT_OVERLAP);
		}
	}
}

/* cb_end - finish a leaf's checks; record a strip range that ends here */
static void
cb_end(void *arg, const struct mime_part *mp)
{
	struct content_scan	*s = arg;

	if (s->leaf && !(mp->flags & (MP_MULTIPART | MP_MESSAGE))) {
		if (!s->sniffed)
			leaf_sniff(s, mp);
		if (s->is_zip)
			leaf_zip(s, mp);
		if (s->win_rules > 0 && s->win.len > 0)
			win_scan(s, mp);
		if (s->leaf_strip)
			mark_strip(s, mp, s->leaf_strip_rule);
		s->leaf = 0;
	}
	if (mp->depth <= MIME_DEPTH_HARD && s->pend[mp->depth])
		record_strip(s, mp);
}

/*
 * leaf_sniff - the true type from the first decoded octets, checked
 * against attachment_block and against what the part claims to be
 */
static void
leaf_sniff(struct content_scan *s, const struct mime_part *mp)
{
	const struct config	*c = s->conf;
	const unsigned char	*u = (const unsigned char *)s->sniff;
	const char		*t = NULL, *b;
	char			 detected[MIME_TYPE_MAX];

	s->sniffed = 1;
	if (s->sniffn == 0)
		return;
	if (content_magic != NULL)
		t = magic_buffer(content_magic, s->sniff, s->sniffn);
	else if (!magic_warned) {
		magic_warned = 1;
		log_warnx("content: no magic database, built-in sniffing only");
	}
	/* the built-in check wins over a vague answer */
	if ((b = builtin_sniff(u, s->sniffn)) != NULL && (t == NULL ||
	    !is_exec_type(t)))
		t = b;
	snprintf(detected, sizeof(detected), "%s", t != NULL ? t : "");
	if (strcmp(detected, mp->type) != 0 && content_type_blocked(
	    c->attachment_block, c->nattachment_block, detected))
		finding(s, "attachment_block", attach_action(s), mp, detected,
		    strlen(detected));
	if (is_exec_type(detected) && !is_exec_type(mp->type) &&
	    ((mp->namelen > 0 && !is_exec_name(mp->name, mp->namelen)) ||
	    (strcmp(mp->type, "application/octet-stream") != 0)))
		finding(s, "attachment_mismatch",
		    (enum content_action)c->attachment_mismatch, mp, detected,
		    strlen(detected));
	if (s->sniffn >= 4 && u[0] == 'P' && u[1] == 'K' &&
	    ((u[2] == 3 && u[3] == 4) || (u[2] == 5 && u[3] == 6))) {
		s->is_zip = 1;
		if (s->zip == NULL &&
		    (s->zip = malloc(CONTENT_ZIP_TAIL)) == NULL)
			fatal("content: zip ring");
		memcpy(s->zip, s->sniff, s->sniffn);
		s->ziplen = s->sniffn;
	}
}

/* leaf_zip - the names in a zip archive's central directory */
static void
leaf_zip(struct content_scan *s, const struct mime_part *mp)
{
	struct zip_ctx	 z = { s, mp };
	unsigned char	*lin;
	size_t		 n, at;

	if (s->zip == NULL)
		return;
	/* unroll the ring: oldest octet first */
	n = s->ziplen < CONTENT_ZIP_TAIL ? (size_t)s->ziplen :
	    CONTENT_ZIP_TAIL;
	if ((lin = malloc(n > 0 ? n : 1)) == NULL)
		fatal("content: zip");
	at = s->ziplen <= CONTENT_ZIP_TAIL ? 0 :
	    (size_t)(s->ziplen % CONTENT_ZIP_TAIL);
	memcpy(lin, s->zip + at, n - at);
	memcpy(lin + (n - at), s->zip, at);
	if (content_zip_names(lin, n, zip_name, &z) == -1)
		log_info("content qid=%s part=%u zip without a readable "
		    "directory", s->qid, mp->id);
	free(lin);
}

/* zip_name - one name in an archive: the extension policy */
static void
zip_name(void *arg, const char *name, size_t len)
{
	struct zip_ctx		*z = arg;
	const struct config	*c = z->s->conf;

	if (content_name_blocked(c->attachment_block, c->nattachment_block,
	    name, len) || has_bidi(name, len))
		finding(z->s, "attachment_block", attach_action(z->s), z->mp,
		    name, len);
}

/* win_scan - the leaf's rules over the window */
static void
win_scan(struct content_scan *s, const struct mime_part *mp)
{
	rules_run(s, s->leaf_scope, mp, s->win.data, s->win.len);
}

/* rules_run - each rule of this scope and direction not yet found */
static void
rules_run(struct content_scan *s, unsigned scope, const struct mime_part *mp,
    const char *p, size_t len)
{
	const struct content_rules	*r = s->conf->content_rules;
	const struct content_rule	*ru;
	size_t				 i;
	int				 rc;

	for (i = 0; r != NULL && i < r->n; i++) {
		ru = &r->v[i];
		if (!(ru->scope & scope) || !(ru->dir & s->dir) ||
		    s->rulehit[i])
			continue;
		rc = pcre2_match(ru->re, (PCRE2_SPTR)p, len, 0, 0, s->md,
		    r->mctx);
		if (rc >= 0) {
			s->rulehit[i] = 1;
			if (ru->action == CA_ACCEPT)
				s->accepted = 1;
			finding(s, ru->name, ru->action, mp, "pattern", 7);
		} else if (rc != PCRE2_ERROR_NOMATCH) {
			log_warnx("content qid=%s rule=%s match error %d "
			    "(no match assumed)", s->qid, ru->name, rc);
			s->rulehit[i] = 1;
		}
	}
}

/*
 * finding - log it, keep it; a strip finding marks the current leaf
 * (applied at its end, when its extent is known)
 */
static void
finding(struct content_scan *s, const char *rule, enum content_action a,
    const struct mime_part *mp, const char *detail, size_t dlen)
{
	char	 d[256], name[256];

	/* a zip of 10000 bad names is one verdict, not 10000 log lines */
	if (s->nf >= CONTENT_FINDINGS_MAX)
		goto keep;
	log_sanitize_text(detail, dlen, d, sizeof(d));
	if (mp != NULL && mp->namelen > 0)
		log_sanitize_text(mp->name, mp->namelen, name, sizeof(name));
	else
		name[0] = '\0';
	log_info("event=alarm content qid=%s rule=%s action=%s dir=%s "
	    "part=%u type=%s file=\"%s\" detail=\"%s\"", s->qid, rule,
	    content_action_names[a], s->dir == DIR_INBOUND ? "inbound" :
	    "outbound", mp != NULL ? mp->id : 0, mp != NULL ? mp->type : "-",
	    name, d);
	s->f[s->nf].rule = rule;
	s->f[s->nf].action = a;
	s->nf++;
keep:
	if (a > s->v.action) {
		s->v.action = a;
		snprintf(s->v.rule, sizeof(s->v.rule), "%s", rule);
	}
	if (a == CA_STRIP && mp != NULL && s->leaf && !s->leaf_strip) {
		s->leaf_strip = 1;
		s->leaf_strip_rule = rule;
	}
}

/*
 * mark_strip - the part to remove for leaf mp: mp or the nearest
 * ancestor that is a part of a multipart; none: the message body
 */
static void
mark_strip(struct content_scan *s, const struct mime_part *mp,
    const char *rule)
{
	const struct mime_part	*t = mp;
	char			*w;
	size_t			 i, n;

	while (t != NULL && !(t->flags & MP_IN_MULTIPART))
		t = t->parent;
	if (t == NULL)
		t = mp;
	while (t->parent != NULL && !(t->flags & MP_IN_MULTIPART))
		t = t->parent;
	if (t->depth > MIME_DEPTH_HARD || s->pend[t->depth])
		return;
	s->pend[t->depth] = 1;
	s->pend_rule[t->depth] = rule;
	/* the notice names the leaf: printable ASCII only */
	w = s->pend_what[t->depth];
	n = mp->namelen < REPL_NAME_MAX ? mp->namelen : REPL_NAME_MAX;
	for (i = 0; i < n; i++)
		w[i] = mp->name[i] >= 0x20 && mp->name[i] < 0x7f &&
		    mp->name[i] != '"' ? mp->name[i] : '?';
	w[n] = '\0';
	if (n == 0)
		snprintf(w, REPL_NAME_MAX + 1, "a part of type %.80s",
		    mp->type);
}

/* record_strip - mp, a strip target, has ended: keep its range */
static void
record_strip(struct content_scan *s, const struct mime_part *mp)
{
	struct strip	*st;
	size_t		 n;

	s->pend[mp->depth] = 0;
	/* inner ranges recorded before are inside this one: drop them */
	for (n = s->nstrips; n > 0 && s->strips[n - 1].start >= mp->start &&
	    !s->strips[n - 1].root; n--)
		;
	s->nstrips = n;
	if ((st = reallocarray(s->strips, s->nstrips + 1, sizeof(*st))) ==
	    NULL)
		fatal("content: strips");
	s->strips = st;
	st = &s->strips[s->nstrips++];
	memset(st, 0, sizeof(*st));
	st->root = !(mp->flags & MP_IN_MULTIPART);
	st->start = st->root ? mp->body : mp->start;
	st->end = mp->end;
	memcpy(st->what, s->pend_what[mp->depth], sizeof(st->what));
	snprintf(st->rule, sizeof(st->rule), "%s",
	    s->pend_rule[mp->depth] != NULL ? s->pend_rule[mp->depth] : "");
}

static enum content_action
attach_action(const struct content_scan *s)
{
	return (enum content_action)(s->dir == DIR_INBOUND ?
	    s->conf->attachment_action : s->conf->attachment_action_outbound);
}

static int
is_exec_type(const char *t)
{
	size_t	 i;

	for (i = 0; exec_types[i] != NULL; i++)
		if (strcmp(t, exec_types[i]) == 0)
			return 1;
	return 0;
}

static int
is_exec_name(const char *name, size_t len)
{
	return content_name_blocked((char *const *)exec_exts,
	    sizeof(exec_exts) / sizeof(exec_exts[0]) - 1, name, len);
}

/* has_bidi - U+202A..U+202E, U+2066..U+2069 in UTF-8: names that lie */
static int
has_bidi(const char *p, size_t len)
{
	const unsigned char	*u = (const unsigned char *)p;
	size_t			 i;

	for (i = 0; i + 2 < len; i++)
		if (u[i] == 0xe2 && ((u[i + 1] == 0x80 && u[i + 2] >= 0xaa &&
		    u[i + 2] <= 0xae) || (u[i + 1] == 0x81 &&
		    u[i + 2] >= 0xa6 && u[i + 2] <= 0xa9)))
			return 1;
	return 0;
}

/*
 * builtin_sniff - programs found without libmagic: a PE image ("MZ",
 * e_lfanew pointing at "PE\0\0") or an ELF file
 */
static const char *
builtin_sniff(const unsigned char *u, size_t n)
{
	uint32_t	 pe;

	if (n >= 4 && memcmp(u, "\177ELF", 4) == 0)
		return "application/x-executable";
	if (n >= 0x40 && u[0] == 'M' && u[1] == 'Z') {
		pe = le32(u + 0x3c);
		if (pe <= n - 4 && memcmp(u + pe, "PE\0\0", 4) == 0)
			return "application/vnd.microsoft.portable-executable";
	}
	return NULL;
}

/* verdict - the most severe action, the reply, the summary */
static void
verdict(struct content_scan *s)
{
	struct content_verdict	*v = &s->v;
	struct buf		 b;
	size_t			 i;

	if (s->accepted) {
		v->action = CA_ACCEPT;
		v->rule[0] = '\0';
	}
	/* a strip without a part to strip (malformed MIME) is a tag */
	if (v->action == CA_STRIP && s->nstrips == 0)
		v->action = CA_TAG;
	v->rewrite = v->action == CA_TAG || v->action == CA_STRIP;
	if (v->action == CA_REJECT)
		snprintf(v->reply, sizeof(v->reply), "554 %s Message refused "
		    "by content filter (rule %s)", strcmp(v->rule,
		    "mime_malformed") == 0 ? "5.6.0" : "5.7.1", v->rule);
	else if (v->action == CA_TEMPFAIL)
		snprintf(v->reply, sizeof(v->reply), "451 4.7.1 Message "
		    "deferred by content filter (rule %s)", v->rule);
	buf_init(&b, sizeof(v->summary) - 1);
	for (i = 0; i < s->nf; i++)
		if (buf_appendf(&b, "%s%s(%s)", i > 0 ? " " : "",
		    s->f[i].rule, content_action_names[s->f[i].action]) == -1)
			break;
	snprintf(v->summary, sizeof(v->summary), "%.*s", (int)b.len,
	    b.data != NULL ? b.data : "");
	buf_free(&b);
}

/* repl_text - the text/plain part that stands for a removed one */
static void
repl_text(struct buf *b, const struct strip *st)
{
	if (st->root)
		buf_appendf(b, "This message's content (%s) was removed by "
		    "the mail relay's content filter (rule %s).\r\n",
		    st->what, st->rule);
	else
		buf_appendf(b, "Content-Type: text/plain; charset=us-ascii\r\n"
		    "Content-Transfer-Encoding: 7bit\r\n\r\n"
		    "An attachment (%s) was removed by the mail relay's "
		    "content filter (rule %s).", st->what, st->rule);
}

/*
 * root_header - the message's header section (len octets at off, up to
 * its body) without its Content-Type, Content-Transfer-Encoding and
 * Content-Disposition fields, which now describe the notice
 */
static int
root_header(int fd, off_t off, uint64_t len, content_write_fn *out,
    void *arg)
{
	static const char	 ct[] = "Content-Type: text/plain; "
				    "charset=us-ascii\r\n"
				    "Content-Transfer-Encoding: 7bit\r\n\r\n";
	char			*h, *p, *nl, *end;
	int			 drop = 0, rc = -1;
	ssize_t			 n;

	if (len > HDR_SECTION_MAX || (h = malloc(len + 1)) == NULL)
		return -1;
	if ((n = pread(fd, h, (size_t)len, off)) != (ssize_t)len)
		goto fail;
	end = h + len;
	/* the empty line that ends the section is written with ct[] */
	if ((end - h == 2 || (end - h >= 4 && memcmp(end - 4, "\r\n", 2) ==
	    0)) && memcmp(end - 2, "\r\n", 2) == 0)
		end -= 2;
	for (p = h; p < end; p = nl) {
		nl = memchr(p, '\n', (size_t)(end - p));
		nl = nl != NULL ? nl + 1 : end;
		if (*p != ' ' && *p != '\t')
			drop = (nl - p > 13 && mem_casecmp(p,
			    "content-type:", 13) == 0) || (nl - p > 26 &&
			    mem_casecmp(p, "content-transfer-encoding:",
			    26) == 0) || (nl - p > 20 && mem_casecmp(p,
			    "content-disposition:", 20) == 0);
		if (!drop && out(arg, p, (size_t)(nl - p)) == -1)
			goto fail;
	}
	rc = out(arg, ct, sizeof(ct) - 1);
fail:
	free(h);
	return rc;
}

static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint16_t
le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}
