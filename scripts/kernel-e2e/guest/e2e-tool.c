/*
 * e2e-tool: the guest side of imaforge's kernel end-to-end test.
 *
 * A static binary in the test initramfs that performs one system call the
 * check is about and prints its outcome as a single word: "ok" or the errno
 * name (EACCES, ENOKEY, ...). The shell cannot tell EACCES from ENOEXEC or
 * ENOENT by an exit status, so every verdict the host judges goes through here.
 *
 *   e2e-tool exec PATH [ARG...]   execve(PATH); on success the program's own
 *                                 output follows (the test programs print
 *                                 "E2E-RAN <marker>"), on failure the errno name
 *   e2e-tool read PATH            open(O_RDONLY) and read PATH to the end
 *   e2e-tool insmod PATH          finit_module(open(PATH), "", 0): IMA appraises
 *                                 modules only when they come with a descriptor
 *   e2e-tool setima PATH SIGFILE  setxattr(PATH, "security.ima", contents of SIGFILE)
 *                                 (restores signatures on the cpio initramfs,
 *                                 which cannot carry xattrs)
 *   e2e-tool dmcreate NAME TABLE  create device-mapper device NAME, read-only,
 *                                 from the one-line table in file TABLE
 *                                 ("START LENGTH TARGET PARAMS..."), and resume
 *                                 it (DM_DEV_CREATE, DM_TABLE_LOAD,
 *                                 DM_DEV_SUSPEND); prints "ok dm-MINOR"
 *   e2e-tool writefile DST SRC    write SRC's bytes into DST, reporting the
 *                                 errno of the write(2) that fails (the IMA
 *                                 policy file takes one rule per write and
 *                                 parses the set at close)
 *
 * Exit status: 0 for "ok", 1 for an errno verdict, 2 for usage errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/dm-ioctl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

static const struct {
	int num;
	const char *name;
} errnames[] = {
	{EACCES, "EACCES"}, {EPERM, "EPERM"},     {ENOENT, "ENOENT"},
	{ENOEXEC, "ENOEXEC"}, {EINVAL, "EINVAL"}, {ENOKEY, "ENOKEY"},
	{EKEYREJECTED, "EKEYREJECTED"}, {EKEYREVOKED, "EKEYREVOKED"},
	{EKEYEXPIRED, "EKEYEXPIRED"}, {EBADMSG, "EBADMSG"}, {EIO, "EIO"},
	{ENODATA, "ENODATA"}, {ENOTSUP, "ENOTSUP"}, {EROFS, "EROFS"},
	{EEXIST, "EEXIST"}, {ENOMEM, "ENOMEM"}, {EFAULT, "EFAULT"},
	{ENOPKG, "ENOPKG"}, {EMSGSIZE, "EMSGSIZE"}, {EBADF, "EBADF"},
	{ENXIO, "ENXIO"}, {EBUSY, "EBUSY"}, {ENODEV, "ENODEV"},
};

static void verdict_errno(int e)
{
	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++) {
		if (errnames[i].num == e) {
			printf("%s\n", errnames[i].name);
			return;
		}
	}
	printf("ERRNO%d\n", e);
}

static int fail(void)
{
	verdict_errno(errno);
	fflush(stdout);
	return 1;
}

/* slurp reads a whole (small) file; returns its length or -1 with errno set. */
static ssize_t slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			close(fd);
			errno = EMSGSIZE;
			return -1;
		}
	}
	close(fd);
	return (ssize_t)n;
}

/* dm_init fills the ioctl header for device NAME in buf (cap bytes). */
static struct dm_ioctl *dm_init(void *buf, size_t cap, const char *name)
{
	struct dm_ioctl *io = buf;
	memset(buf, 0, cap);
	io->version[0] = DM_VERSION_MAJOR;
	io->version[1] = 0;
	io->version[2] = 0;
	io->data_size = (unsigned)cap;
	io->data_start = sizeof(*io);
	strncpy(io->name, name, sizeof(io->name) - 1);
	return io;
}

/* dmcreate: a read-only device-mapper device from a one-line table. */
static int dmcreate(const char *name, const char *tablefile)
{
	static char table[4096];
	static unsigned long long dmbuf[16384 / 8]; /* 8-byte aligned */
	ssize_t n = slurp(tablefile, table, sizeof(table) - 1);
	if (n < 0)
		return fail();
	table[n] = 0;
	unsigned long long start, length;
	char target[DM_MAX_TYPE_NAME];
	int off = 0;
	if (sscanf(table, "%llu %llu %15s %n", &start, &length, target, &off) != 3 || off == 0) {
		errno = EINVAL;
		return fail();
	}
	char *params = table + off;
	params[strcspn(params, "\n")] = 0;

	int fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return fail();
	struct dm_ioctl *io = dm_init(dmbuf, sizeof(dmbuf), name);
	if (ioctl(fd, DM_DEV_CREATE, io) != 0)
		return fail();

	io = dm_init(dmbuf, sizeof(dmbuf), name);
	io->flags = DM_READONLY_FLAG;
	io->target_count = 1;
	struct dm_target_spec *spec = (void *)((char *)dmbuf + sizeof(*io));
	spec->sector_start = start;
	spec->length = length;
	strncpy(spec->target_type, target, sizeof(spec->target_type) - 1);
	char *p = (char *)(spec + 1);
	size_t plen = strlen(params) + 1;
	if (sizeof(*io) + sizeof(*spec) + plen > sizeof(dmbuf)) {
		errno = EMSGSIZE;
		return fail();
	}
	memcpy(p, params, plen);
	spec->next = 0;
	if (ioctl(fd, DM_TABLE_LOAD, io) != 0)
		return fail();

	io = dm_init(dmbuf, sizeof(dmbuf), name);
	if (ioctl(fd, DM_DEV_SUSPEND, io) != 0) /* no DM_SUSPEND_FLAG: resume */
		return fail();
	printf("ok dm-%u\n", minor(io->dev));
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[1 << 20];

	if (argc >= 3 && strcmp(argv[1], "exec") == 0) {
		fflush(stdout);
		execv(argv[2], argv + 2);
		return fail();
	}
	if (argc == 3 && strcmp(argv[1], "read") == 0) {
		int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return fail();
		ssize_t r;
		while ((r = read(fd, buf, sizeof(buf))) > 0)
			;
		if (r < 0)
			return fail();
		close(fd);
		puts("ok");
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "insmod") == 0) {
		int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return fail();
		if (syscall(SYS_finit_module, fd, "", 0) != 0)
			return fail();
		close(fd);
		puts("ok");
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "setima") == 0) {
		ssize_t n = slurp(argv[3], buf, sizeof(buf));
		if (n < 0)
			return fail();
		if (setxattr(argv[2], "security.ima", buf, (size_t)n, 0) != 0)
			return fail();
		puts("ok");
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "dmcreate") == 0)
		return dmcreate(argv[2], argv[3]);
	if (argc == 4 && strcmp(argv[1], "writefile") == 0) {
		ssize_t n = slurp(argv[3], buf, sizeof(buf));
		if (n < 0)
			return fail();
		int fd = open(argv[2], O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return fail();
		/* securityfs/ima/policy consumes one rule per write(2) and
		 * returns its length: write the rest until all is taken. */
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w <= 0) {
				if (w == 0)
					errno = EIO;
				return fail();
			}
			off += w;
		}
		if (close(fd) != 0)
			return fail();
		puts("ok");
		return 0;
	}
	fprintf(stderr, "usage: e2e-tool exec|read|insmod|setima|dmcreate|writefile ...\n");
	return 2;
}
