/* main.c - the test runner: runs every registered test, each in order and
 * each in its own process, and prints one line per test, then
 * "N passed, N failed". A name on the command line runs only tests whose
 * name contains it.
 *
 * A test runs in a forked child, in a process group of its own, so that a
 * crash, an exit from inside a test, a sanitizer report or a hang ends only
 * that test: the line names it and says what happened, it counts as failed,
 * and the run goes on. The child reports its count of failed checks through a
 * pipe before it exits; a child that does not (it died or exited first), or
 * exits non-zero after it (a leak report at exit), failed. A test that runs
 * longer than HEARTH_TEST_TIMEOUT seconds (default 120: the slowest test
 * takes about 3 s under ASan here) is killed with its process group.
 * HEARTH_TEST_NOFORK=1 runs the tests in the runner's own process instead,
 * for a debugger. HEARTH_TEST_DEMO=1 adds the tests that show each way a
 * test can end badly (tests/unit/test-harness.c). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tests.h"

int t_failures;

struct test {
	const char *name;
	void (*fn)(void);
};

static const struct test tests[] = {
#define X(name) { #name, name },
	HEARTH_TESTS(X)
#undef X
};

static const struct test demo_tests[] = {
#define X(name) { #name, name },
	HEARTH_DEMO_TESTS(X)
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

struct hearth_model *t_load_vocab(const char *rel)
{
	struct hearth_model_params p = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	p.vocab_only = true;
	T_OK(hearth_model_load(&m, fixture(rel), &p, &err), err);
	return m;
}

bool t_sanitized(void) { return getenv("HEARTH_SAN") != NULL; }

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The process group of the test now running, for the signal handler. */
static volatile sig_atomic_t child_group;

/* Interrupted (Ctrl-C, SIGTERM): the running test's group goes too. */
static void on_stop_signal(int sig)
{
	if (child_group > 0)
		kill(-(pid_t)child_group, SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* How a test ended. */
struct outcome {
	bool finished;   /* its function returned and reported */
	int failures;    /* checks that failed, when finished */
	bool timed_out;
	int status;      /* waitpid's */
};

/* In the child: runs the test, reports its failed checks on fd, exits. */
static void child_run(const struct test *t, int fd)
{
	setpgid(0, 0);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	t_failures = 0;
	t->fn();
	int n = t_failures;
	ssize_t w = write(fd, &n, sizeof n);
	/* exit, not _exit: the leak checker runs at exit. fd stays open until the
	 * kernel closes it, so the parent sees the end only after the checker. */
	exit(w == (ssize_t)sizeof n ? 0 : 2);
}

/* Reads the child's report until the pipe closes (the child and anything it
 * exec'd are gone) or the deadline passes. */
static void read_report(int fd, double deadline_ms, struct outcome *o)
{
	char buf[64];
	size_t got = 0;
	for (;;) {
		double left = deadline_ms - now_ms();
		if (left <= 0) {
			o->timed_out = true;
			return;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, left > 1e6 ? 1000000 : (int)left + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue; /* the deadline is checked above */
		ssize_t k = read(fd, got < sizeof(int) ? buf + got : buf, got < sizeof(int) ? sizeof(int) - got : sizeof buf);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (got < sizeof(int) && (got += (size_t)k) == sizeof(int)) {
			memcpy(&o->failures, buf, sizeof(int));
			o->finished = true;
		}
	}
}

static struct outcome run_forked(const struct test *t, double timeout_s)
{
	struct outcome o = { 0 };
	int fds[2];
	if (pipe(fds)) {
		perror("pipe");
		o.status = -1;
		return o;
	}
	/* programs a test runs must not hold the pipe open */
	fcntl(fds[0], F_SETFD, FD_CLOEXEC);
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		close(fds[0]);
		close(fds[1]);
		o.status = -1;
		return o;
	}
	if (pid == 0) {
		close(fds[0]);
		child_run(t, fds[1]);
	}
	setpgid(pid, pid); /* also here: no window before the child's own call */
	child_group = pid;
	close(fds[1]);
	read_report(fds[0], now_ms() + timeout_s * 1e3, &o);
	close(fds[0]);
	/* the child has exited (its end of the pipe closed) or timed out: its
	 * group goes, with whatever the test started and left behind; the
	 * unreaped child keeps the group's id from being reused meanwhile */
	kill(-pid, SIGKILL);
	while (waitpid(pid, &o.status, 0) < 0 && errno == EINTR)
		;
	child_group = 0;
	return o;
}

static struct outcome run_inline(const struct test *t)
{
	struct outcome o = { .finished = true };
	t_failures = 0;
	t->fn();
	o.failures = t_failures;
	return o;
}

/* Why a test failed other than by its checks, in words; "" when it did not. */
static void describe(const struct outcome *o, double timeout_s, char *buf, size_t size)
{
	buf[0] = 0;
	if (o->timed_out)
		snprintf(buf, size, "  (timed out after %g s: killed)", timeout_s);
	else if (o->status < 0)
		snprintf(buf, size, "  (could not start it)");
	else if (WIFSIGNALED(o->status))
		snprintf(buf, size, "  (killed by signal %d, %s)", WTERMSIG(o->status), strsignal(WTERMSIG(o->status)));
	else if (WIFEXITED(o->status) && !o->finished)
		snprintf(buf, size, "  (exited with status %d before its end)", WEXITSTATUS(o->status));
	else if (WIFEXITED(o->status) && WEXITSTATUS(o->status))
		snprintf(buf, size, "  (exited with status %d after its checks: a sanitizer report?)",
			 WEXITSTATUS(o->status));
}

static double timeout_from_env(void)
{
	const char *s = getenv("HEARTH_TEST_TIMEOUT");
	char *end;
	double v = s ? strtod(s, &end) : 0;
	if (s && (end == s || *end || !(v > 0))) {
		fprintf(stderr, "HEARTH_TEST_TIMEOUT=%s is not a positive number of seconds; using 120\n", s);
		v = 0;
	}
	return v > 0 ? v : 120;
}

/* Runs one test; true when it passed. */
static bool run_one(const struct test *t, bool fork_each, double timeout_s)
{
	double t0 = now_ms();
	struct outcome o = fork_each ? run_forked(t, timeout_s) : run_inline(t);
	double ms = now_ms() - t0;
	char why[160];
	describe(&o, timeout_s, why, sizeof why);
	bool ok = o.finished && o.failures == 0 && !why[0];
	printf("%s %-40s %8.0f ms%s\n", ok ? "ok  " : "FAIL", t->name, ms, why);
	fflush(stdout);
	return ok;
}

int main(int argc, char **argv)
{
	const bool fork_each = !getenv("HEARTH_TEST_NOFORK");
	const bool demo = getenv("HEARTH_TEST_DEMO") != NULL;
	const double timeout_s = timeout_from_env();
	int passed = 0, failed = 0;

	signal(SIGINT, on_stop_signal);
	signal(SIGTERM, on_stop_signal);
	snprintf(tmp_dir, sizeof tmp_dir, "/tmp/hearth-test-%ld", (long)getpid());
	mkdir(tmp_dir, 0700);
	const struct test *lists[2] = { tests, demo ? demo_tests : NULL };
	const size_t counts[2] = { sizeof tests / sizeof tests[0], sizeof demo_tests / sizeof demo_tests[0] };
	for (int l = 0; l < 2; l++)
		for (size_t i = 0; lists[l] && i < counts[l]; i++) {
			if (argc > 1 && !strstr(lists[l][i].name, argv[1]))
				continue;
			if (run_one(&lists[l][i], fork_each, timeout_s))
				passed++;
			else
				failed++;
		}
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmp_dir);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
