/*
 * out_tls.c - the client side of TLS for smtp-out (RFC 3207 STARTTLS).
 *
 * One SSL_CTX for the role, made before the event loop starts: TLS 1.2
 * minimum, no compression, no renegotiation, the trust anchors of
 * tls_ca_file or else the system store.  The policy is applied per
 * connection (otls_ssl_new):
 *   verify   SSL_VERIFY_PEER and the expected name (the MX host or the
 *            relay host, RFC 6125): a chain or name that does not
 *            verify fails the handshake;
 *   may,     no check that can fail (opportunistic TLS, RFC 7435), but
 *   encrypt  the same verification runs, so that the log and the
 *            result say "verified=no" when it would have failed.
 * SNI is sent for names, never for address literals (RFC 6066 3).
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "../lib/log.h"
#include "smtp_out.h"

static int	 is_literal(const char *);

/* otls_ctx_new - see smtp_out.h */
void *
otls_ctx_new(const struct config *conf)
{
	SSL_CTX		*ctx;
	char		 msg[256];

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		goto fail;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (conf->tls_ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, conf->tls_ca_file,
		    NULL) != 1)
			goto fail;
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		goto fail;
	return ctx;
fail:
	ERR_error_string_n(ERR_get_error(), msg, sizeof(msg));
	log_warnx("event=tls_error role=smtp-out ca_file=%s error=\"%s\"",
	    conf->tls_ca_file != NULL ? conf->tls_ca_file : "system", msg);
	SSL_CTX_free(ctx);
	return NULL;
}

/* otls_ssl_new - see smtp_out.h */
struct ssl_st *
otls_ssl_new(void *ctx, const char *host, int verify)
{
	SSL		*ssl;
	X509_VERIFY_PARAM *vp;
	int		 ok;

	ERR_clear_error();
	if ((ssl = SSL_new(ctx)) == NULL)
		goto fail;
	vp = SSL_get0_param(ssl);
	if (is_literal(host))
		ok = X509_VERIFY_PARAM_set1_ip_asc(vp, host);
	else {
		X509_VERIFY_PARAM_set_hostflags(vp,
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		ok = X509_VERIFY_PARAM_set1_host(vp, host, 0) == 1 &&
		    SSL_set_tlsext_host_name(ssl, host) == 1;
	}
	if (ok != 1)
		goto fail;
	SSL_set_verify(ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
	    NULL);
	return ssl;
fail:
	log_warnx("event=tls_error role=smtp-out error=\"cannot set up a TLS "
	    "session\"");
	ERR_clear_error();
	SSL_free(ssl);
	return NULL;
}

/* otls_text - see smtp_out.h */
void
otls_text(struct ssl_st *ssl, char *out, size_t outsz)
{
	X509	*peer;
	int	 verified;

	if (ssl == NULL) {
		out_fmt(out, outsz, "tls=no");
		return;
	}
	peer = SSL_get0_peer_certificate(ssl);
	verified = peer != NULL && SSL_get_verify_result(ssl) == X509_V_OK;
	out_fmt(out, outsz, "tls=%s cipher=%s verified=%s",
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl),
	    verified ? "yes" : "no");
}

/* otls_why - see smtp_out.h */
int
otls_why(struct ssl_st *ssl, unsigned long e, char *out, size_t outsz)
{
	char	 msg[256];
	long	 v;

	v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	if (v != X509_V_OK) {
		out_fmt(out, outsz, "%s", X509_verify_cert_error_string(v));
		return 1;
	}
	if (e == 0) {
		out_fmt(out, outsz, "connection closed during the handshake");
		return 0;
	}
	ERR_error_string_n(e, msg, sizeof(msg));
	out_fmt(out, outsz, "%s", msg);
	return 0;
}

/* is_literal - an IPv4 or IPv6 address in text form */
static int
is_literal(const char *host)
{
	struct in6_addr	 a;

	return inet_pton(AF_INET, host, &a) == 1 ||
	    inet_pton(AF_INET6, host, &a) == 1;
}
