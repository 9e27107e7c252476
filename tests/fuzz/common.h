/* common.h - what the fuzz targets share: the fuzzer's bytes as a file the
 * library can open by path (a memfd, nothing written to disk), the fixtures,
 * and the check that turns a broken property into a finding.
 *
 * A target is one file, tests/fuzz/fuzz-NAME.c, defining LLVMFuzzerTestOneInput
 * (and LLVMFuzzerInitialize when it loads something once); the Makefile lists it. */
#ifndef HEARTH_FUZZ_COMMON_H
#define HEARTH_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

/* A property that must hold: when it does not, says where and what on stderr
 * and aborts, which libFuzzer reports as a crash and saves the input of. */
#define FUZZ_CHECK(cond, ...)                                                  \
	do {                                                                   \
		if (!(cond))                                                   \
			fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);     \
	} while (0)
_Noreturn void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* An in-memory file: its path (/proc/self/fd/N) opens like any other file. */
struct fuzz_file {
	int fd;
	char path[64];
};
/* Creates it (aborts when the system cannot: that is no finding). */
void fuzz_file_init(struct fuzz_file *f, const char *name);
/* Replaces its contents with data[0..size). */
void fuzz_file_set(struct fuzz_file *f, const uint8_t *data, size_t size);

/* Path of a fixture under $HEARTH_FIXTURES or ../shared/fixtures (static buffer, one at a time). */
const char *fuzz_fixture(const char *rel);

/* An error the library returned: negative, recorded in err, with a message
 * that names input (when input is not NULL). */
void fuzz_check_err(int rc, const struct hearth_err *err, const char *input);

#endif /* HEARTH_FUZZ_COMMON_H */
