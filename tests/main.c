/* main.c - the test runner: runs every registered test, each in order, and
 * prints "N passed, N failed". A name on the command line runs only tests
 * whose name contains it. */
#include <jansson.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tests.h"

int t_failures;

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
#define X(name) { #name, name },
	HEARTH_TESTS(X)
#undef X
};

const char *fixture(const char *rel)
{
	static char buf[8][1024]; /* the last eight results stay valid */
	static int k;
	const char *root = getenv("HEARTH_FIXTURES");
	k = (k + 1) % 8;
	snprintf(buf[k], sizeof buf[k], "%s/%s", root ? root : "../shared/fixtures", rel);
	return buf[k];
}

static char tmp_dir[256];

const char *tmp_path(const char *name)
{
	static char buf[2][512];
	static int k;
	k ^= 1;
	snprintf(buf[k], sizeof buf[k], "%s/%s", tmp_dir, name);
	return buf[k];
}

bool t_ids_match_json(const char *what, const char *text, const int32_t *ids, int32_t n, const json_t *want,
		      int *n_bad)
{
	bool same = (size_t)n == json_array_size(want);
	for (int32_t i = 0; same && i < n; i++)
		same = ids[i] == json_integer_value(json_array_get(want, (size_t)i));
	if (!same && (*n_bad)++ < 3) {
		fprintf(stderr, "  %s: '%s'\n    want", what, text);
		for (size_t i = 0; i < json_array_size(want); i++)
			fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(want, i)));
		fprintf(stderr, "\n    got ");
		for (int32_t i = 0; i < n; i++)
			fprintf(stderr, " %d", ids[i]);
		fputc('\n', stderr);
	}
	return same;
}

bool t_sanitized(void) { return getenv("HEARTH_SAN") != NULL; }

int main(int argc, char **argv)
{
	int passed = 0, failed = 0;
	snprintf(tmp_dir, sizeof tmp_dir, "/tmp/hearth-test-%ld", (long)getpid());
	mkdir(tmp_dir, 0700);
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		if (argc > 1 && !strstr(tests[i].name, argv[1]))
			continue;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		t_failures = 0;
		tests[i].fn();
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		printf("%s %-40s %8.0f ms\n", t_failures ? "FAIL" : "ok  ", tests[i].name, ms);
		fflush(stdout);
		if (t_failures)
			failed++;
		else
			passed++;
	}
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmp_dir);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
