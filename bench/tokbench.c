/* tokbench - tokenizer encode and decode speed on one core.
 *
 *   build/tokbench VOCAB.gguf TEXT_FILE [REPS]
 *
 * Encodes the whole file REPS times (default 20) as one text (no BOS,
 * special-token text not parsed) and prints the median MB/s, then decodes the
 * ids back and checks the round trip. */
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

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s VOCAB.gguf TEXT_FILE [REPS]\n", argv[0]);
		return 2;
	}
	int reps = argc > 3 ? atoi(argv[3]) : 20;
	if (reps < 1)
		reps = 1;
	FILE *f = fopen(argv[2], "rb");
	if (!f) {
		perror(argv[2]);
		return 1;
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *text = malloc((size_t)n + 1);
	if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "%s: read failed\n", argv[2]);
		return 1;
	}
	fclose(f);

	struct hearth_model_params p = hearth_model_default_params();
	struct hearth_model *m;
	struct hearth_err err = { 0 };
	p.vocab_only = true;
	if (hearth_model_load(&m, argv[1], &p, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
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
	printf("%-40s %8ld bytes %8d tokens  encode %7.2f MB/s  decode %7.1f MB/s  round trip %s\n", argv[1], n,
	       (int)n_ids, enc[reps / 2], dec[reps / 2], same ? "exact" : "differs");
	free(ids);
	free(enc);
	free(dec);
	free(text);
	hearth_model_free(m);
	return 0;
}
