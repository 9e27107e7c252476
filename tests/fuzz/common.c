/* common.c - see common.h. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

_Noreturn void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "fuzz: %s:%d: %s: ", file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

void fuzz_file_init(struct fuzz_file *f, const char *name)
{
	f->fd = memfd_create(name, MFD_CLOEXEC);
	if (f->fd < 0) {
		perror("fuzz: memfd_create");
		abort();
	}
	snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

void fuzz_file_set(struct fuzz_file *f, const uint8_t *data, size_t size)
{
	size_t done = 0;
	if (ftruncate(f->fd, 0) != 0) {
		perror("fuzz: ftruncate");
		abort();
	}
	while (done < size) {
		ssize_t k = pwrite(f->fd, data + done, size - done, (off_t)done);
		if (k <= 0) {
			perror("fuzz: pwrite");
			abort();
		}
		done += (size_t)k;
	}
}

const char *fuzz_fixture(const char *rel)
{
	static char buf[1024];
	const char *root = getenv("HEARTH_FIXTURES");
	snprintf(buf, sizeof buf, "%s/%s", root ? root : "../shared/fixtures", rel);
	return buf;
}

void fuzz_check_err(int rc, const struct hearth_err *err, const char *input)
{
	FUZZ_CHECK(rc < 0 && strcmp(hearth_err_name(rc), "HEARTH_E?") != 0, "rc %d", rc);
	FUZZ_CHECK(err->code == rc, "err.code %d, rc %d (%s)", err->code, rc, err->msg);
	FUZZ_CHECK(err->msg[0] != 0, "empty message for %s", hearth_err_name(rc));
	if (input)
		FUZZ_CHECK(strstr(err->msg, input) != NULL, "message '%s' does not name %s", err->msg, input);
}
