/* cmd-store.c - the model store from the command line: `hearth list`,
 * `hearth rm NAME`, `hearth show NAME`, and the name-or-file lookup every
 * command's -m goes through (cli_model_path). */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *cli_model_path(const char *cmd, const char *name)
{
	static char path[HEARTH_STORE_PATH_MAX];
	struct hearth_err err = { 0 };
	if (!name)
		return NULL;
	if (hearth_store_resolve(name, path, sizeof path, &err)) {
		fprintf(stderr, "hearth %s: %s\n", cmd, err.msg);
		return NULL;
	}
	return path;
}

static void print_size(FILE *f, uint64_t n)
{
	if (n >= 1000000000)
		fprintf(f, "%.2f GB", (double)n / 1e9);
	else
		fprintf(f, "%.1f MB", (double)n / 1e6);
}

static const char list_help[] =
	"usage: hearth list [--json]\n"
	"\n"
	"Lists the models in the store ($HEARTH_HOME, else ~/.hearth): the name to give -m, the size,\n"
	"and the file. --json prints [{\"name\",\"short_name\",\"path\",\"size\",\"source\"}].\n";

int cmd_list(int argc, char **argv)
{
	struct hearth_store_entry *e;
	struct hearth_err err = { 0 };
	bool json = false;
	int n;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(list_help, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else {
			return usage_error("list", "unknown argument '%s'", argv[i]);
		}
	}
	if (hearth_store_list(&e, &n, &err)) {
		fprintf(stderr, "hearth list: %s\n", err.msg);
		return 1;
	}
	if (json) {
		json_t *arr = json_array();
		for (int i = 0; arr && i < n; i++)
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I, s:s}", "name", e[i].name, "short_name",
							     e[i].short_name, "path", e[i].path, "size",
							     (json_int_t)e[i].size, "source", e[i].source));
		char *s = arr ? json_dumps(arr, 0) : NULL;
		printf("%s\n", s ? s : "[]");
		free(s);
		json_decref(arr);
	} else if (n == 0) {
		printf("no models stored yet: `hearth pull REF` downloads one\n");
	} else {
		printf("%-56s %s  %s\n", "NAME", "SIZE", "FILE");
		for (int i = 0; i < n; i++) {
			printf("%-56s ", e[i].name);
			print_size(stdout, e[i].size);
			printf("  %s\n", e[i].path);
		}
	}
	free(e);
	return 0;
}

static const char rm_help[] =
	"usage: hearth rm NAME...\n"
	"\n"
	"Deletes stored models (the names `hearth list` shows, a REF as pulled, or a short name).\n";

int cmd_rm(int argc, char **argv)
{
	int status = 0, n = 0;
	for (int i = 1; i < argc; i++) {
		struct hearth_err err = { 0 };
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(rm_help, stdout);
			return 0;
		}
		if (argv[i][0] == '-')
			return usage_error("rm", "unknown option '%s'", argv[i]);
		if (hearth_store_remove(argv[i], &err)) {
			fprintf(stderr, "hearth rm: %s\n", err.msg);
			status = 1;
		} else {
			printf("removed %s\n", argv[i]);
		}
		n++;
	}
	return n ? status : usage_error("rm", "NAME is required");
}
