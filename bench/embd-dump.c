/* embd-dump - every token's embedding as llama.cpp's llama-embedding
 * --pooling none gives it: the last layer's hidden state after the model's
 * final norm, for comparing with it (bench/llamacpp-embd.py).
 *
 *   build/embd-dump MODEL.gguf PROMPT
 *
 * Tokenizes PROMPT as llama.cpp does (special tokens added and parsed), runs
 * it as one batch (2 threads, an f32 KV cache, a 512-token context) and
 * prints {"ids":[...],"embd":[[n_embd floats],...]} on one line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth.h"

static int dump(struct hearth_model *m, const char *prompt, struct hearth_err *err)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_context *c = NULL;
	int32_t *ids = NULL, n = 0;
	const int32_t last[] = { -1 };
	cp.n_ctx = 512;
	cp.n_threads = 2;
	cp.cache_type = HEARTH_TYPE_F32;
	int rc = hearth_tokenize(m, prompt, strlen(prompt), true, true, &ids, &n, err);
	if (!rc)
		rc = hearth_context_new(&c, m, &cp, err);
	if (!rc)
		rc = hearth_context_set_hidden(c, last, 1, err);
	if (!rc)
		rc = hearth_decode(c, ids, n, false, err);
	const int32_t E = hearth_model_n_embd(m);
	float *x = malloc((size_t)E * sizeof *x);
	if (!rc && !x)
		rc = HEARTH_ENOMEM;
	if (!rc) {
		printf("{\"ids\":[");
		for (int32_t i = 0; i < n; i++)
			printf("%s%d", i ? "," : "", ids[i]);
		printf("],\"embd\":[");
		for (int32_t i = 0; i < n; i++) {
			hearth_model_final_norm(m, hearth_get_hidden(c, 0, i), x);
			for (int32_t e = 0; e < E; e++)
				printf("%s%.9g", e ? "," : i ? "],[" : "[", x[e]);
		}
		printf("%s]}\n", n ? "]" : "");
	}
	free(x);
	free(ids);
	hearth_context_free(c);
	return rc;
}

int main(int argc, char **argv)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	if (argc != 3) {
		fprintf(stderr, "usage: embd-dump MODEL.gguf PROMPT\n");
		return 2;
	}
	int rc = hearth_model_load(&m, argv[1], &mp, &err);
	if (!rc)
		rc = dump(m, argv[2], &err);
	if (rc)
		fprintf(stderr, "embd-dump: %s\n", err.msg);
	hearth_model_free(m);
	return rc ? 1 : 0;
}
