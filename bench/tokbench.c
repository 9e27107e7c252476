/* tokbench - tokenizer encode and decode speed on one core.
 *
 *   build/tokbench VOCAB.gguf TEXT_FILE [REPS [TIMES [MAX]]]
 *
 * Encodes the file, TIMES times over (default 1) as one text, REPS times
 * (default 20; no BOS, special-token text not parsed) and prints the median
 * MB/s, then decodes the ids back and checks the round trip. With MAX, it
 * times hearth_tokenize_max with that limit instead and prints the median
 * time to its answer (ids, or HEARTH_ETOOBIG). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hearth.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The file's bytes, times times over; NULL after a message. */
static char *read_text(const char *path, int times, long *n_out)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *text = n > 0 ? malloc((size_t)n * (size_t)times + 1) : NULL;
	if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "%s: read failed\n", path);
		fclose(f);
		free(text);
		return NULL;
	}
	fclose(f);
	for (int t = 1; t < times; t++)
		memcpy(text + (size_t)t * (size_t)n, text, (size_t)n);
	*n_out = n * times;
	return text;
}

static int bench_full(struct hearth_model *m, const char *name, const char *text, long n, int reps)
{
	struct hearth_err err = { 0 };
	double *enc = malloc((size_t)reps * sizeof *enc), *dec = malloc((size_t)reps * sizeof *dec);
	int32_t *ids = NULL, n_ids = 0;
	bool same = true;
	for (int r = 0; r < reps; r++) {
		free(ids);
		double t0 = now();
		if (hearth_tokenize(m, text, (size_t)n, false, false, &ids, &n_ids, &err)) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		double t1 = now();
		char *back;
		size_t back_len;
		if (hearth_detokenize(m, ids, n_ids, false, &back, &back_len, &err)) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		double t2 = now();
		same = back_len == (size_t)n && memcmp(back, text, (size_t)n) == 0;
		free(back);
		enc[r] = (double)n / (t1 - t0) / 1e6;
		dec[r] = (double)n / (t2 - t1) / 1e6;
	}
	qsort(enc, (size_t)reps, sizeof *enc, cmp_d);
	qsort(dec, (size_t)reps, sizeof *dec, cmp_d);
	printf("%-40s %8ld bytes %8d tokens  encode %7.2f MB/s  decode %7.1f MB/s  round trip %s\n", name, n,
	       (int)n_ids, enc[reps / 2], dec[reps / 2], same ? "exact" : "differs");
	free(ids);
	free(enc);
	free(dec);
	return 0;
}

static int bench_max(struct hearth_model *m, const char *name, const char *text, long n, int reps, int32_t max)
{
	struct hearth_err err = { 0 };
	double *t = malloc((size_t)reps * sizeof *t);
	int32_t *ids = NULL, n_ids = 0;
	int rc = 0;
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		rc = hearth_tokenize_max(m, text, (size_t)n, false, false, max, &ids, &n_ids, &err);
		t[r] = now() - t0;
		free(ids);
		if (rc && rc != HEARTH_ETOOBIG) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
	}
	qsort(t, (size_t)reps, sizeof *t, cmp_d);
	printf("%-40s %8ld bytes  limit %d: %s in %.2f ms\n", name, n, max, rc ? err.msg : "the ids", t[reps / 2] * 1e3);
	free(t);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s VOCAB.gguf TEXT_FILE [REPS [TIMES [MAX]]]\n", argv[0]);
		return 2;
	}
	int reps = argc > 3 ? atoi(argv[3]) : 20, times = argc > 4 ? atoi(argv[4]) : 1;
	long n;
	char *text = read_text(argv[2], times > 0 ? times : 1, &n);
	if (!text)
		return 1;
	struct hearth_model_params p = hearth_model_default_params();
	struct hearth_model *m;
	struct hearth_err err = { 0 };
	p.vocab_only = true;
	if (hearth_model_load(&m, argv[1], &p, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	reps = reps < 1 ? 1 : reps;
	int rc = argc > 5 ? bench_max(m, argv[1], text, n, reps, atoi(argv[5])) : bench_full(m, argv[1], text, n, reps);
	free(text);
	hearth_model_free(m);
	return rc;
}
