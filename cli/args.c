/* args.c - argument checking, JSON output and the options run and chat share. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "hearth %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'hearth %s --help')\n", cmd);
	return EXIT_USAGE;
}

const char *arg_value(const char *cmd, int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		usage_error(cmd, "%s needs a value", argv[*i]);
		return NULL;
	}
	return argv[++*i];
}

bool arg_int(const char *cmd, const char *flag, const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		usage_error(cmd, "%s expects an integer from %lld to %lld, got '%s'", flag, lo, hi, s);
		return false;
	}
	*out = v;
	return true;
}

bool arg_float(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
		usage_error(cmd, "%s expects a number from %g to %g, got '%s'", flag, lo, hi, s);
		return false;
	}
	*out = v;
	return true;
}


void json_write_str(FILE *f, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	fputc('"', f);
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc(c, f);
			i++;
		} else if (c == '\n') {
			fputs("\\n", f);
			i++;
		} else if (c == '\t') {
			fputs("\\t", f);
			i++;
		} else if (c == '\r') {
			fputs("\\r", f);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\u%04x", c);
			i++;
		} else {
			size_t k = hearth_utf8_valid((const char *)s + i, n - i);
			if (k == 0) {
				fputs("\\ufffd", f);
				i++;
			} else {
				fwrite(s + i, 1, k, f);
				i += k;
			}
		}
	}
	fputc('"', f);
}

void json_write_ids(FILE *f, const int32_t *ids, int32_t n)
{
	fputc('[', f);
	for (int32_t i = 0; i < n; i++)
		fprintf(f, i ? ",%d" : "%d", ids[i]);
	fputc(']', f);
}

void cli_log(enum hearth_log_level level, const char *msg, void *user_data)
{
	(void)user_data;
	if (level <= HEARTH_LOG_WARN)
		fprintf(stderr, "%s: %s\n", level == HEARTH_LOG_ERROR ? "error" : "warning", msg);
}

void gen_opts_init(struct gen_opts *o)
{
	memset(o, 0, sizeof *o);
	o->sp = hearth_sampler_default_params();
	o->cp = hearth_context_default_params();
	o->n_predict = -1;
}

const char gen_opts_help[] =
	"  -m, --model FILE        GGUF model (required)\n"
	"  -n, --n-predict N       tokens to generate (-1: until end of text or a full context) [-1]\n"
	"  -c, --ctx-size N        context size in tokens (0: the model's, at most 4096) [0]\n"
	"  -b, --batch-size N      most prompt tokens per forward pass [512]\n"
	"  -t, --threads N         threads (0: the physical cores) [0]\n"
	"      --cache-type T      KV cache type: f16, f32 or q8_0 [f16]\n"
	"      --temp T            temperature; 0 = greedy [0.8]\n"
	"      --top-k K           keep the K most likely tokens; 0 = off [40]\n"
	"      --top-p P           nucleus sampling; 1 = off [0.95]\n"
	"      --min-p P           drop tokens below P x the best one's probability; 0 = off [0.05]\n"
	"      --repeat-penalty R  penalize repeated tokens; 1 = off [1.0]\n"
	"      --repeat-last-n N   tokens the penalties look back over; -1 = all [64]\n"
	"      --frequency-penalty F, --presence-penalty P   OpenAI-style penalties [0]\n"
	"  -s, --seed S            random seed, for reproducible runs [random]\n"
	"      --lora FILE[:SCALE] a LoRA adapter (llama.cpp's GGUF; a file or a stored name) times SCALE [1];\n"
	"                          repeatable\n";

bool gen_opts_lora(struct gen_opts *o, const char *cmd, const char *v)
{
	if (o->n_lora == HEARTH_MAX_LORAS)
		return usage_error(cmd, "--lora: at most %d adapters", HEARTH_MAX_LORAS), false;
	const char *colon = strrchr(v, ':');
	size_t n = strlen(v);
	float scale = 1.0f;
	if (colon) { /* FILE:SCALE when what follows the last colon is a number */
		char *end;
		const double f = strtod(colon + 1, &end);
		if (end != colon + 1 && !*end) {
			if (!(fabs(f) <= 1000))
				return usage_error(cmd, "--lora: scale '%s' is not a number within +-1000", colon + 1), false;
			scale = (float)f;
			n = (size_t)(colon - v);
		}
	}
	if (n == 0 || n >= sizeof o->lora_buf[0])
		return usage_error(cmd, "--lora: no file, or a path too long, in '%.64s'", v), false;
	char given[sizeof o->lora_buf[0]];
	struct hearth_err err = { 0 };
	memcpy(given, v, n);
	given[n] = 0;
	/* a file, else an adapter in the store (pulled like a model: a REF or short name) */
	if (hearth_store_resolve(given, o->lora_buf[o->n_lora], sizeof o->lora_buf[0], &err))
		return usage_error(cmd, "--lora: %s", err.msg), false;
	o->lora_path[o->n_lora] = o->lora_buf[o->n_lora];
	o->lora_scale[o->n_lora++] = scale;
	return true;
}

int gen_opts_apply_lora(const struct gen_opts *o, const char *cmd, struct hearth_model *m, struct hearth_context *c)
{
	struct hearth_lora_use use[HEARTH_MAX_LORAS] = { { 0 } };
	struct hearth_err err = { 0 };
	int rc = 0;
	for (int k = 0; k < o->n_lora && !rc; k++) {
		use[k].scale = o->lora_scale[k];
		rc = hearth_lora_load(&use[k].lora, m, o->lora_path[k], &err);
	}
	if (!rc)
		rc = hearth_context_set_lora(c, use, o->n_lora, &err);
	for (int k = 0; k < o->n_lora; k++)
		hearth_lora_free(use[k].lora); /* c holds its own references */
	if (rc)
		fprintf(stderr, "hearth %s: %s\n", cmd, err.msg);
	return rc ? 1 : 0;
}

int gen_opts_parse(struct gen_opts *o, const char *cmd, int argc, char **argv, int *i)
{
	const char *a = argv[*i], *v;
	long long n;
	double f;

#define VAL()                                          \
	do {                                           \
		if (!(v = arg_value(cmd, argc, argv, i))) \
			return -1;                     \
	} while (0)
	if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
		VAL();
		o->model = v;
	} else if (!strcmp(a, "--lora")) {
		VAL();
		if (!gen_opts_lora(o, cmd, v))
			return -1;
	} else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
		VAL();
		if (!arg_int(cmd, a, v, -1, INT32_MAX, &n))
			return -1;
		o->n_predict = (int32_t)n;
	} else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
		VAL();
		if (!arg_int(cmd, a, v, 0, 1 << 22, &n))
			return -1;
		o->cp.n_ctx = (int32_t)n;
	} else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
		VAL();
		if (!arg_int(cmd, a, v, 1, 1 << 16, &n))
			return -1;
		o->cp.n_batch = (int32_t)n;
	} else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
		VAL();
		if (!arg_int(cmd, a, v, 0, 512, &n))
			return -1;
		o->cp.n_threads = (int32_t)n;
	} else if (!strcmp(a, "--cache-type")) {
		VAL();
		if (!strcmp(v, "f16"))
			o->cp.cache_type = HEARTH_TYPE_F16;
		else if (!strcmp(v, "f32"))
			o->cp.cache_type = HEARTH_TYPE_F32;
		else if (!strcmp(v, "q8_0"))
			o->cp.cache_type = HEARTH_TYPE_Q8_0;
		else
			return usage_error(cmd, "--cache-type expects f16, f32 or q8_0, got '%s'", v), -1;
	} else if (!strcmp(a, "--temp")) {
		VAL();
		if (!arg_float(cmd, a, v, 0, 100, &f))
			return -1;
		o->sp.temp = (float)f;
	} else if (!strcmp(a, "--top-k")) {
		VAL();
		if (!arg_int(cmd, a, v, 0, INT32_MAX, &n))
			return -1;
		o->sp.top_k = (int32_t)n;
	} else if (!strcmp(a, "--top-p")) {
		VAL();
		if (!arg_float(cmd, a, v, 0, 1, &f))
			return -1;
		o->sp.top_p = (float)f;
	} else if (!strcmp(a, "--min-p")) {
		VAL();
		if (!arg_float(cmd, a, v, 0, 1, &f))
			return -1;
		o->sp.min_p = (float)f;
	} else if (!strcmp(a, "--repeat-penalty")) {
		VAL();
		if (!arg_float(cmd, a, v, 0.01, 100, &f))
			return -1;
		o->sp.repeat_penalty = (float)f;
	} else if (!strcmp(a, "--repeat-last-n")) {
		VAL();
		if (!arg_int(cmd, a, v, -1, INT32_MAX, &n))
			return -1;
		o->sp.repeat_last_n = (int32_t)n;
	} else if (!strcmp(a, "--frequency-penalty")) {
		VAL();
		if (!arg_float(cmd, a, v, -2, 2, &f))
			return -1;
		o->sp.frequency_penalty = (float)f;
	} else if (!strcmp(a, "--presence-penalty")) {
		VAL();
		if (!arg_float(cmd, a, v, -2, 2, &f))
			return -1;
		o->sp.presence_penalty = (float)f;
	} else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
		VAL();
		if (!arg_int(cmd, a, v, 0, INT64_MAX, &n))
			return -1;
		o->sp.seed = (uint64_t)n;
		o->seed_set = true;
	} else {
		return 0;
	}
#undef VAL
	return 1;
}

/* The whole file at path ("-": standard input), NUL-terminated; NULL on error. */
char *cli_read_file(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char *buf = NULL;
	size_t cap = 0, n = 0, k;
	if (!f)
		return NULL;
	do {
		if (n + 4096 + 1 > cap) {
			cap = (n + 4096 + 1) * 2;
			char *b = realloc(buf, cap);
			if (!b) {
				free(buf);
				if (f != stdin)
					fclose(f);
				return NULL;
			}
			buf = b;
		}
		k = fread(buf + n, 1, cap - n - 1, f);
		n += k;
	} while (k > 0);
	int bad = ferror(f);
	if (f != stdin)
		fclose(f);
	if (bad) {
		free(buf);
		return NULL;
	}
	buf[n] = 0;
	*len = n;
	return buf;
}
