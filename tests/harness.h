/* harness.h - hearth's tiny test harness.
 *
 * A test is a function listed in tests/tests.h; tests/main.c runs each in
 * a process of its own. Checks are two-sided and print where and what:
 * "test-gguf.c:41: n == 7 (got 6)". A test fails when any check in it fails
 * (or it crashes, exits or hangs); the runner ends with "N passed, N failed".
 */
#ifndef HEARTH_HARNESS_H
#define HEARTH_HARNESS_H

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "hearth.h"

extern int t_failures; /* checks failed in the current test */

#define T_FAIL(...)                                          \
	do {                                                 \
		fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__);                \
		fputc('\n', stderr);                         \
		t_failures++;                                \
	} while (0)
#define T_TRUE(c)                              \
	do {                                   \
		if (!(c))                      \
			T_FAIL("%s is false", #c); \
	} while (0)
#define T_EQ_I64(a, b)                                                                                         \
	do {                                                                                                   \
		int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                                                  \
		if (a_ != b_)                                                                                  \
			T_FAIL("%s == %s (got %" PRId64 ", expected %" PRId64 ")", #a, #b, a_, b_);          \
	} while (0)
#define T_NEAR(a, b, tol)                                                                                     \
	do {                                                                                                  \
		double a_ = (double)(a), b_ = (double)(b);                                                    \
		if (!(fabs(a_ - b_) <= (tol)))                                                                \
			T_FAIL("%s ~ %s (got %.9g, expected %.9g, tolerance %g)", #a, #b, a_, b_, (double)(tol)); \
	} while (0)
#define T_OK(rc, err)                                                                  \
	do {                                                                           \
		int rc_ = (rc);                                                        \
		if (rc_)                                                               \
			T_FAIL("%s failed: %s (%s)", #rc, (err).msg, hearth_err_name(rc_)); \
	} while (0)
#define T_STR_EQ(a, b)                                                    \
	do {                                                              \
		const char *a_ = (a), *b_ = (b);                          \
		if (!a_ || !b_ || strcmp(a_, b_))                        \
			T_FAIL("%s == %s (got \"%s\", expected \"%s\")", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
	} while (0)

/* Path of a fixture under ../shared/fixtures (a static buffer; the last eight stay valid). */
const char *fixture(const char *rel);
/* A fresh path under the test's temporary folder. */
const char *tmp_path(const char *name);
/* Do ids equal the JSON array want? When not, counts it in *n_bad and, for
 * the first three, prints what, the text, and both id lists to stderr. */
struct json_t;
bool t_ids_match_json(const char *what, const char *text, const int32_t *ids, int32_t n, const struct json_t *want,
		      int *n_bad);
/* The vocabulary of the fixture GGUF at rel (vocab_only), or NULL after a failed check. */
struct hearth_model *t_load_vocab(const char *rel);
/* True when running under the sanitizers (slow): long tests cut their work. */
bool t_sanitized(void);

#endif /* HEARTH_HARNESS_H */
