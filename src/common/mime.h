/*
 * mime.h - streaming MIME parser (RFC 2045, 2046, 2047, 2231).
 *
 * The parser is fed a message's content in chunks of any size, as it
 * is stored in the spool (CRLF lines, dot-unstuffed), and never holds
 * it whole: it keeps one line (MIME_LINE_MAX), one header field
 * (MIME_FIELD_MAX) and a stack of the enclosing entities.  It reports
 *
 *   header()      every header field of every entity, unfolded
 *                 (RFC 5322 2.2.3: the CRLFs removed, the blanks kept)
 *   part_start()  an entity once its header section is read: declared
 *                 type, file name, transfer encoding, byte offsets
 *   body()        the decoded octets of each leaf entity (base64 and
 *                 quoted-printable decoded on the fly)
 *   part_end()    the entity is over; its end offset is known
 *
 * Entities nest: the message itself is id 0 at depth 0; the parts of
 * a multipart and the message inside a message/rfc822 part are one
 * level deeper.  Callbacks come strictly nested (a part ends before
 * its parent does), which lets a caller keep per-depth state.
 *
 * Byte offsets count the octets fed since mime_new().  A part of a
 * multipart spans [start, end): from the first octet after its
 * delimiter line to the CRLF that precedes the next delimiter (that
 * CRLF belongs to the delimiter, RFC 2046 5.1.1).  Replacing that
 * range with another entity keeps the message well formed.
 *
 * Malformed input is never fatal: it is flagged (mime_malformed()
 * gives the first reason) and parsed on as leniently as common mail
 * readers do.  Exceeding a limit (depth, part count, header section
 * size) is flagged too; beyond the depth limit a multipart is treated
 * as an opaque leaf, beyond the other limits the structure is no
 * longer followed (the caller decides, by policy, what a malformed
 * message deserves).
 */
#ifndef MOAT_MIME_H
#define MOAT_MIME_H

#include <stddef.h>
#include <stdint.h>

#define MIME_TYPE_MAX		128	/* "type/subtype", lower case */
#define MIME_NAME_MAX		256	/* file name octets kept */
#define MIME_CHARSET_MAX	40
#define MIME_BOUNDARY_MAX	200	/* RFC 2046 says 70; be lenient */
#define MIME_LINE_MAX		2048	/* longer lines are cut in pieces */
#define MIME_FIELD_MAX		8192	/* unfolded field kept; rest cut */
#define MIME_DEPTH_HARD		64	/* bound of mime_limits.max_depth */

enum mime_enc {
	MIME_ENC_IDENTITY,	/* 7bit, 8bit, binary, unknown */
	MIME_ENC_BASE64,
	MIME_ENC_QP
};

/* mime_part.flags */
#define MP_MULTIPART	0x01	/* multipart/x with a boundary */
#define MP_MESSAGE	0x02	/* message/rfc822 followed into */
#define MP_ATTACHMENT	0x04	/* Content-Disposition: attachment */
#define MP_IN_MULTIPART	0x08	/* a part of a multipart */
#define MP_DEFAULT_TYPE	0x10	/* no (usable) Content-Type field */
#define MP_HAS_NAME	0x20	/* a file name was given */

/* one entity; valid during the callbacks only (it lives on a stack) */
struct mime_part {
	unsigned		 id;		/* 0 = the message, ... */
	unsigned		 depth;		/* 0 = the message */
	const struct mime_part	*parent;	/* NULL for the message */
	unsigned		 flags;		/* MP_* */
	enum mime_enc		 enc;
	char			 type[MIME_TYPE_MAX];
	char			 charset[MIME_CHARSET_MAX];
	char			 name[MIME_NAME_MAX];	/* decoded octets */
	size_t			 namelen;
	uint64_t		 start;		/* first header octet */
	uint64_t		 body;		/* first body octet */
	uint64_t		 end;		/* past the last (part_end) */
};

struct mime_cb {
	/* one unfolded "Name: value" field, without the final CRLF */
	void	(*header)(void *, const struct mime_part *, const char *,
		    size_t);
	void	(*part_start)(void *, const struct mime_part *);
	/* decoded body octets of a leaf entity, in order */
	void	(*body)(void *, const struct mime_part *, const char *,
		    size_t);
	void	(*part_end)(void *, const struct mime_part *);
};

struct mime_limits {
	unsigned	 max_depth;	/* 1..MIME_DEPTH_HARD */
	unsigned	 max_parts;	/* entities in the message */
	size_t		 max_header;	/* octets of one header section */
};

struct mime_parser;

/* mime_new - a parser with these limits and callbacks (any may be NULL) */
struct mime_parser *mime_new(const struct mime_limits *,
		    const struct mime_cb *, void *arg);
/* mime_feed - the next len octets of the content */
void		 mime_feed(struct mime_parser *, const char *, size_t);
/* mime_end - end of the content: closes every open entity */
void		 mime_end(struct mime_parser *);
/* mime_malformed - the first problem found, or NULL */
const char	*mime_malformed(const struct mime_parser *);
/* mime_nparts - entities seen so far */
unsigned	 mime_nparts(const struct mime_parser *);
void		 mime_free(struct mime_parser *);

/*
 * mime_param - the value of parameter want (a C string, any case) in a
 * Content-Type or Content-Disposition field value v[0..len), with
 * RFC 2231 continuations and charset'lang'%XX values and RFC 2047
 * encoded-words decoded (the octets are kept, no charset conversion).
 * Copies at most outsz octets; returns the length (cut to outsz), or
 * -1 if the parameter is absent.
 */
int		 mime_param(const char *v, size_t len, const char *want,
		    char *out, size_t outsz);
/*
 * mime_decode_words - decode RFC 2047 encoded-words in s[0..len) into
 * out[0..outsz); blanks between adjacent encoded-words are dropped
 * (RFC 2047 6.2).  Returns the length written.
 */
size_t		 mime_decode_words(const char *s, size_t len, char *out,
		    size_t outsz);

#endif
