/*
 * master.h - the root master process of moatd.
 */
#ifndef MOAT_MASTER_H
#define MOAT_MASTER_H

#include "../common/config.h"

/*
 * master_run - bind, spawn and supervise the roles until SIGTERM.
 * conf_path is kept for SIGHUP reloads.  Returns the exit status.
 */
int	master_run(const char *conf_path, struct config *conf);

#endif
