/* cmd-quantize.c - `hearth quantize IN.gguf OUT.gguf TYPE`: llama-quantize's
 * file types through hearth_quantize(). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char quantize_help[] =
	"usage: hearth quantize IN.gguf OUT.gguf TYPE [--imatrix FILE] [--pure] [--output-tensor-type T]\n"
	"                       [--token-embedding-type T] [-t N]\n"
	"\n"
	"Rewrites a model in a llama-quantize file type, choosing each tensor's type as\n"
	"llama-quantize does, with the same bytes. TYPE:\n"
	"  q4_0 q4_1 q5_0 q5_1 q8_0   every weight matrix in that type\n"
	"  q2_k                       q2_K; attn_v, ffn_down, attn_output q3_K (attn_v q4_K with GQA >= 4)\n"
	"  q3_k_s                     q3_K\n"
	"  q3_k_m (q3_k)              q3_K; attn_v, ffn_down q5_K in the first layers, else q4_K; attn_output q4_K\n"
	"  q3_k_l                     q3_K; attn_v, ffn_down, attn_output q5_K\n"
	"  q4_k_s                     q4_K; attn_v, ffn_down q5_K in the first layers\n"
	"  q5_k_s                     q5_K\n"
	"  q4_k_m (q4_k), q5_k_m (q5_k)  q4_K / q5_K; attn_v, ffn_down q6_K in some layers\n"
	"  q6_k                       q6_K\n"
	"  mxfp4_moe                  expert stacks (ffn_*_exps) MXFP4, every other matrix q8_0\n"
	"  f16 bf16 f32               that type\n"
	"Norms and other 1-D tensors keep their type; the output matrix gets q6_k; rows\n"
	"that do not split into 256-blocks fall back to a 32-block type.\n"
	"  --imatrix FILE            importance matrix from llama-imatrix (GGUF or .dat):\n"
	"                            weighs each column's error by its mean squared activation\n"
	"  --pure                    every weight matrix in TYPE's base type (no mix)\n"
	"  --output-tensor-type T    output.weight as tensor type T (e.g. q8_0, f16)\n"
	"  --token-embedding-type T  token_embd.weight as tensor type T\n"
	"  -t N                      threads (default: the physical cores); same bytes for any N\n"
	"Prints each tensor's shape, type and size before and after, then the totals.\n";

struct totals {
	uint64_t in, out;
	double n_elements;
};

static void on_tensor(const struct hearth_quantize_tensor *t, void *user_data)
{
	struct totals *tot = user_data;
	char shape[96];
	int k = snprintf(shape, sizeof shape, "[%" PRId64, t->ne[0]);
	for (int d = 1; d < t->n_dims && k < (int)sizeof shape - 1; d++)
		k += snprintf(shape + k, sizeof shape - (size_t)k, ", %" PRId64, t->ne[d]);
	if (k < (int)sizeof shape - 1)
		snprintf(shape + k, sizeof shape - (size_t)k, "]");
	printf("[%4" PRId64 "/%4" PRId64 "] %-36s %-14s type %5s -> %-5s  size %8.3f MiB -> %8.3f MiB%s\n", t->index + 1,
	       t->n_tensors, t->name, shape, hearth_type_name(t->type_in), hearth_type_name(t->type_out),
	       (double)t->nbytes_in / 1048576.0, (double)t->nbytes_out / 1048576.0, t->imatrix ? "  (imatrix)" : "");
	fflush(stdout);
	tot->in += t->nbytes_in;
	tot->out += t->nbytes_out;
	tot->n_elements += (double)t->ne[0] * (double)t->ne[1] * (double)t->ne[2] * (double)t->ne[3];
}

int cmd_quantize(int argc, char **argv)
{
	const char *pos[3] = { 0 };
	int n_pos = 0;
	struct hearth_quantize_params p = hearth_quantize_default_params();
	struct hearth_err err = { 0 };
	struct totals tot = { 0 };

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(quantize_help, stdout);
			return 0;
		} else if (!strcmp(a, "--pure")) {
			p.pure = true;
		} else if (!strcmp(a, "--output-tensor-type") || !strcmp(a, "--token-embedding-type")) {
			if (!(v = arg_value("quantize", argc, argv, &i)))
				return EXIT_USAGE;
			const int t = hearth_type_parse(v);
			if (t < 0)
				return usage_error("quantize", "unknown tensor type '%s' for %s", v, a);
			*(a[2] == 'o' ? &p.output_tensor_type : &p.token_embedding_type) = t;
		} else if (!strcmp(a, "--imatrix")) {
			if (!(p.imatrix_path = arg_value("quantize", argc, argv, &i)))
				return EXIT_USAGE;
		} else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
			long long n;
			if (!(v = arg_value("quantize", argc, argv, &i)) || !arg_int("quantize", a, v, 1, 1024, &n))
				return EXIT_USAGE;
			p.n_threads = (int)n;
		} else if (a[0] == '-' && a[1]) {
			return usage_error("quantize", "unknown option '%s'", a);
		} else if (n_pos == 3) {
			return usage_error("quantize", "too many arguments ('%s')", a);
		} else {
			pos[n_pos++] = a;
		}
	}
	if (n_pos != 3)
		return usage_error("quantize", "needs IN.gguf OUT.gguf TYPE (see --help)");
	if ((p.ftype = hearth_quantize_ftype_parse(pos[2])) < 0)
		return usage_error("quantize", "unknown type '%s' (q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k_s q3_k_m "
				   "q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m q6_k mxfp4_moe f16 bf16 f32)", pos[2]);
	p.on_tensor = on_tensor;
	p.user_data = &tot;
	if (hearth_quantize(pos[0], pos[1], &p, &err)) {
		fprintf(stderr, "hearth quantize: %s\n", err.msg[0] ? err.msg : hearth_strerror(err.code));
		return 1;
	}
	const double n_el = tot.n_elements > 0 ? tot.n_elements : 1;
	printf("model size: %8.2f MiB (%.2f bits per weight)\nquant size: %8.2f MiB (%.2f bits per weight)\n",
	       (double)tot.in / 1048576.0, (double)tot.in * 8 / n_el, (double)tot.out / 1048576.0, (double)tot.out * 8 / n_el);
	return 0;
}
