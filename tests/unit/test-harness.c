/* test-harness.c - the runner itself: a test that crashes, exits or hangs
 * fails alone, named, and the run goes on.
 *
 * The test_demo_* tests end badly on purpose (test_demo_leak only under
 * the leak checker); they are registered apart
 * (HEARTH_DEMO_TESTS) and run only when HEARTH_TEST_DEMO is set.
 * test_harness_isolation runs them in a second runner with a short timeout
 * and reads its output. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"

void test_demo_crash(void)
{
	volatile int *volatile bad = (volatile int *)(uintptr_t)16; /* nothing is mapped there */
	*bad = 1;
}

void test_demo_exit(void)
{
	exit(3);
}

void test_demo_hang(void)
{
	for (;;)
		pause();
}

/* Fails only under the leak checker, which runs as the test's process exits. */
void *volatile t_demo_sink;

void test_demo_leak(void)
{
	t_demo_sink = malloc(48);
	t_demo_sink = NULL;
}

void test_demo_pass(void)
{
	T_TRUE(1 + 1 == 2);
}

/* The runner's line for test name in out, or NULL. */
static const char *line_of(const char *out, const char *name)
{
	for (const char *p = strstr(out, name); p; p = strstr(p + 1, name))
		if (p - out >= 5 && (p == out + 5 || p[-6] == '\n') && p[-1] == ' ')
			return p - 5;
	return NULL;
}

static bool line_has(const char *out, const char *name, const char *a, const char *b)
{
	const char *l = line_of(out, name), *end = l ? strchr(l, '\n') : NULL;
	if (!l || !end)
		return false;
	const char *x = strstr(l, a), *y = b ? strstr(l, b) : NULL;
	return (x && x < end) || (y && y < end);
}

void test_harness_isolation(void)
{
	static char out[1 << 16];
	char self[1024], cmd[1200];
	ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
	T_TRUE(k > 0);
	if (k <= 0)
		return;
	self[k] = 0;
	/* 2 s: the hang's cost, with room for the others' sanitizer reports on a busy machine */
	snprintf(cmd, sizeof cmd, "HEARTH_TEST_DEMO=1 HEARTH_TEST_TIMEOUT=2 '%s' test_demo_ 2>&1", self);
	unsetenv("HEARTH_TEST_NOFORK");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	FILE *p = popen(cmd, "r");
	T_TRUE(p != NULL);
	if (!p)
		return;
	size_t n = fread(out, 1, sizeof out - 1, p);
	out[n] = 0;
	int st = pclose(p);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;

	/* a crash: a signal, or under ASan its report and exit status */
	T_TRUE(line_has(out, "test_demo_crash", "FAIL", NULL));
	T_TRUE(line_has(out, "test_demo_crash", "(killed by signal 11", "(exited with status"));
	T_TRUE(line_has(out, "test_demo_exit", "FAIL", NULL));
	T_TRUE(line_has(out, "test_demo_exit", "(exited with status 3 before its end)", NULL));
	T_TRUE(line_has(out, "test_demo_hang", "FAIL", NULL));
	T_TRUE(line_has(out, "test_demo_hang", "(timed out after 2 s: killed)", NULL));
	T_TRUE(line_has(out, "test_demo_pass", "ok  ", NULL));
	if (t_sanitized())
		T_TRUE(line_has(out, "test_demo_leak", "after its checks: a sanitizer report?)", NULL));
	else
		T_TRUE(line_has(out, "test_demo_leak", "ok  ", NULL));
	/* the filter ran the five demo tests and nothing else */
	T_TRUE(strstr(out, t_sanitized() ? "\n1 passed, 4 failed\n" : "\n2 passed, 3 failed\n") != NULL);
	T_TRUE(line_of(out, "test_harness_isolation") == NULL);
	T_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	T_TRUE(s < 30);
	if (t_failures)
		fprintf(stderr, "  the demo run printed:\n%s\n", out);
}
