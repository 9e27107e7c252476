/* cmd-pull.c - `hearth pull REF`: download a model into the store, with a
 * progress bar on a terminal and a plain line every 5% otherwise. Ctrl-C
 * stops it; the next pull resumes where it stopped. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static volatile int cancelled;

static void on_sigint(int sig)
{
	(void)sig;
	cancelled = 1;
}

struct bar {
	bool tty, quiet;
	double t0, last;  /* seconds */
	int last_pct;     /* the last plain line's percentage */
	uint64_t first;   /* bytes already there when this run began */
	bool started, drew;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_progress(uint64_t done, uint64_t total, void *user)
{
	struct bar *b = user;
	double t = now_s();
	if (b->quiet)
		return;
	if (!b->started) {
		b->started = true;
		b->t0 = t;
		b->first = done;
	}
	int pct = total ? (int)(done * 100 / total) : -1;
	double mb = (double)done / 1e6, rate = t > b->t0 ? (double)(done - b->first) / 1e6 / (t - b->t0) : 0;
	if (b->tty) {
		if (t - b->last < 0.1 && done != total)
			return;
		b->last = t;
		b->drew = true;
		char bar[31];
		int fill = pct < 0 ? 0 : pct * 30 / 100;
		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '=' : ' ';
		bar[30] = 0;
		if (total)
			fprintf(stderr, "\r%3d%% [%s] %8.1f / %.1f MB %6.1f MB/s ", pct, bar, mb, (double)total / 1e6, rate);
		else
			fprintf(stderr, "\r%8.1f MB %6.1f MB/s ", mb, rate);
	} else if (pct >= 0 ? pct >= b->last_pct + 5 || (done == total && pct != b->last_pct) : t - b->last >= 5) {
		b->last_pct = pct;
		b->last = t;
		if (total)
			fprintf(stderr, "pull: %d%% (%.1f of %.1f MB, %.1f MB/s)\n", pct, mb, (double)total / 1e6, rate);
		else
			fprintf(stderr, "pull: %.1f MB (%.1f MB/s)\n", mb, rate);
	}
}

static const char pull_help[] =
	"usage: hearth pull REF [options]\n"
	"\n"
	"Downloads a GGUF model into the store ($HEARTH_HOME, else ~/.hearth) and prints its path.\n"
	"REF is one of:\n"
	"  OWNER/REPO[:QUANT]            a Hugging Face repository (also hf.co/OWNER/REPO:QUANT);\n"
	"                                QUANT (Q4_K_M, q8_0, ...) or a file name picks the file;\n"
	"                                without one: its only GGUF, else its Q4_K_M one\n"
	"  modelscope:OWNER/REPO[:QUANT] a ModelScope repository\n"
	"  https://.../FILE.gguf         a URL\n"
	"An interrupted download resumes; size and SHA-256 are checked when the hub gives them.\n"
	"Environment: HF_ENDPOINT (a mirror), HF_TOKEN (gated or private models), MODELSCOPE_ENDPOINT,\n"
	"https_proxy / http_proxy / no_proxy.\n"
	"\n"
	"options:\n"
	"      --endpoint URL         the hub's base URL instead of HF_ENDPOINT's\n"
	"      --connect-timeout S    seconds to reach the server [15]\n"
	"      --stall-timeout S      seconds under 1 KB/s before giving up [30]\n"
	"  -q, --quiet                no progress\n";

int cmd_pull(int argc, char **argv)
{
	struct hearth_pull_params p = hearth_pull_default_params();
	struct bar b = { .tty = isatty(2), .last_pct = -5 };
	const char *ref = NULL, *v;
	char path[HEARTH_STORE_PATH_MAX];
	struct hearth_err err = { 0 };
	long long n;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(pull_help, stdout);
			return 0;
		} else if (!strcmp(a, "--endpoint")) {
			if (!(v = arg_value("pull", argc, argv, &i)))
				return EXIT_USAGE;
			p.endpoint = v;
		} else if (!strcmp(a, "--connect-timeout") || !strcmp(a, "--stall-timeout")) {
			if (!(v = arg_value("pull", argc, argv, &i)) || !arg_int("pull", a, v, 1, 3600, &n))
				return EXIT_USAGE;
			*(a[2] == 'c' ? &p.connect_timeout_s : &p.low_speed_time_s) = (long)n;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			b.quiet = true;
		} else if (a[0] == '-' && a[1]) {
			return usage_error("pull", "unknown option '%s'", a);
		} else if (ref) {
			return usage_error("pull", "one model at a time");
		} else {
			ref = a;
		}
	}
	if (!ref)
		return usage_error("pull", "REF is required");
	p.progress = on_progress;
	p.progress_data = &b;
	p.cancel = &cancelled;
	signal(SIGINT, on_sigint);
	int rc = hearth_pull(ref, &p, path, sizeof path, &err);
	if (b.drew)
		fputc('\n', stderr);
	if (rc) {
		fprintf(stderr, "hearth pull: %s\n", err.msg);
		return 1;
	}
	printf("%s\n", path);
	return 0;
}
