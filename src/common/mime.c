/*
 * mime.c - streaming MIME parser (RFC 2045, 2046, 2047, 2231).
 *
 * The content is cut into lines (at most MIME_LINE_MAX octets; a longer
 * line is handled in pieces, of which only the first may be a boundary
 * delimiter or start a header field).  Each line goes to the entity on
 * top of a stack: a header section being read, a leaf body being
 * decoded, or the preamble/epilogue of a multipart, which are ignored.
 * A line starting with "--" is first matched against the boundaries of
 * the open multiparts, innermost first (RFC 2046 5.1.1); a match closes
 * every entity above that multipart.
 *
 * Invariants:
 *  - Memory is bounded by the limits given to mime_new(): one line, one
 *    header field, one decode buffer and max_depth + 1 stack entries.
 *  - stk[i] is at depth i; stk[0] is the message; n entities are open.
 *  - Every entity pushed gets exactly one part_start() and one
 *    part_end(), and they nest.
 *  - Nothing received is trusted as a C string: fields, parameters and
 *    file names travel as (ptr, len).
 *
 * Leniency (as common readers are, so that content cannot hide from us
 * behind a reading that differs from the user's mail reader): a
 * delimiter is recognised by its prefix even with junk after it,
 * base64 decoding goes on past padding and over foreign characters,
 * unquoted parameter values may hold blanks.  Each such case is
 * flagged as malformed.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "mime.h"

#define PARAM_VAL_MAX	1024	/* one parameter value, unescaped */
#define PARAM_SEG_MAX	64	/* RFC 2231 continuation segments */

/* entity states */
enum ent_state {
	E_HDR,		/* reading its header section */
	E_BODY,		/* leaf body */
	E_PRE,		/* multipart, before the first delimiter */
	E_PARTS,	/* multipart, a part is open above it */
	E_EPI,		/* multipart, after the close delimiter */
	E_MSG		/* message/rfc822, the message is open above it */
};

struct entity {
	struct mime_part	 pub;
	enum ent_state		 state;
	char			 boundary[MIME_BOUNDARY_MAX];
	size_t			 blen;
	size_t			 hdrbytes;
	unsigned		 seen;		/* SEEN_* */
	int			 nameprio;	/* 2 disposition, 1 type */
	int			 digest;	/* multipart/digest */
	int			 pending_crlf;	/* a line break not yet given */
	uint32_t		 b64acc;
	unsigned		 b64bits;
	int			 b64pad;	/* '=' seen */
};

#define SEEN_CT		0x01
#define SEEN_CTE	0x02
#define SEEN_CD		0x04

struct mime_parser {
	struct mime_limits	 lim;
	struct mime_cb		 cb;
	void			*arg;
	struct entity		*stk;
	unsigned		 n;		/* open entities */
	unsigned		 nparts;
	int			 skip;		/* structure not followed */
	int			 ended;
	const char		*malformed;
	uint64_t		 off;		/* octets fed */
	unsigned		 prev_eol;	/* last line's terminator */
	int			 inpiece;	/* line being cut in pieces */
	char			 line[MIME_LINE_MAX];
	size_t			 linelen;
	char			 field[MIME_FIELD_MAX];
	size_t			 fieldlen;
	int			 infield;
	char			 dec[MIME_LINE_MAX + 8];
};

static void	 flag(struct mime_parser *, const char *);
static void	 line_done(struct mime_parser *, const char *, size_t, int);
static void	 process_line(struct mime_parser *, const char *, size_t,
		    int, int, uint64_t, uint64_t);
static int	 delim_match(struct mime_parser *, const char *, size_t,
		    int *);
static void	 delim(struct mime_parser *, unsigned, int, uint64_t,
		    uint64_t);
static int	 push(struct mime_parser *, struct entity *, uint64_t, int);
static void	 pop_to(struct mime_parser *, unsigned, uint64_t);
static void	 header_line(struct mime_parser *, struct entity *,
		    const char *, size_t, int, int, size_t, uint64_t);
static void	 header_end(struct mime_parser *, struct entity *, uint64_t,
		    int);
static void	 field_append(struct mime_parser *, const char *, size_t);
static void	 field_flush(struct mime_parser *, struct entity *);
static void	 field_content(struct mime_parser *, struct entity *,
		    const char *, size_t, const char *, size_t);
static void	 parse_ctype(struct mime_parser *, struct entity *,
		    const char *, size_t);
static void	 parse_cte(struct entity *, const char *, size_t);
static void	 parse_cdisp(struct mime_parser *, struct entity *,
		    const char *, size_t);
static void	 set_name(struct entity *, const char *, size_t, int, int);
static void	 body_line(struct mime_parser *, struct entity *,
		    const char *, size_t, int, int);
static void	 emit(struct mime_parser *, struct entity *, const char *,
		    size_t);
static size_t	 b64_step(struct mime_parser *, struct entity *,
		    const char *, size_t, char *);
static size_t	 hex_decode(const char *, size_t, int, char *, size_t);
static size_t	 skip_cfws(const char *, size_t, size_t);
static size_t	 token_len(const char *, size_t, size_t);
static int	 is_tspecial(int);
static int	 hexval(int);
static int	 param_next(const char *, size_t, size_t *, const char **,
		    size_t *, char *, size_t *);
static size_t	 pct_decode(const char *, size_t, int, char *, size_t);
static size_t	 word_decode(const char *, size_t, char *, size_t,
		    size_t *);

/* mime_new - a parser with these limits and callbacks */
struct mime_parser *
mime_new(const struct mime_limits *lim, const struct mime_cb *cb, void *arg)
{
	struct mime_parser	*p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->lim = *lim;
	if (p->lim.max_depth < 1)
		p->lim.max_depth = 1;
	if (p->lim.max_depth > MIME_DEPTH_HARD)
		p->lim.max_depth = MIME_DEPTH_HARD;
	if (p->lim.max_parts < 1)
		p->lim.max_parts = 1;
	if (cb != NULL)
		p->cb = *cb;
	p->arg = arg;
	p->prev_eol = 2;
	if ((p->stk = calloc(p->lim.max_depth + 1, sizeof(*p->stk))) ==
	    NULL) {
		free(p);
		return NULL;
	}
	/* the message itself: a header section at offset 0 */
	if (push(p, NULL, 0, 0) == -1)
		panic("mime_new: no room for the message entity");
	return p;
}

/*
 * mime_feed - cut the input into lines.  A complete line that lies
 * within the chunk is processed in place; otherwise it is assembled
 * in p->line, or cut into pieces when longer than MIME_LINE_MAX.
 */
void
mime_feed(struct mime_parser *p, const char *data, size_t len)
{
	const char	*nl;
	size_t		 n, room;

	if (p->ended)
		return;
	while (len > 0) {
		nl = memchr(data, '\n', len);
		n = nl != NULL ? (size_t)(nl - data) + 1 : len;
		if (nl != NULL && p->linelen == 0 && n <= MIME_LINE_MAX)
			line_done(p, data, n, 1);
		else {
			room = MIME_LINE_MAX - p->linelen;
			if (n > room) {
				n = room;
				nl = NULL;
			}
			memcpy(p->line + p->linelen, data, n);
			p->linelen += n;
			if (nl != NULL || p->linelen == MIME_LINE_MAX) {
				line_done(p, p->line, p->linelen, nl != NULL);
				p->linelen = 0;
			}
		}
		data += n;
		len -= n;
	}
}

/* mime_end - the last line may lack its CRLF; close every entity */
void
mime_end(struct mime_parser *p)
{
	if (p->ended)
		return;
	if (p->linelen > 0) {
		line_done(p, p->line, p->linelen, 1);
		p->linelen = 0;
	}
	pop_to(p, 0, p->off);
	p->ended = 1;
}

/* mime_malformed - the first problem found, or NULL */
const char *
mime_malformed(const struct mime_parser *p)
{
	return p->malformed;
}

/* mime_nparts - entities seen so far, the message included */
unsigned
mime_nparts(const struct mime_parser *p)
{
	return p->nparts;
}

void
mime_free(struct mime_parser *p)
{
	if (p == NULL)
		return;
	free(p->stk);
	free(p);
}

/*
 * mime_param - the value of parameter want in a field value.  Priority
 * (RFC 2231 as readers apply it): "want*=" over "want*0..N" over the
 * plain "want=", whose value may hold RFC 2047 encoded-words (not
 * allowed by RFC 2047 5, but sent by common mailers and understood by
 * common readers).
 */
int
mime_param(const char *v, size_t len, const char *want, char *out,
    size_t outsz)
{
	char		 val[PARAM_VAL_MAX], tmp[PARAM_VAL_MAX], num[8];
	const char	*a;
	size_t		 i, alen, vlen, wl = strlen(want), olen = 0, n;
	int		 plain = -1, ext = 0, segs = 0, seg, found;
	char		*end;
	long		 idx;

	/* pass 1: plain and single extended values; are there segments? */
	for (i = 0; param_next(v, len, &i, &a, &alen, val, &vlen) == 0;) {
		if (alen < wl || mem_casecmp(a, want, wl) != 0)
			continue;
		if (alen == wl && plain == -1) {
			plain = (int)(vlen < sizeof(tmp) ? vlen : sizeof(tmp));
			memcpy(tmp, val, (size_t)plain);
		} else if (alen == wl + 1 && a[wl] == '*' && !ext) {
			ext = 1;
			olen = pct_decode(val, vlen, 1, out, outsz);
		} else if (alen > wl + 1 && a[wl] == '*' &&
		    isdigit((unsigned char)a[wl + 1]))
			segs = 1;
	}
	if (ext)
		return (int)olen;
	if (segs) {
		/* RFC 2231 3: segments may come in any order */
		for (seg = 0; seg < PARAM_SEG_MAX; seg++) {
			found = 0;
			for (i = 0; param_next(v, len, &i, &a, &alen, val,
			    &vlen) == 0;) {
				if (alen < wl + 2 || alen > wl + 5 ||
				    mem_casecmp(a, want, wl) != 0 ||
				    a[wl] != '*' ||
				    !isdigit((unsigned char)a[wl + 1]))
					continue;
				memcpy(num, a + wl + 1, alen - wl - 1);
				num[alen - wl - 1] = '\0';
				idx = strtol(num, &end, 10);
				if (idx != seg || (*end != '\0' &&
				    strcmp(end, "*") != 0))
					continue;
				if (*end == '*')
					n = pct_decode(val, vlen, seg == 0,
					    out + olen, outsz - olen);
				else {
					n = vlen < outsz - olen ? vlen :
					    outsz - olen;
					memcpy(out + olen, val, n);
				}
				olen += n;
				found = 1;
				break;
			}
			if (!found)
				break;
		}
		if (seg > 0)
			return (int)olen;
	}
	if (plain == -1)
		return -1;
	return (int)mime_decode_words(tmp, (size_t)plain, out, outsz);
}

/*
 * mime_decode_words - RFC 2047 encoded-words; anything that does not
 * parse as one is copied as it is
 */
size_t
mime_decode_words(const char *s, size_t len, char *out, size_t outsz)
{
	size_t	 i = 0, o = 0, used, n, ws = 0, wsstart = 0;
	int	 after_word = 0;

	while (i < len && o < outsz) {
		if (s[i] == '=' && i + 1 < len && s[i + 1] == '?' &&
		    (n = word_decode(s + i, len - i, out + o, outsz - o,
		    &used)) != (size_t)-1) {
			/* blanks between two encoded-words vanish (6.2) */
			o += n;
			i += used;
			after_word = 1;
			ws = 0;
			continue;
		}
		if (after_word && (s[i] == ' ' || s[i] == '\t')) {
			if (ws++ == 0)
				wsstart = i;
			i++;
			continue;
		}
		if (ws > 0) {
			/* the blanks were not between two words: keep */
			n = ws < outsz - o ? ws : outsz - o;
			memcpy(out + o, s + wsstart, n);
			o += n;
			ws = 0;
			if (o >= outsz)
				break;
		}
		after_word = 0;
		out[o++] = s[i++];
	}
	return o;
}

/* flag - remember the first problem */
static void
flag(struct mime_parser *p, const char *why)
{
	if (p->malformed == NULL)
		p->malformed = why;
}

/*
 * line_done - s[0..n) is a line with its terminator (complete) or a
 * piece of a longer one; the terminator is CRLF (a lone LF is taken
 * too: the spool holds none, smtp-in refuses them).
 */
static void
line_done(struct mime_parser *p, const char *s, size_t n, int complete)
{
	size_t		 clen = n;
	unsigned	 eol = 0;
	int		 first = !p->inpiece;

	if (complete && clen > 0 && s[clen - 1] == '\n') {
		clen--;
		eol = 1;
		if (clen > 0 && s[clen - 1] == '\r') {
			clen--;
			eol = 2;
		}
	}
	process_line(p, s, clen, first, complete, p->off, p->off + n);
	p->off += n;
	if (complete) {
		p->inpiece = 0;
		p->prev_eol = eol;
	} else
		p->inpiece = 1;
}

/* process_line - one line (or piece) at offset off; next is past it */
static void
process_line(struct mime_parser *p, const char *s, size_t clen, int first,
    int last, uint64_t off, uint64_t next)
{
	struct entity	*e;
	int		 close, k;

	if (p->skip)
		return;
	if (first && clen >= 2 && s[0] == '-' && s[1] == '-' &&
	    (k = delim_match(p, s, clen, &close)) >= 0) {
		delim(p, (unsigned)k, close, off, next);
		return;
	}
	e = &p->stk[p->n - 1];
	switch (e->state) {
	case E_HDR:
		header_line(p, e, s, clen, first, last, (size_t)(next - off),
		    next);
		break;
	case E_BODY:
		body_line(p, e, s, clen, first, last);
		break;
	case E_PRE:
	case E_EPI:
		/* preamble and epilogue are not shown by readers */
		break;
	case E_PARTS:
	case E_MSG:
		panic("mime: entity %u on top in state %d", e->pub.id,
		    e->state);
	}
}

/*
 * delim_match - the depth of the innermost open multipart whose
 * boundary starts s after "--", or -1.  *close says "--" followed.
 * Only blanks may follow (RFC 2046 5.1.1 transport padding); other
 * junk is flagged but the line still counts as a delimiter.
 */
static int
delim_match(struct mime_parser *p, const char *s, size_t len, int *close)
{
	struct entity	*e;
	size_t		 j;
	int		 i;

	for (i = (int)p->n - 1; i >= 0; i--) {
		e = &p->stk[i];
		if ((e->state != E_PRE && e->state != E_PARTS) ||
		    len < 2 + e->blen ||
		    memcmp(s + 2, e->boundary, e->blen) != 0)
			continue;
		j = 2 + e->blen;
		*close = len >= j + 2 && s[j] == '-' && s[j + 1] == '-';
		if (*close)
			j += 2;
		for (; j < len; j++)
			if (s[j] != ' ' && s[j] != '\t') {
				flag(p, "junk after a boundary delimiter");
				break;
			}
		return i;
	}
	return -1;
}

/*
 * delim - a delimiter of the multipart at depth k, at offset off; the
 * line ends at next.  The CRLF ahead of it ends the open parts.
 */
static void
delim(struct mime_parser *p, unsigned k, int close, uint64_t off,
    uint64_t next)
{
	struct entity	*e;
	uint64_t	 end = off >= p->prev_eol ? off - p->prev_eol : 0;

	pop_to(p, k + 1, end);
	e = &p->stk[k];
	if (close) {
		e->state = E_EPI;
		return;
	}
	e->state = E_PARTS;
	if (push(p, e, next, 1) == -1)
		e->state = E_EPI;
}

/* push - open an entity above parent (NULL: the message) */
static int
push(struct mime_parser *p, struct entity *parent, uint64_t start,
    int inmulti)
{
	struct entity	*c;

	if (p->nparts >= p->lim.max_parts) {
		flag(p, "too many MIME parts");
		p->skip = 1;
		return -1;
	}
	if (p->n > p->lim.max_depth)
		panic("mime: push beyond depth %u", p->lim.max_depth);
	c = &p->stk[p->n++];
	memset(c, 0, sizeof(*c));
	c->pub.id = p->nparts++;
	c->pub.depth = p->n - 1;
	c->pub.parent = parent != NULL ? &parent->pub : NULL;
	c->pub.flags = inmulti ? MP_IN_MULTIPART : 0;
	c->pub.start = c->pub.body = c->pub.end = start;
	c->state = E_HDR;
	if (parent != NULL && parent->digest == 1)
		c->digest = -1;		/* default type message/rfc822 */
	return 0;
}

/*
 * pop_to - end every entity above the first keep ones; end is the
 * offset where they stop
 */
static void
pop_to(struct mime_parser *p, unsigned keep, uint64_t end)
{
	struct entity	*e;

	while (p->n > keep) {
		e = &p->stk[p->n - 1];
		e->pub.end = end > e->pub.start ? end : e->pub.start;
		if (e->state == E_HDR)
			header_end(p, e, e->pub.end, 1);
		if (e->state == E_PRE || e->state == E_PARTS)
			flag(p, "multipart without its close delimiter");
		if (e->pub.body > e->pub.end)
			e->pub.body = e->pub.end;
		if (p->cb.part_end != NULL)
			p->cb.part_end(p->arg, &e->pub);
		p->n--;
		/* the entity that held it goes back to its reading state */
		if (p->n > 0 && p->stk[p->n - 1].state == E_MSG)
			p->stk[p->n - 1].state = E_EPI;
	}
}

/*
 * header_line - one line of a header section (RFC 5322 2.2): a new
 * field, a folded continuation, or the empty line that ends it
 */
static void
header_line(struct mime_parser *p, struct entity *e, const char *s,
    size_t clen, int first, int last, size_t rawlen, uint64_t next)
{
	const char	*colon;
	size_t		 i;

	e->hdrbytes += rawlen;
	if (e->hdrbytes > p->lim.max_header) {
		flag(p, "header section too large");
		p->skip = 1;
		return;
	}
	if (!first) {
		field_append(p, s, clen);
		return;
	}
	if (clen == 0 && last) {
		header_end(p, e, next, 0);
		return;
	}
	if (clen > 0 && (s[0] == ' ' || s[0] == '\t')) {
		if (p->infield)
			field_append(p, s, clen);
		else
			flag(p, "header continuation without a field");
		return;
	}
	field_flush(p, e);
	colon = memchr(s, ':', clen);
	for (i = 0; colon != NULL && s + i < colon; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] > '~')
			break;
	if (colon == NULL || colon == s || s + i != colon) {
		flag(p, "header line without a field name");
		return;
	}
	p->infield = 1;
	p->fieldlen = 0;
	field_append(p, s, clen);
}

/*
 * header_end - the header section of e is over (forced: by a delimiter
 * or the end of input, so it has no body); decide what the body is
 */
static void
header_end(struct mime_parser *p, struct entity *e, uint64_t body,
    int forced)
{
	int	 multi, msg;

	field_flush(p, e);
	e->pub.body = body;
	if (!(e->seen & SEEN_CT) || e->pub.type[0] == '\0') {
		/* RFC 2046 5.1.5: parts of a digest default to messages */
		if (e->digest == -1)
			memcpy(e->pub.type, "message/rfc822", 15);
		else
			memcpy(e->pub.type, "text/plain", 11);
		e->pub.flags |= MP_DEFAULT_TYPE;
	}
	if (e->pub.namelen > 0)
		e->pub.flags |= MP_HAS_NAME;
	multi = strncmp(e->pub.type, "multipart/", 10) == 0;
	msg = strcmp(e->pub.type, "message/rfc822") == 0;
	if (multi && e->blen == 0) {
		flag(p, "multipart without a boundary");
		multi = 0;
	}
	if (msg && e->pub.enc != MIME_ENC_IDENTITY) {
		/* RFC 2046 5.2.1: only 7bit, 8bit or binary */
		flag(p, "encoded message/rfc822 part");
		msg = 0;
	}
	if ((multi || msg) && !forced && e->pub.depth >= p->lim.max_depth) {
		flag(p, "MIME nesting too deep");
		multi = msg = 0;
	}
	if (forced)
		multi = msg = 0;
	if (multi) {
		e->pub.flags |= MP_MULTIPART;
		e->state = E_PRE;
		e->digest = strcmp(e->pub.type, "multipart/digest") == 0;
	} else if (msg) {
		e->pub.flags |= MP_MESSAGE;
		e->state = E_MSG;
	} else
		e->state = E_BODY;
	if (p->cb.part_start != NULL)
		p->cb.part_start(p->arg, &e->pub);
	if (msg && push(p, e, body, 0) == -1)
		e->state = E_EPI;
}

/* field_append - add to the field being read, cut at MIME_FIELD_MAX */
static void
field_append(struct mime_parser *p, const char *s, size_t len)
{
	size_t	 room = sizeof(p->field) - p->fieldlen;

	if (!p->infield)
		return;
	if (len > room)
		len = room;
	memcpy(p->field + p->fieldlen, s, len);
	p->fieldlen += len;
}

/* field_flush - a field is complete: report it, read the Content-* */
static void
field_flush(struct mime_parser *p, struct entity *e)
{
	const char	*colon;
	size_t		 nlen, vlen;

	if (!p->infield)
		return;
	p->infield = 0;
	if (p->cb.header != NULL)
		p->cb.header(p->arg, &e->pub, p->field, p->fieldlen);
	colon = memchr(p->field, ':', p->fieldlen);
	nlen = (size_t)(colon - p->field);
	vlen = p->fieldlen - nlen - 1;
	if (nlen > 8 && mem_casecmp(p->field, "content-", 8) == 0)
		field_content(p, e, p->field + 8, nlen - 8, colon + 1, vlen);
}

/* field_content - Content-Type, -Transfer-Encoding, -Disposition */
static void
field_content(struct mime_parser *p, struct entity *e, const char *name,
    size_t nlen, const char *v, size_t vlen)
{
	if (nlen == 4 && mem_casecmp(name, "type", 4) == 0) {
		if (e->seen & SEEN_CT) {
			flag(p, "duplicate Content-Type");
			return;
		}
		e->seen |= SEEN_CT;
		parse_ctype(p, e, v, vlen);
	} else if (nlen == 17 &&
	    mem_casecmp(name, "transfer-encoding", 17) == 0) {
		if (e->seen & SEEN_CTE) {
			flag(p, "duplicate Content-Transfer-Encoding");
			return;
		}
		e->seen |= SEEN_CTE;
		parse_cte(e, v, vlen);
	} else if (nlen == 11 && mem_casecmp(name, "disposition", 11) == 0) {
		if (e->seen & SEEN_CD) {
			flag(p, "duplicate Content-Disposition");
			return;
		}
		e->seen |= SEEN_CD;
		parse_cdisp(p, e, v, vlen);
	}
}

/*
 * parse_ctype - RFC 2045 5.1: type "/" subtype *(";" parameter).  A
 * field that does not parse leaves the default type (RFC 2045 5.2).
 */
static void
parse_ctype(struct mime_parser *p, struct entity *e, const char *v,
    size_t len)
{
	char	 tmp[MIME_NAME_MAX];
	size_t	 i, t, s;
	int	 n;

	i = skip_cfws(v, len, 0);
	t = token_len(v, len, i);
	if (t == 0 || i + t >= len || v[i + t] != '/') {
		e->pub.type[0] = '\0';
		return;
	}
	s = token_len(v, len, i + t + 1);
	if (s == 0 || t + 1 + s >= sizeof(e->pub.type)) {
		e->pub.type[0] = '\0';
		return;
	}
	memcpy(e->pub.type, v + i, t + 1 + s);
	e->pub.type[t + 1 + s] = '\0';
	mem_ascii_lower(e->pub.type, t + 1 + s);
	if ((n = mime_param(v, len, "boundary", e->boundary,
	    sizeof(e->boundary))) > 0) {
		if ((size_t)n >= sizeof(e->boundary))
			flag(p, "boundary too long");
		e->blen = (size_t)n;
	}
	if ((n = mime_param(v, len, "charset", tmp, sizeof(tmp))) > 0) {
		if ((size_t)n >= sizeof(e->pub.charset))
			n = sizeof(e->pub.charset) - 1;
		memcpy(e->pub.charset, tmp, (size_t)n);
		e->pub.charset[n] = '\0';
		mem_ascii_lower(e->pub.charset, (size_t)n);
	}
	if ((n = mime_param(v, len, "name", tmp, sizeof(tmp))) >= 0)
		set_name(e, tmp, (size_t)n, 1, n == 0);
}

/* parse_cte - RFC 2045 6.1; unknown encodings are taken as they are */
static void
parse_cte(struct entity *e, const char *v, size_t len)
{
	size_t	 i, t;

	i = skip_cfws(v, len, 0);
	t = token_len(v, len, i);
	if (t == 6 && mem_casecmp(v + i, "base64", 6) == 0)
		e->pub.enc = MIME_ENC_BASE64;
	else if (t == 16 && mem_casecmp(v + i, "quoted-printable", 16) == 0)
		e->pub.enc = MIME_ENC_QP;
	else
		e->pub.enc = MIME_ENC_IDENTITY;
}

/* parse_cdisp - RFC 2183: disposition type and filename */
static void
parse_cdisp(struct mime_parser *p, struct entity *e, const char *v,
    size_t len)
{
	char	 tmp[MIME_NAME_MAX];
	size_t	 i, t;
	int	 n;

	i = skip_cfws(v, len, 0);
	t = token_len(v, len, i);
	if (t == 10 && mem_casecmp(v + i, "attachment", 10) == 0)
		e->pub.flags |= MP_ATTACHMENT;
	if ((n = mime_param(v, len, "filename", tmp, sizeof(tmp))) >= 0)
		set_name(e, tmp, (size_t)n, 2, n == 0);
}

/*
 * set_name - keep the file name of the better source: the disposition
 * filename over the type's name parameter.  An empty name still says
 * that a name was given.
 */
static void
set_name(struct entity *e, const char *s, size_t len, int prio, int empty)
{
	if (prio <= e->nameprio)
		return;
	e->nameprio = prio;
	if (len > sizeof(e->pub.name))
		len = sizeof(e->pub.name);
	memcpy(e->pub.name, s, len);
	e->pub.namelen = len;
	if (empty)
		e->pub.flags |= MP_HAS_NAME;
}

/*
 * body_line - one line (or piece) of a leaf body.  Its CRLF is held
 * back until the next line shows it is not the delimiter's.
 */
static void
body_line(struct mime_parser *p, struct entity *e, const char *s,
    size_t len, int first, int last)
{
	size_t	 n;
	int	 soft = 0;

	switch (e->pub.enc) {
	case MIME_ENC_BASE64:
		n = b64_step(p, e, s, len, p->dec);
		if (n > 0)
			emit(p, e, p->dec, n);
		return;
	case MIME_ENC_QP:
		if (last) {
			/* RFC 2045 6.7 (3): trailing blanks are not data */
			while (len > 0 && (s[len - 1] == ' ' ||
			    s[len - 1] == '\t'))
				len--;
			if (len > 0 && s[len - 1] == '=') {
				soft = 1;
				len--;
			}
		}
		if (first && e->pending_crlf)
			emit(p, e, "\r\n", 2);
		e->pending_crlf = 0;
		n = hex_decode(s, len, '=', p->dec, len);
		if (n > 0)
			emit(p, e, p->dec, n);
		e->pending_crlf = last && !soft;
		return;
	case MIME_ENC_IDENTITY:
		if (first && e->pending_crlf)
			emit(p, e, "\r\n", 2);
		e->pending_crlf = 0;
		if (len > 0)
			emit(p, e, s, len);
		e->pending_crlf = last;
		return;
	}
}

static void
emit(struct mime_parser *p, struct entity *e, const char *s, size_t len)
{
	if (p->cb.body != NULL)
		p->cb.body(p->arg, &e->pub, s, len);
}

/*
 * b64_step - decode the base64 characters of one line into out.
 * Blanks are skipped; other foreign characters and data after '='
 * padding are flagged, and decoding goes on (RFC 2045 6.8 says to
 * ignore foreign characters).
 */
static size_t
b64_step(struct mime_parser *p, struct entity *e, const char *s,
    size_t len, char *out)
{
	size_t	 i, o = 0;
	int	 v;

	for (i = 0; i < len; i++) {
		if ((v = b64_digit((unsigned char)s[i])) >= 0) {
			if (e->b64pad) {
				flag(p, "base64 data after padding");
				e->b64pad = 0;
				e->b64bits = 0;
			}
			e->b64acc = (e->b64acc << 6) | (uint32_t)v;
			e->b64bits += 6;
			if (e->b64bits >= 8) {
				e->b64bits -= 8;
				out[o++] = (char)((e->b64acc >> e->b64bits) &
				    0xff);
			}
		} else if (s[i] == '=')
			e->b64pad = 1;
		else if (s[i] != ' ' && s[i] != '\t')
			flag(p, "invalid base64 character");
	}
	return o;
}

/*
 * hex_decode - esc and two hex digits to an octet (quoted-printable
 * "=XX", RFC 2231 "%XX"); a stray esc is kept as it is.  At most outsz
 * octets; never more than len, so outsz = len never cuts.
 */
static size_t
hex_decode(const char *s, size_t len, int esc, char *out, size_t outsz)
{
	size_t	 i, o = 0;
	int	 h, l;

	for (i = 0; i < len && o < outsz; i++) {
		if (s[i] == esc && i + 2 < len &&
		    (h = hexval((unsigned char)s[i + 1])) >= 0 &&
		    (l = hexval((unsigned char)s[i + 2])) >= 0) {
			out[o++] = (char)(h << 4 | l);
			i += 2;
		} else
			out[o++] = s[i];
	}
	return o;
}

/* skip_cfws - blanks and RFC 5322 comments (nested) from i */
static size_t
skip_cfws(const char *s, size_t len, size_t i)
{
	unsigned	 depth = 0;

	for (; i < len; i++) {
		if (depth > 0) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '(')
				depth++;
			else if (s[i] == ')')
				depth--;
		} else if (s[i] == '(')
			depth = 1;
		else if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' &&
		    s[i] != '\n')
			break;
	}
	return i < len ? i : len;
}

/* token_len - RFC 2045 5.1 token characters from i */
static size_t
token_len(const char *s, size_t len, size_t i)
{
	size_t	 j;

	for (j = i; j < len; j++)
		if ((unsigned char)s[j] <= ' ' || (unsigned char)s[j] >= 0x7f ||
		    is_tspecial((unsigned char)s[j]))
			break;
	return j - i;
}

static int
is_tspecial(int c)
{
	return c != '\0' && strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * param_next - the next "attribute=value" after position *ip of a
 * field value (the first one follows the first ';' outside quotes).
 * The value is unquoted into val (PARAM_VAL_MAX).  An unquoted value
 * runs to the next ';' with its trailing blanks cut, so that
 * "filename=a b.exe" is read as readers read it.  0, or -1 at the end.
 */
static int
param_next(const char *s, size_t len, size_t *ip, const char **attr,
    size_t *alen, char *val, size_t *vlen)
{
	size_t	 i = *ip, t, o;
	int	 inq = 0;

	if (i == 0) {
		for (; i < len && (inq || s[i] != ';'); i++)
			if (s[i] == '"')
				inq = !inq;
			else if (inq && s[i] == '\\')
				i++;
	}
	for (;;) {
		while (i < len && s[i] == ';')
			i = skip_cfws(s, len, i + 1);
		if (i >= len)
			return -1;
		t = token_len(s, len, i);
		*attr = s + i;
		*alen = t;
		i = skip_cfws(s, len, i + t);
		if (t > 0 && i < len && s[i] == '=')
			break;
		/* not a parameter: skip to the next ';' */
		while (i < len && s[i] != ';')
			i++;
	}
	i = skip_cfws(s, len, i + 1);
	o = 0;
	if (i < len && s[i] == '"') {
		for (i++; i < len && s[i] != '"'; i++) {
			if (s[i] == '\\' && i + 1 < len)
				i++;
			if (o < PARAM_VAL_MAX)
				val[o++] = s[i];
		}
		if (i < len)
			i++;
		while (i < len && s[i] != ';')
			i++;
	} else {
		for (; i < len && s[i] != ';'; i++)
			if (o < PARAM_VAL_MAX)
				val[o++] = s[i];
		while (o > 0 && (val[o - 1] == ' ' || val[o - 1] == '\t'))
			o--;
	}
	*vlen = o;
	*ip = i;
	return 0;
}

/*
 * pct_decode - an RFC 2231 extended value: charset'language'%XX... (the
 * prefix only when prefixed, i.e. in the first segment)
 */
static size_t
pct_decode(const char *s, size_t len, int prefixed, char *out, size_t outsz)
{
	const char	*q1, *q2;

	if (prefixed && (q1 = memchr(s, '\'', len)) != NULL &&
	    (q2 = memchr(q1 + 1, '\'', len - (size_t)(q1 + 1 - s))) != NULL) {
		len -= (size_t)(q2 + 1 - s);
		s = q2 + 1;
	}
	return hex_decode(s, len, '%', out, outsz);
}

/*
 * word_decode - one encoded-word "=?charset?B|Q?text?=" at s (RFC 2047
 * 2, 4): the decoded octets into out, *used the octets read; (size_t)-1
 * if s does not start with a well-formed one.
 */
static size_t
word_decode(const char *s, size_t len, char *out, size_t outsz,
    size_t *used)
{
	size_t		 i, o = 0, end;
	uint32_t	 acc = 0;
	unsigned	 bits = 0;
	int		 enc, v, h, l;

	if (len > 75 * 4)		/* words are at most 75 (RFC 2047 2) */
		len = 75 * 4;
	for (i = 2; i < len && s[i] != '?'; i++)
		if ((unsigned char)s[i] <= ' ')
			return (size_t)-1;
	if (i == 2 || i + 3 >= len || s[i + 2] != '?')
		return (size_t)-1;
	enc = toupper((unsigned char)s[i + 1]);
	if (enc != 'B' && enc != 'Q')
		return (size_t)-1;
	i += 3;
	for (end = i; end + 1 < len; end++)
		if (s[end] == '?' && s[end + 1] == '=')
			break;
	if (end + 1 >= len)
		return (size_t)-1;
	for (; i < end && o < outsz; i++) {
		if (enc == 'B') {
			if ((v = b64_digit((unsigned char)s[i])) < 0)
				continue;
			acc = (acc << 6) | (uint32_t)v;
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				out[o++] = (char)((acc >> bits) & 0xff);
			}
		} else if (s[i] == '_')
			out[o++] = ' ';
		else if (s[i] == '=' && i + 2 < end &&
		    (h = hexval((unsigned char)s[i + 1])) >= 0 &&
		    (l = hexval((unsigned char)s[i + 2])) >= 0) {
			out[o++] = (char)(h << 4 | l);
			i += 2;
		} else
			out[o++] = s[i];
	}
	*used = end + 2;
	return o;
}
