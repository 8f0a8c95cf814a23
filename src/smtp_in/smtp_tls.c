/*
 * smtp_tls.c - STARTTLS (RFC 3207) and implicit TLS for smtp-in.
 *
 * The SSL_CTX is loaded by the master as root (ctx->tls_ctx); this
 * file only makes per-session SSL objects and bufferevent_openssl
 * bufferevents.  STARTTLS sequence:
 *   1. "220 2.0.0 Ready to start TLS" is queued, the state becomes
 *      SMTP_ST_TLS and everything the client pipelined after STARTTLS
 *      is discarded (CVE-2011-0411: plaintext injected into the TLS
 *      session);
 *   2. once the 220 left (write callback, output empty) the plain
 *      bufferevent is replaced by an accepting TLS one on the same fd;
 *   3. on BEV_EVENT_CONNECTED the session forgets everything it knew
 *      (RFC 3207 4.2): back to SMTP_ST_CONNECTED, EHLO again, no
 *      STARTTLS advertised, proto ESMTPS.
 * TLS bufferevents defer their callbacks, so that a write inside a
 * handler never re-enters the session.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "../lib/log.h"
#include "smtp_in.h"

/* smtp_cmd_starttls - STARTTLS: 220, then the switch once flushed */
void
smtp_cmd_starttls(struct smtp_session *s, const struct smtp_cmd *c)
{
	if (smtp_srv->tls_ctx == NULL) {
		/* not advertised: no certificate configured */
		smtp_reply_error(s, "502 5.5.1 Command not implemented");
		return;
	}
	if (s->flags & SF_TLS) {
		smtp_reply_error(s, "503 5.5.1 TLS already active");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	/* the input loop discards the rest of the buffer on this state */
	smtp_enter_state(s, SMTP_ST_TLS);
}

/*
 * smtp_tls_bev - an accepting TLS bufferevent on fd, which it then
 * owns (closed on free together with the SSL object).
 */
struct bufferevent *
smtp_tls_bev(struct smtp_session *s, int fd)
{
	struct bufferevent	*bev;
	SSL			*ssl;

	if ((ssl = SSL_new(smtp_srv->tls_ctx)) == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(smtp_srv->base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL)
		return NULL;
	/* a client that just closes TCP after QUIT is not an error */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/*
 * smtp_tls_switch - the 220 is out: replace the plain bufferevent by
 * a TLS one and start the handshake.
 */
void
smtp_tls_switch(struct smtp_session *s)
{
	struct bufferevent	*bev;
	struct evbuffer		*in;

	in = bufferevent_get_input(s->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	s->flags &= ~SF_DIRECTW;	/* the TLS bufferevent writes */
	bufferevent_free(s->bev);
	s->bev = NULL;
	if ((bev = smtp_tls_bev(s, s->fd)) == NULL) {
		log_warnx("event=error client=%s sid=%lu error=tls_setup",
		    s->addrtext, s->id);
		s->reason = "tls_setup";
		smtp_session_free(s);
		return;
	}
	s->fd = -1;
	s->bev = bev;
	s->flags |= SF_HANDSHAKE;
	smtp_session_setcb(s);
	bufferevent_set_timeouts(bev, &smtp_srv->cmd_tv, &smtp_srv->cmd_tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/*
 * smtp_tls_done - handshake complete.  After STARTTLS the session
 * starts over (RFC 3207 4.2); with implicit TLS the greeting queued at
 * connect time follows the handshake.
 */
void
smtp_tls_done(struct smtp_session *s)
{
	const char	*proto = "?", *cipher = "?";
	int		 bits = 0;

	s->flags &= ~SF_HANDSHAKE;
	s->flags |= SF_TLS;
	(void)smtp_tls_info(s, &proto, &cipher, &bits);
	log_info("event=starttls client=%s sid=%lu protocol=%s cipher=%s "
	    "bits=%d", s->addrtext, s->id, proto, cipher, bits);
	if (s->state == SMTP_ST_TLS) {
		free(s->helo);
		s->helo = NULL;
		s->flags &= ~SF_ESMTP;
		smtp_enter_state(s, SMTP_ST_CONNECTED);
	}
	smtp_session_process(s);
}

/* smtp_tls_info - protocol, cipher and its bits of a TLS session */
int
smtp_tls_info(struct smtp_session *s, const char **proto,
    const char **cipher, int *bits)
{
	SSL	*ssl;

	if (s->bev == NULL || !(s->flags & SF_TLS) ||
	    (ssl = bufferevent_openssl_get_ssl(s->bev)) == NULL)
		return -1;
	*proto = SSL_get_version(ssl);
	*cipher = SSL_get_cipher_name(ssl);
	*bits = SSL_get_cipher_bits(ssl, NULL);
	return 0;
}

/* smtp_tls_log_error - the OpenSSL reason of a failed TLS session */
void
smtp_tls_log_error(struct smtp_session *s)
{
	char		 msg[256];
	unsigned long	 e;

	if (s->bev == NULL)
		return;
	if ((e = bufferevent_get_openssl_error(s->bev)) == 0) {
		log_info("event=tls_error client=%s sid=%lu error=io",
		    s->addrtext, s->id);
		return;
	}
	ERR_error_string_n(e, msg, sizeof(msg));
	log_info("event=tls_error client=%s sid=%lu error=\"%s\"",
	    s->addrtext, s->id, msg);
	ERR_clear_error();
}
