/* cmd-inspect.c - `hearth inspect FILE [--json]`: a GGUF file's metadata and
 * tensor table, for people or (with --json) for programs. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *vtype_name(int t)
{
	static const char *n[] = { "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64" };
	return t >= 0 && t <= 12 ? n[t] : "?";
}

/* hearth_gguf_kv_json into a malloc'd buffer. */
static char *kv_json(const struct hearth_gguf *g, int64_t i, int64_t max_items)
{
	size_t need = hearth_gguf_kv_json(g, i, max_items, NULL, 0) + 1;
	char *buf = malloc(need);
	if (buf)
		hearth_gguf_kv_json(g, i, max_items, buf, need);
	return buf;
}

static const char inspect_help[] =
	"usage: hearth inspect FILE|NAME [--json]\n"
	"\n"
	"Prints a GGUF file's metadata and tensor table. --json prints one JSON object\n"
	"{\"version\",\"metadata\":{key:value},\"tensors\":[{name,type,shape,offset,nbytes}]}\n"
	"with every array in full.\n";

int cmd_inspect(int argc, char **argv)
{
	const char *path = NULL;
	bool json = false;
	struct hearth_err err = { 0 };
	struct hearth_gguf *g;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(inspect_help, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return usage_error("inspect", "unknown option '%s'", argv[i]);
		} else if (path) {
			return usage_error("inspect", "one file at a time");
		} else {
			path = argv[i];
		}
	}
	if (!path)
		return usage_error("inspect", "FILE is required");
	if (!(path = cli_model_path("inspect", path)))
		return 1;
	if (hearth_gguf_open(&g, path, &err)) {
		fprintf(stderr, "hearth inspect: %s\n", err.msg);
		return 1;
	}
	const int64_t n_kv = hearth_gguf_n_kv(g), n_t = hearth_gguf_n_tensors(g);
	if (json) {
		printf("{\"version\":%u,\"metadata\":{", hearth_gguf_version(g));
		for (int64_t i = 0; i < n_kv; i++) {
			char *v = kv_json(g, i, -1);
			if (i)
				putchar(',');
			json_write_str(stdout, hearth_gguf_key(g, i), strlen(hearth_gguf_key(g, i)));
			printf(":%s", v ? v : "null");
			free(v);
		}
		printf("},\"tensors\":[");
		for (int64_t i = 0; i < n_t; i++) {
			struct hearth_tensor_info t;
			hearth_gguf_tensor(g, i, &t);
			printf("%s{\"name\":", i ? "," : "");
			json_write_str(stdout, t.name, strlen(t.name));
			printf(",\"type\":\"%s\",\"shape\":[", hearth_type_name(t.type));
			for (int d = 0; d < t.n_dims; d++)
				printf(d ? ",%" PRId64 : "%" PRId64, t.ne[d]);
			printf("],\"offset\":%" PRIu64 ",\"nbytes\":%" PRIu64 "}", t.offset, t.nbytes);
		}
		printf("]}\n");
	} else {
		uint64_t total = 0;
		printf("%s: GGUF v%u, %" PRId64 " metadata keys, %" PRId64 " tensors\n\nmetadata:\n", path,
		       hearth_gguf_version(g), n_kv, n_t);
		for (int64_t i = 0; i < n_kv; i++) {
			char *v = kv_json(g, i, 8);
			int t = hearth_gguf_kv_type(g, i);
			if (t == HEARTH_GGUF_ARRAY)
				printf("  %-44s %s[%" PRIu64 "] %s\n", hearth_gguf_key(g, i),
				       vtype_name(hearth_gguf_arr_type(g, i)), hearth_gguf_arr_n(g, i), v ? v : "");
			else
				printf("  %-44s %-8s %.200s%s\n", hearth_gguf_key(g, i), vtype_name(t), v ? v : "",
				       v && strlen(v) > 200 ? "..." : "");
			free(v);
		}
		printf("\ntensors:\n  %-40s %-6s %-24s %12s %12s\n", "name", "type", "shape", "offset", "bytes");
		for (int64_t i = 0; i < n_t; i++) {
			struct hearth_tensor_info t;
			char shape[96];
			size_t o = 0;
			hearth_gguf_tensor(g, i, &t);
			for (int d = 0; d < t.n_dims && o < sizeof shape; d++)
				o += (size_t)snprintf(shape + o, sizeof shape - o, d ? " x %" PRId64 : "%" PRId64, t.ne[d]);
			printf("  %-40s %-6s %-24s %12" PRIu64 " %12" PRIu64 "\n", t.name, hearth_type_name(t.type), shape,
			       t.offset, t.nbytes);
			total += t.nbytes;
		}
		printf("\n%" PRId64 " tensors, %.2f MiB of weights\n", n_t, (double)total / (1024.0 * 1024.0));
	}
	hearth_gguf_close(g);
	return 0;
}
