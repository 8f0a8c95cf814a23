/*
 * tls.c - server TLS context (OpenSSL 3).
 *
 * TLS 1.2 and 1.3 only.  For 1.2 only ECDHE key exchange with AEAD
 * ciphers, so every session is forward-secret; 1.3 suites are all
 * forward-secret.  No compression, no renegotiation.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"

#define TLS12_CIPHERS \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"

static void	tls_error(char *, size_t, const char *, const char *);

/* tls_server_ctx_load - see tls.h */
void *
tls_server_ctx_load(const char *cert, const char *key, char *err,
    size_t errlen)
{
	SSL_CTX	*ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_error(err, errlen, "SSL_CTX_new", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
		tls_error(err, errlen, "cipher list", "");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_error(err, errlen, "certificate", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_error(err, errlen, "private key", key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errlen, "key does not match certificate", key);
		goto fail;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* tls_ctx_free - release a context from tls_server_ctx_load() */
void
tls_ctx_free(void *ctx)
{
	SSL_CTX_free(ctx);
}

static void
tls_error(char *err, size_t errlen, const char *what, const char *file)
{
	char	 ossl[256];
	unsigned long	 e;

	e = ERR_get_error();
	if (e != 0)
		ERR_error_string_n(e, ossl, sizeof(ossl));
	else
		ossl[0] = '\0';
	if (snprintf(err, errlen, "%s%s%s: %s", what, *file ? " " : "",
	    file, *ossl ? ossl : "failed") >= (int)errlen && errlen > 4)
		memcpy(err + errlen - 4, "...", 4);
}
