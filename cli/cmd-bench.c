/* cmd-bench.c - `hearth bench`: prompt processing (pp) and generation (tg)
 * speed, in the spirit of llama-bench: pp decodes a prompt of random tokens
 * as one batch, tg decodes tokens one at a time from an empty context; each
 * is repeated and reported as mean tokens/s with the standard deviation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Seconds for one run: n tokens as one batch (pp) or one by one (tg). */
static int run_once(struct hearth_model *m, const struct hearth_context_params *cp, int depth, int n, bool batch,
		    uint64_t *rng, double *secs, struct hearth_err *err)
{
	struct hearth_context *c;
	const int32_t V = hearth_model_n_vocab(m);
	int32_t *ids = malloc((size_t)(depth + n) * sizeof *ids);
	int rc;
	if (!ids)
		return HEARTH_ENOMEM;
	for (int i = 0; i < depth + n; i++) {
		*rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
		ids[i] = (int32_t)((*rng >> 33) % (uint64_t)V);
	}
	if ((rc = hearth_context_new(&c, m, cp, err))) {
		free(ids);
		return rc;
	}
	/* the context already holding depth tokens (untimed), in batches */
	for (int i = 0; i < depth && !rc; i += cp->n_batch)
		rc = hearth_decode(c, ids + i, depth - i < cp->n_batch ? depth - i : cp->n_batch, false, err);
	const int32_t *run = ids + depth;
	double t0 = now_s();
	if (rc) {
	} else if (batch) {
		rc = hearth_decode(c, run, n, false, err);
	} else {
		for (int i = 0; i < n && !rc; i++)
			rc = hearth_decode(c, &run[i], 1, false, err);
	}
	*secs = now_s() - t0;
	hearth_context_free(c);
	free(ids);
	return rc;
}

struct result {
	double mean, sd;
};

static int measure(struct hearth_model *m, const struct hearth_context_params *cp, int depth, int n, bool batch,
		   int reps, struct result *r, struct hearth_err *err)
{
	uint64_t rng = 1234;
	double secs, sum = 0, sum2 = 0;
	int rc;
	if (n <= 0) {
		r->mean = r->sd = 0;
		return 0;
	}
	if ((rc = run_once(m, cp, 0, batch ? (n < 32 ? n : 32) : (n < 8 ? n : 8), batch, &rng, &secs, err))) /* warm-up */
		return rc;
	for (int i = 0; i < reps; i++) {
		if ((rc = run_once(m, cp, depth, n, batch, &rng, &secs, err)))
			return rc;
		double tps = n / secs;
		sum += tps;
		sum2 += tps * tps;
	}
	r->mean = sum / reps;
	r->sd = reps > 1 ? sqrt(fmax(0, (sum2 - sum * sum / reps) / (reps - 1))) : 0;
	return 0;
}

static const char bench_help[] =
	"usage: hearth bench -m FILE [-t N] [-p N] [-n N] [-d N] [-r REPS] [--json]\n"
	"\n"
	"Measures prompt processing (a batch of -p random tokens) and generation (-n tokens one\n"
	"at a time) in tokens/s, as mean and standard deviation over -r repetitions.\n"
	"  -t, --threads N     threads (0: the physical cores) [0]\n"
	"  -p, --n-prompt N    prompt tokens [512]\n"
	"  -n, --n-gen N       generated tokens [128]\n"
	"  -d, --n-depth N     tokens already in the context before each run (untimed) [0]\n"
	"  -r, --repetitions N [5]\n"
	"      --cache-type T  f16, f32 or q8_0 [f16]\n"
	"      --json          {\"pp\":{\"n\",\"tokens_per_s\",\"stddev\"},\"tg\":{...},\"peak_rss_bytes\"}\n";

int cmd_bench(int argc, char **argv)
{
	const char *model = NULL;
	long long t = 0, p = 512, n = 128, d = 0, reps = 5;
	bool json = false;
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(bench_help, stdout);
			return 0;
		}
		if (!strcmp(a, "--json")) {
			json = true;
			continue;
		}
		if (!(val = arg_value("bench", argc, argv, &i)))
			return EXIT_USAGE;
		if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
			model = val;
		} else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
			if (!arg_int("bench", a, val, 0, 512, &t))
				return EXIT_USAGE;
		} else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
			if (!arg_int("bench", a, val, 0, 1 << 16, &p))
				return EXIT_USAGE;
		} else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
			if (!arg_int("bench", a, val, 0, 1 << 16, &n))
				return EXIT_USAGE;
		} else if (!strcmp(a, "-d") || !strcmp(a, "--n-depth")) {
			if (!arg_int("bench", a, val, 0, 1 << 20, &d))
				return EXIT_USAGE;
		} else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
			if (!arg_int("bench", a, val, 1, 1000, &reps))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--cache-type")) {
			if (strcmp(val, "f16") && strcmp(val, "f32") && strcmp(val, "q8_0"))
				return usage_error("bench", "--cache-type expects f16, f32 or q8_0, got '%s'", val);
			cp.cache_type = !strcmp(val, "f16") ? HEARTH_TYPE_F16 : !strcmp(val, "f32") ? HEARTH_TYPE_F32 : HEARTH_TYPE_Q8_0;
		} else {
			return usage_error("bench", "unknown option '%s'", a);
		}
	}
	if (!model)
		return usage_error("bench", "-m FILE is required");
	if (!(model = cli_model_path("bench", model)))
		return 1;
	if (hearth_model_load(&m, model, &mp, &err)) {
		fprintf(stderr, "hearth bench: %s\n", err.msg);
		return 1;
	}
	cp.n_threads = (int32_t)t;
	cp.n_ctx = (int32_t)(d + (p > n ? p : n) + 16);
	cp.n_batch = (int32_t)(p > 0 ? p : 1);
	if (d > cp.n_batch) /* the depth goes in as prompt batches */
		cp.n_batch = (int32_t)(d < 512 ? d : 512);
	struct result pp, tg;
	if (measure(m, &cp, (int)d, (int)p, true, (int)reps, &pp, &err) ||
	    measure(m, &cp, (int)d, (int)n, false, (int)reps, &tg, &err)) {
		fprintf(stderr, "hearth bench: %s\n", err.msg);
		hearth_model_free(m);
		return 1;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	const long long rss = (long long)ru.ru_maxrss * 1024;
	if (json) {
		printf("{\"pp\":{\"n\":%lld,\"tokens_per_s\":%.3f,\"stddev\":%.3f},\"tg\":{\"n\":%lld,\"tokens_per_s\":%.3f,"
		       "\"stddev\":%.3f},\"depth\":%lld,\"peak_rss_bytes\":%lld}\n", p, pp.mean, pp.sd, n, tg.mean, tg.sd, d, rss);
	} else {
		printf("| model %-30s | size %8.2f MiB | params %7.2f M | threads %2lld |\n", hearth_model_arch(m),
		       hearth_model_size(m) / 1048576.0, hearth_model_n_params(m) / 1e6, t);
		char at[32] = "";
		if (d)
			snprintf(at, sizeof at, " @ d%lld", d);
		if (p)
			printf("| pp%-5lld%s | %10.2f ± %.2f t/s |\n", p, at, pp.mean, pp.sd);
		if (n)
			printf("| tg%-5lld%s | %10.2f ± %.2f t/s |\n", n, at, tg.mean, tg.sd);
		printf("peak RSS %.1f MiB\n", rss / 1048576.0);
	}
	hearth_model_free(m);
	return 0;
}
