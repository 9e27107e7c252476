/* cmd-tokenize.c - `hearth tokenize` (text -> JSON array of ids) and
 * `hearth detokenize` (ids -> text). Both work on vocabulary-only GGUFs. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int load_vocab(const char *cmd, const char *path, struct hearth_model **m)
{
	struct hearth_model_params p = hearth_model_default_params();
	struct hearth_err err = { 0 };
	p.vocab_only = true;
	if (hearth_model_load(m, path, &p, &err)) {
		fprintf(stderr, "hearth %s: %s\n", cmd, err.msg);
		return 1;
	}
	return 0;
}

static int tokenize_print(struct hearth_model *m, const char *text, size_t len, bool add_special, bool parse_special)
{
	struct hearth_err err = { 0 };
	int32_t *ids, n;
	if (hearth_tokenize(m, text, len, add_special, parse_special, &ids, &n, &err)) {
		fprintf(stderr, "hearth tokenize: %s\n", err.msg);
		return 1;
	}
	json_write_ids(stdout, ids, n);
	putchar('\n');
	free(ids);
	return 0;
}

static const char tokenize_help[] =
	"usage: hearth tokenize -m FILE [--no-bos] [--special] (TEXT | --jsonl)\n"
	"\n"
	"Prints the token ids of TEXT as a JSON array.\n"
	"  --no-bos    do not add the BOS/EOS tokens the vocabulary asks for\n"
	"  --special   turn special-token text (\"<|im_start|>\") into its token\n"
	"  --jsonl     read one JSON string per stdin line; print one array per line\n";

int cmd_tokenize(int argc, char **argv)
{
	const char *model = NULL, *text = NULL;
	bool no_bos = false, special = false, jsonl = false;
	struct hearth_model *m;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(tokenize_help, stdout);
			return 0;
		} else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
			if (!(model = arg_value("tokenize", argc, argv, &i)))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--no-bos")) {
			no_bos = true;
		} else if (!strcmp(a, "--special")) {
			special = true;
		} else if (!strcmp(a, "--jsonl")) {
			jsonl = true;
		} else if (a[0] == '-' && a[1] && strcmp(a, "--")) {
			return usage_error("tokenize", "unknown option '%s'", a);
		} else {
			if (!strcmp(a, "--") && ++i >= argc)
				break;
			if (text)
				return usage_error("tokenize", "give the text as one argument (quote it)");
			text = argv[i];
		}
	}
	if (!model)
		return usage_error("tokenize", "-m FILE is required");
	if (!(model = cli_model_path("tokenize", model)))
		return 1;
	if (!text == !jsonl)
		return usage_error("tokenize", "give TEXT or --jsonl (one of them)");
	if (load_vocab("tokenize", model, &m))
		return 1;
	if (!jsonl) {
		rc = tokenize_print(m, text, strlen(text), !no_bos, special);
	} else {
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;
		long lineno = 0;
		while ((n = getline(&line, &cap, stdin)) >= 0) {
			json_error_t je;
			lineno++;
			json_t *j = json_loadb(line, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
			if (!j || !json_is_string(j)) {
				fprintf(stderr, "hearth tokenize: stdin line %ld: expected a JSON string%s%s\n", lineno,
					j ? "" : ": ", j ? "" : je.text);
				json_decref(j);
				rc = 1;
				break;
			}
			rc = tokenize_print(m, json_string_value(j), json_string_length(j), !no_bos, special);
			json_decref(j);
			fflush(stdout);
			if (rc)
				break;
		}
		free(line);
	}
	hearth_model_free(m);
	return rc;
}

static const char detokenize_help[] =
	"usage: hearth detokenize -m FILE [--special] ID...\n"
	"\n"
	"Prints the text of the token ids. --special also prints control tokens' text.\n";

int cmd_detokenize(int argc, char **argv)
{
	const char *model = NULL;
	bool special = false;
	struct hearth_err err = { 0 };
	struct hearth_model *m;
	int32_t *ids = calloc((size_t)argc, sizeof *ids), n = 0;
	char *text;
	int rc = EXIT_USAGE;

	if (!ids)
		return 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		long long v;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(detokenize_help, stdout);
			rc = 0;
			goto out;
		} else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
			if (!(model = arg_value("detokenize", argc, argv, &i)))
				goto out;
		} else if (!strcmp(a, "--special")) {
			special = true;
		} else if (a[0] == '-' && !(a[1] >= '0' && a[1] <= '9')) {
			usage_error("detokenize", "unknown option '%s'", a);
			goto out;
		} else {
			if (!arg_int("detokenize", "a token id", a, 0, INT32_MAX, &v))
				goto out;
			ids[n++] = (int32_t)v;
		}
	}
	if (!model) {
		usage_error("detokenize", "-m FILE is required");
		goto out;
	}
	if (!(model = cli_model_path("detokenize", model))) {
		rc = 1;
		goto out;
	}
	rc = 1;
	if (load_vocab("detokenize", model, &m))
		goto out;
	size_t len = 0;
	if (hearth_detokenize(m, ids, n, special, &text, &len, &err)) {
		fprintf(stderr, "hearth detokenize: %s\n", err.msg);
	} else {
		fwrite(text, 1, len, stdout);
		putchar('\n');
		free(text);
		rc = 0;
	}
	hearth_model_free(m);
out:
	free(ids);
	return rc;
}
