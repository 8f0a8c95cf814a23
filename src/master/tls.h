/*
 * tls.h - server TLS context, loaded by the master before privileges
 * are dropped (the private key file is readable by root only).
 */
#ifndef MOAT_MASTER_TLS_H
#define MOAT_MASTER_TLS_H

#include <stddef.h>

/*
 * tls_server_ctx_load - SSL_CTX for TLS 1.2/1.3 with forward-secret
 * ciphers only, the certificate chain and the matching key.  NULL with
 * a reason in err on failure.
 */
void	*tls_server_ctx_load(const char *cert, const char *key,
	    char *err, size_t errlen);
void	 tls_ctx_free(void *);

#endif
