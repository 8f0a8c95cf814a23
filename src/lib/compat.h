/*
 * compat.h - what the BSDs have and glibc lacks; each piece is guarded
 * so that a system that has it keeps its own.
 */
#ifndef MOAT_COMPAT_H
#define MOAT_COMPAT_H

#include <sys/queue.h>

/* glibc's <sys/queue.h> lacks the BSD _SAFE iterator */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

#endif
