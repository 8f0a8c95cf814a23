/*
 * content.h - the content policy engine: attachment types, PCRE2
 * rules, the verdict, and the rewritten copy of a message.
 *
 * A scan is fed the message content as it is stored in the spool
 * (content_scan_data(), any chunking), runs it through the streaming
 * MIME parser (mime.h) and checks each part as it streams past:
 *
 *   - file names (RFC 2231 / RFC 2047 decoded) against the extensions
 *     of attachment_block, every dotted suffix, so "invoice.pdf.exe"
 *     is caught; Unicode bidi overrides in names;
 *   - the declared Content-Type and the type libmagic detects in the
 *     first CONTENT_SNIFF_MAX decoded octets against its MIME types;
 *   - an executable whose name or declared type says otherwise
 *     (attachment_mismatch);
 *   - the names inside zip archives, one level (central directory read
 *     from the last CONTENT_ZIP_TAIL decoded octets of the part);
 *   - content_rules: named PCRE2 rules over header fields, decoded text
 *     parts and decoded attachments.
 *
 * Each finding carries a rule name and an action; the verdict is the
 * most severe action found (enum order), unless a rule with action
 * "accept" matched, which accepts the message as it is.
 *
 * Direction: a scan is inbound or outbound (the caller decides: mail
 * from relay_networks or authenticated clients is outbound).  Rules
 * name the direction they apply to; attachment_action and
 * attachment_action_outbound are the two attachment actions.
 *
 * Rewriting (actions strip and tag): the scan records the byte range
 * of every part to remove; content_rewrite() later re-reads the stored
 * original and writes a copy with those ranges replaced by a short
 * text/plain part naming what was removed, and an X-Moat-Content
 * header naming the rules.  It touches no global state and may run on
 * another thread.
 *
 * content_preinit() loads the libmagic database; call it before chroot
 * (the database is outside the spool).
 */
#ifndef MOAT_CONTENT_H
#define MOAT_CONTENT_H

#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONTENT_RULE_NAME_MAX	64
#define CONTENT_RULES_MAX	1000
#define CONTENT_SNIFF_MAX	8192		/* octets shown to libmagic */
#define CONTENT_ZIP_TAIL	(64 * 1024)	/* zip central directory */
#define CONTENT_WINDOW		(64 * 1024)	/* PCRE2 scan window */
#define CONTENT_OVERLAP		1024		/* kept between windows */
#define CONTENT_SUMMARY_MAX	512

/* actions, least severe first; content_action_names[] in this order */
enum content_action {
	CA_ACCEPT,	/* nothing; as a rule's action: accept the message */
	CA_LOG,		/* an event=alarm line only */
	CA_TAG,		/* X-Moat-Content header */
	CA_STRIP,	/* replace the part with a text/plain notice */
	CA_DISCARD,	/* 250, then dropped */
	CA_QUARANTINE,	/* 250, kept in spool/quarantine */
	CA_TEMPFAIL,	/* 451 4.7.1 */
	CA_REJECT	/* 554 5.7.1 (5.6.0 for malformed MIME) */
};
extern const char *const content_action_names[];	/* NULL-ended */

struct config;
struct content_rules;
struct content_scan;

struct content_verdict {
	enum content_action	 action;
	char			 rule[CONTENT_RULE_NAME_MAX + 1];
					/* the deciding rule, "" = none */
	char			 reply[160];	/* reject, tempfail */
	int			 rewrite;	/* content_rewrite() needed */
	char			 summary[CONTENT_SUMMARY_MAX];
					/* "rule(action) detail; ..." */
};

/* content_preinit - load the libmagic database (before chroot); 0/-1 */
int	 content_preinit(void);

/*
 * content_rules_load - parse a content_rules file.  Each error is
 * written to errf as "FILE:LINE: reason" and counted in *nerr; NULL if
 * there was any.  Line format (fields separated by blanks):
 *
 *   NAME SCOPE DIRECTION ACTION /PATTERN/FLAGS
 *
 * NAME [A-Za-z0-9_.-]{1,64}; SCOPE headers, body, attachment or any;
 * DIRECTION inbound, outbound or any; ACTION one of
 * content_action_names (strip needs scope body or attachment);
 * PATTERN a PCRE2 expression between the first and the last '/' of
 * the line (so '/' need not be escaped); FLAGS of i, m, s, x.
 */
struct content_rules *content_rules_load(const char *path, FILE *errf,
	    size_t *nerr);
/* content_rules_mem - the same from memory (tests, fuzzing) */
struct content_rules *content_rules_mem(const char *name, const char *p,
	    size_t len, FILE *errf, size_t *nerr);
size_t	 content_rules_count(const struct content_rules *);
void	 content_rules_free(struct content_rules *);

/*
 * content_enabled - does this config ask for content scanning at all
 * (content_filter = yes)?
 */
int	 content_enabled(const struct config *);

/*
 * content_scan_new - a scan of one message under c (which must outlive
 * it); qid is used in log lines.  NULL on memory exhaustion.
 */
struct content_scan *content_scan_new(const struct config *c, int outbound,
	    const char *qid);
/* content_scan_data - the next len octets of the stored content */
void	 content_scan_data(struct content_scan *, const char *, size_t);
/* content_scan_end - end of the content; returns the verdict */
const struct content_verdict *content_scan_end(struct content_scan *);
void	 content_scan_free(struct content_scan *);

/*
 * content_rewrite - write the rewritten content: the original is the
 * size octets at offset off of fd (read with pread, the offset of fd is
 * not used); out() gets the new content in pieces and returns 0 or -1.
 * Only after content_scan_end().  0, or -1 (read error, short file or
 * out() failed).
 */
typedef int content_write_fn(void *, const char *, size_t);
int	 content_rewrite(const struct content_scan *, int fd, off_t off,
	    uint64_t size, content_write_fn *out, void *arg);

/*
 * content_name_blocked - is a file name (len octets) blocked by the
 * extension words of list (n entries; entries with a '/' are types and
 * ignored here)?  Every dotted suffix counts; trailing dots and blanks
 * are ignored as Windows ignores them.  Pure, for the tests.
 */
int	 content_name_blocked(char *const *list, size_t n, const char *name,
	    size_t len);
/*
 * content_type_blocked - is a MIME type (C string) in list?  An entry
 * "type/" followed by a star matches every subtype.
 */
int	 content_type_blocked(char *const *list, size_t n, const char *type);
/*
 * content_zip_names - call fn for each file name in the central
 * directory found in the last len octets p of a zip archive; returns
 * the number of names, or -1 when no end-of-central-directory record
 * is in p.  A directory that starts before p is searched for entry
 * signatures from the start of p (best effort).
 */
int	 content_zip_names(const unsigned char *p, size_t len,
	    void (*fn)(void *, const char *, size_t), void *arg);

#endif
