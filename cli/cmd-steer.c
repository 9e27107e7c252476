/* cmd-steer.c - `hearth steer`: a control vector from contrastive prompts,
 * written in llama.cpp's control-vector GGUF (what `hearth serve
 * --control-vector` and llama.cpp's --control-vector load):
 *
 *   - P.txt and N.txt hold one prompt per line (empty lines skipped);
 *   - each prompt is run alone; the residual stream's direction after each
 *     block (x / rms(x)) is averaged over its tokens;
 *   - per block, the positive prompts' mean minus the negative ones' (--method
 *     mean), or the first principal component of the pairs' differences
 *     (--method pca: line i of each file paired), unit length
 *     (hearth_cvec_compute in hearth.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define STEER_MAX_PROMPTS 100000

static const char steer_help[] =
	"usage: hearth steer -m FILE --positive P.txt --negative N.txt -o vec.gguf [--method mean|pca] [-t N]\n"
	"\n"
	"A control vector from contrastive prompts (one per line): per block, the mean over each\n"
	"prompt's tokens of the residual stream's direction, positive minus negative (mean), or the\n"
	"first principal component of the paired differences (pca: line i with line i); unit length,\n"
	"written as llama.cpp's cvector-generator writes it (direction.1 .. direction.(n_layer-1)).\n"
	"\n"
	"  -m FILE             the model (a GGUF file or a stored name)\n"
	"  --positive FILE     prompts to steer towards\n"
	"  --negative FILE     prompts to steer away from\n"
	"  -o FILE             the vector to write\n"
	"  --method M          mean or pca [mean]\n"
	"  -t N                threads (0: the physical cores) [0]\n";

/* The non-empty lines of text, split in place into *lines (malloc'd); their count, or -1. */
static int32_t split_lines(char *text, char ***lines)
{
	int32_t n = 0, cap = 0;
	*lines = NULL;
	for (char *p = text, *nl; *p; p = nl ? nl + 1 : p + strlen(p)) {
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		if (nl && nl > p && nl[-1] == '\r')
			nl[-1] = '\0';
		if (!*p)
			continue;
		if (n == STEER_MAX_PROMPTS)
			return -1;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **l = realloc(*lines, (size_t)cap * sizeof *l);
			if (!l)
				return -1;
			*lines = l;
		}
		(*lines)[n++] = p;
	}
	return n;
}

int cmd_steer(int argc, char **argv)
{
	const char *model = NULL, *pos_path = NULL, *neg_path = NULL, *out = NULL, *val;
	long long t = 0;
	int method = HEARTH_CVEC_MEAN, rc = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(steer_help, stdout);
			return 0;
		}
		if (!(val = arg_value("steer", argc, argv, &i)))
			return EXIT_USAGE;
		if (!strcmp(a, "-m"))
			model = val;
		else if (!strcmp(a, "--positive"))
			pos_path = val;
		else if (!strcmp(a, "--negative"))
			neg_path = val;
		else if (!strcmp(a, "-o"))
			out = val;
		else if (!strcmp(a, "--method") && (!strcmp(val, "mean") || !strcmp(val, "pca")))
			method = !strcmp(val, "pca") ? HEARTH_CVEC_PCA : HEARTH_CVEC_MEAN;
		else if (!strcmp(a, "--method"))
			return usage_error("steer", "--method is mean or pca, not '%s'", val);
		else if (!strcmp(a, "-t")) {
			if (!arg_int("steer", a, val, 0, 512, &t))
				return EXIT_USAGE;
		} else
			return usage_error("steer", "unknown option '%s'", a);
	}
	if (!model || !pos_path || !neg_path || !out)
		return usage_error("steer", "-m, --positive, --negative and -o are required");

	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_cvec *cv = NULL;
	char **pos = NULL, **neg = NULL;
	size_t len;
	char *pos_text = cli_read_file(pos_path, &len), *neg_text = cli_read_file(neg_path, &len);
	if (!pos_text || !neg_text) {
		fprintf(stderr, "hearth steer: cannot read %s: %s\n", !pos_text ? pos_path : neg_path, strerror(errno));
		goto out;
	}
	const int32_t n_pos = split_lines(pos_text, &pos), n_neg = split_lines(neg_text, &neg);
	if (n_pos < 1 || n_neg < 1) {
		fprintf(stderr, "hearth steer: %s: one to %d prompts, one per line, are needed\n",
			n_pos < 1 ? pos_path : neg_path, STEER_MAX_PROMPTS);
		goto out;
	}
	const char *path = cli_model_path("steer", model);
	if (!path)
		goto out;
	if (hearth_model_load(&m, path, &mp, &err) ||
	    hearth_cvec_compute(&cv, m, (const char *const *)pos, n_pos, (const char *const *)neg, n_neg, method,
				(int32_t)t, &err) ||
	    hearth_cvec_write(cv, out, hearth_model_arch(m), &err)) {
		fprintf(stderr, "hearth steer: %s\n", err.msg);
		goto out;
	}
	fprintf(stderr, "hearth steer: %d positive and %d negative prompts, %s: wrote %s (direction.1 .. direction.%d)\n",
		n_pos, n_neg, method == HEARTH_CVEC_PCA ? "pca" : "mean", out, hearth_model_n_layer(m) - 1);
	rc = 0;
out:
	hearth_cvec_free(cv);
	hearth_model_free(m);
	free(pos);
	free(neg);
	free(pos_text);
	free(neg_text);
	return rc;
}
