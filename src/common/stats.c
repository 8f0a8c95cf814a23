/*
 * stats.c - the shared counter page (see stats.h).
 */
#include <stddef.h>
#include <sys/mman.h>

#include "stats.h"

struct moat_stats *moat_stats;

/* stats_init - map one anonymous shared page; 0 or -1 */
int
stats_init(void)
{
	void	*p;

	if (moat_stats != NULL)
		return 0;
	p = mmap(NULL, sizeof(struct moat_stats), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	moat_stats = p;
	return 0;
}
