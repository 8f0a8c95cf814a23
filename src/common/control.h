/*
 * control.h - the moatctl protocol on the unix socket spool_dir/control.
 *
 * The socket is created by the master (owner `user`, mode 0600) and
 * served by the queue role, which also checks SO_PEERCRED: only uid 0
 * and the `user` uid are served.
 *
 * Request: one line "VERB[ ARG]\n", at most CONTROL_LINE_MAX octets.
 * Reply: a status line "+OK\n" or "-ERR reason\n", then (after +OK)
 * the body as text lines; the server closes the connection at the end.
 * moatctl prints the body as it is and exits 0 after +OK, or prints the
 * reason to stderr and exits 1 after -ERR.
 *
 * Verbs: queue, flush, show ID, hold ID, release ID, delete ID, stats.
 * ("reload" is moatctl sending SIGHUP to the master, whose pid is in
 * spool_dir/moatd.pid.)
 *
 * Body of "queue" (mailq style, one block per message, blank line
 * between blocks, then a summary line):
 *   QID[*|!] SIZE ARRIVAL(asctime-like "Wed Nov 25 16:23:56") SENDER
 *       (last deferral reason; next attempt in 4m)
 *                                         RCPT
 *   -- N Kbytes in M Requests.
 * '!' marks held messages, '*' messages being delivered.  An empty
 * queue prints "Mail queue is empty".
 * Body of "stats": "key=value" lines (see struct moat_stats, plus
 * queue sizes: queue_active=, queue_deferred=, queue_hold=).
 */
#ifndef MOAT_CONTROL_H
#define MOAT_CONTROL_H

#define CONTROL_SOCKET		"control"
#define CONTROL_PIDFILE		"moatd.pid"
#define CONTROL_LINE_MAX	512

#endif
