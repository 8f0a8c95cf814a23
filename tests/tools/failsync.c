/*
 * failsync.c - an LD_PRELOAD library for tests/integration/
 * test_fsync_fail.py: fsync() and fdatasync() fail while a trigger file
 * exists, as they do on a failing disk.
 *
 * Every role of moatd works from the spool's top directory (chrooted
 * there when started as root), so the triggers are names in it:
 *
 *   FAILSYNC.file.EIO     the fsync of any regular file fails with EIO
 *   FAILSYNC.file.ENOSPC  ... with ENOSPC (a full disk at writeback)
 *   FAILSYNC.incoming     the fsync of the directory incoming/ fails
 *                         with EIO
 *
 * Any other call goes to the real system call.  The checks use only
 * fstat() and stat(), which every sandboxed role may call.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <errno.h>
#include <unistd.h>

int	fsync(int);
int	fdatasync(int);

static int	failsync_call(long, int);
static int	failsync_errno(int);
static int	failsync_exists(const char *);

int
fsync(int fd)
{
	return failsync_call(SYS_fsync, fd);
}

int
fdatasync(int fd)
{
	return failsync_call(SYS_fdatasync, fd);
}

/* the system call nr on fd, unless a trigger says it fails */
static int
failsync_call(long nr, int fd)
{
	int e;

	if ((e = failsync_errno(fd)) != 0) {
		errno = e;
		return -1;
	}
	return (int)syscall(nr, fd);
}

/* the errno this fsync is to fail with, or 0 */
static int
failsync_errno(int fd)
{
	struct stat st, dir;

	if (fstat(fd, &st) == -1)
		return 0;
	if (S_ISREG(st.st_mode)) {
		if (failsync_exists("FAILSYNC.file.ENOSPC"))
			return ENOSPC;
		if (failsync_exists("FAILSYNC.file.EIO"))
			return EIO;
		return 0;
	}
	if (S_ISDIR(st.st_mode) && failsync_exists("FAILSYNC.incoming") &&
	    stat("incoming", &dir) == 0 && dir.st_dev == st.st_dev &&
	    dir.st_ino == st.st_ino)
		return EIO;
	return 0;
}

static int
failsync_exists(const char *name)
{
	struct stat st;

	return stat(name, &st) == 0;
}
