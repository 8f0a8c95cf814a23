/*
 * unit.h - what the unit test programs share: the pass and fail
 * counts, check() and CHECK().  Each program is one .c file linked
 * with the core objects; this header gives it its own copies.  main()
 * ends with the line "N passed, M failed" that mk/run-unit.sh sums.
 */
#ifndef MOAT_UNIT_H
#define MOAT_UNIT_H

#include <stdarg.h>
#include <stdio.h>

static int	 npass, nfail;

/* check - count ok; if false, print "FAIL: " and the message */
static inline void	 check(int, const char *, ...)
			    __attribute__((format(printf, 2, 3)));

static inline void
check(int ok, const char *fmt, ...)
{
	va_list	 ap;

	if (ok) {
		npass++;
		return;
	}
	nfail++;
	printf("FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* CHECK - count cond; if false, print "FAIL file:line: " and the message */
#define CHECK(cond, ...) do {						\
	if (cond)							\
		npass++;						\
	else {								\
		nfail++;						\
		printf("FAIL %s:%d: ", __FILE__, __LINE__);		\
		printf(__VA_ARGS__);					\
		printf("\n");						\
	}								\
} while (0)

#endif
