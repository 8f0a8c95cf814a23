/*
 * ipc.h - small typed messages between roles over SOCK_SEQPACKET
 * socketpairs (created by the master), optionally carrying one fd.
 *
 * Wire: struct ipc_hdr then len payload octets, one datagram each, at
 * most IPC_MAX octets of payload.  Receivers check the type they expect
 * and the exact payload length; anything else is fatal (STYLE.md 8).
 * Message types are defined by each protocol's header, from
 * IPC_VERSION_BASE up, so that a role of another build is refused.
 */
#ifndef MOAT_IPC_H
#define MOAT_IPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IPC_MAX		(64 * 1024)
#define IPC_VERSION_BASE 0x4d310000u	/* "M1" + type */

struct ipc_hdr {
	uint32_t	 type;
	uint32_t	 len;
};

/* ipc_send - send one message; fd = -1 for none.  0 or -1 (errno) */
int	ipc_send(int sock, uint32_t type, const void *, size_t, int fd);

/*
 * ipc_recv - receive one message into p (cap octets).  Returns the
 * payload length, 0 with *type == 0 on EOF, -1 on error (errno; EAGAIN
 * when non-blocking and empty; EMSGSIZE on a truncated message).
 * *fd gets a passed descriptor or -1.
 */
ssize_t	ipc_recv(int sock, uint32_t *type, void *p, size_t cap, int *fd);

#endif
