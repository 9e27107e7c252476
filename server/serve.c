/*
 * serve.c - `hearth serve`: flags, start-up (HTTP first, so /health answers
 * 503 while the model loads), and a graceful stop: on SIGTERM or SIGINT
 * /health fails, new requests get 503, in-flight ones finish, then it exits.
 */
#include <errno.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../cli/cli.h"
#include "server.h"

static const char serve_help[] =
	"usage: hearth serve -m FILE [options]\n"
	"\n"
	"An OpenAI-compatible server: /v1/chat/completions, /v1/completions, /v1/models,\n"
	"/tokenize, /detokenize, /health, /metrics (vLLM's metric names).\n"
	"\n"
	"  -m, --model FILE        GGUF model (required)\n"
	"      --host ADDR         address to bind [127.0.0.1]\n"
	"      --port N            port [8080]\n"
	"  -np, --parallel N       requests decoded together [4]\n"
	"  -c, --ctx-size N        most tokens per request, prompt + output (0: the model's, at most 4096) [0]\n"
	"      --kv-size N         KV cache tokens shared by all requests (0: parallel x ctx-size) [0]\n"
	"  -b, --batch-size N      most tokens per forward pass [512]\n"
	"  -t, --threads N         threads (0: the physical cores) [0]\n"
	"      --cache-type T      KV cache type: f16, f32 or q8_0 [f16]\n"
	"      --max-queue N       waiting requests before 429 [256]\n"
	"      --api-key KEY       require 'Authorization: Bearer KEY' (repeatable)\n"
	"      --api-key-file F    keys, one per line\n"
	"      --alias NAME        the model name clients use [the file name]\n"
	"      --max-body BYTES    largest request body [8388608]\n"
	"      --timeout S         drop connections idle this long [30]\n"
	"      --request-timeout S give up on a request after this long (0: never) [600]\n"
	"      --log-prompts       log rendered prompts to stderr (off: prompts are private)\n";

static int add_key(struct server *srv, const char *k)
{
	if (srv->n_keys >= SRV_MAX_KEYS || !*k)
		return -1;
	return (srv->keys[srv->n_keys++] = strdup(k)) ? 0 : -1;
}

static int read_keys(struct server *srv, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (line[0] && line[0] != '#' && add_key(srv, line)) {
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

int cmd_serve(int argc, char **argv)
{
	struct server srv = { .host = "127.0.0.1", .port = 8080, .max_body = 8u << 20, .timeout_s = 30,
			      .request_timeout_s = 600 };
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct MHD_Daemon *d = NULL;
	long long v;
	double f;
	int rc = 1;

	srv.sp = hearth_sched_default_params();
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(serve_help, stdout);
			return 0;
		}
		if (!strcmp(a, "--log-prompts")) {
			srv.log_prompts = true;
			continue;
		}
		if (!(val = arg_value("serve", argc, argv, &i)))
			return EXIT_USAGE;
		if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
			srv.model_path = val;
		} else if (!strcmp(a, "--host")) {
			srv.host = val;
		} else if (!strcmp(a, "--port")) {
			if (!arg_int("serve", a, val, 0, 65535, &v))
				return EXIT_USAGE;
			srv.port = (int)v;
		} else if (!strcmp(a, "-np") || !strcmp(a, "--parallel")) {
			if (!arg_int("serve", a, val, 1, 256, &v))
				return EXIT_USAGE;
			srv.sp.n_parallel = (int32_t)v;
		} else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
			if (!arg_int("serve", a, val, 0, 1 << 20, &v))
				return EXIT_USAGE;
			srv.sp.n_ctx_seq = (int32_t)v;
		} else if (!strcmp(a, "--kv-size")) {
			if (!arg_int("serve", a, val, 0, 1 << 24, &v))
				return EXIT_USAGE;
			srv.sp.n_ctx = (int32_t)v;
		} else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
			if (!arg_int("serve", a, val, 1, 1 << 16, &v))
				return EXIT_USAGE;
			srv.sp.n_batch = (int32_t)v;
		} else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
			if (!arg_int("serve", a, val, 0, 512, &v))
				return EXIT_USAGE;
			srv.sp.n_threads = (int32_t)v;
		} else if (!strcmp(a, "--cache-type")) {
			if (strcmp(val, "f16") && strcmp(val, "f32") && strcmp(val, "q8_0"))
				return usage_error("serve", "--cache-type expects f16, f32 or q8_0, got '%s'", val);
			srv.sp.cache_type = !strcmp(val, "f16") ? HEARTH_TYPE_F16 : !strcmp(val, "f32") ? HEARTH_TYPE_F32 : HEARTH_TYPE_Q8_0;
		} else if (!strcmp(a, "--max-queue")) {
			if (!arg_int("serve", a, val, 1, 1 << 20, &v))
				return EXIT_USAGE;
			srv.sp.max_queue = (int32_t)v;
		} else if (!strcmp(a, "--api-key")) {
			if (add_key(&srv, val))
				return usage_error("serve", "too many or empty API keys");
		} else if (!strcmp(a, "--api-key-file")) {
			if (read_keys(&srv, val)) {
				fprintf(stderr, "hearth serve: %s: cannot read the API keys\n", val);
				return 1;
			}
		} else if (!strcmp(a, "--alias")) {
			srv.alias = val;
		} else if (!strcmp(a, "--max-body")) {
			if (!arg_int("serve", a, val, 1024, 1LL << 31, &v))
				return EXIT_USAGE;
			srv.max_body = (size_t)v;
		} else if (!strcmp(a, "--timeout")) {
			if (!arg_int("serve", a, val, 1, 86400, &v))
				return EXIT_USAGE;
			srv.timeout_s = (int)v;
		} else if (!strcmp(a, "--request-timeout")) {
			if (!arg_float("serve", a, val, 0, 86400 * 7, &f))
				return EXIT_USAGE;
			srv.request_timeout_s = f;
		} else {
			return usage_error("serve", "unknown option '%s'", a);
		}
	}
	if (!srv.model_path)
		return usage_error("serve", "-m FILE is required");
	if (!srv.alias)
		srv.alias = base_name(srv.model_path);

	/* signals go to sigwait below, not to whichever thread runs */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (metrics_new(&srv.metrics)) {
		fprintf(stderr, "hearth serve: out of memory\n");
		goto out;
	}
	atomic_store(&srv.phase, SRV_LOADING);
	if (!(d = http_start(&srv)))
		goto out;
	fprintf(stderr, "hearth serve: listening on http://%s:%d (%s)\n", srv.host, srv.port,
		srv.n_keys ? "API key required" : "no API key");
	if (hearth_model_load(&srv.model, srv.model_path, &mp, &err) ||
	    hearth_sched_new(&srv.sched, srv.model, &srv.sp, &err)) {
		fprintf(stderr, "hearth serve: %s\n", err.msg);
		goto out;
	}
	srv.sp = hearth_sched_params_used(srv.sched); /* the defaults it filled in */
	srv.created = (long)time(NULL);
	atomic_store(&srv.phase, SRV_READY);
	fprintf(stderr, "hearth serve: %s ready as '%s' (%d parallel, %d tokens per request)\n", srv.model_path,
		srv.alias, srv.sp.n_parallel, srv.sp.n_ctx_seq);

	int sig;
	sigwait(&sigs, &sig);
	fprintf(stderr, "hearth serve: %s: draining %d request(s)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT",
		atomic_load(&srv.in_flight));
	atomic_store(&srv.phase, SRV_DRAINING);
	while (atomic_load(&srv.in_flight) > 0) {
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
	rc = 0;
out:
	if (d)
		MHD_stop_daemon(d);
	hearth_sched_free(srv.sched);
	hearth_model_free(srv.model);
	metrics_free(srv.metrics);
	for (int i = 0; i < srv.n_keys; i++)
		free(srv.keys[i]);
	fprintf(stderr, "hearth serve: stopped\n");
	return rc;
}
