/*
 * serve.c - `hearth serve`: flags, API keys, TLS files, the models served,
 * start-up (the socket and HTTP first, so /health answers 503 while a single
 * model loads; several models load on first use), and a
 * graceful stop: on SIGTERM or SIGINT /health fails, new requests get 503,
 * in-flight ones finish, then it exits.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cache.h"
#include "../cli/cli.h"
#include "server.h"
#include "usage.h"

#define PEM_MAX (1 << 20) /* a certificate chain or key file */

static const char serve_help[] =
	"usage: hearth serve -m FILE [options]\n"
	"       hearth serve -m NAME=FILE [-m NAME=FILE ...] [--models-dir DIR] [options]\n"
	"\n"
	"An OpenAI-compatible server: /v1/chat/completions, /v1/completions, /v1/models,\n"
	"/tokenize, /detokenize, /health, /metrics (vLLM's metric names); and Ollama's\n"
	"/api/chat, /api/generate, /api/tags, /api/show, /api/ps, /api/version.\n"
	"\n"
	"  -m, --model FILE        GGUF model (alone: loaded at start; named by --alias)\n"
	"  -m, --model NAME=FILE   a model clients call NAME (repeatable; the first is the default)\n"
	"      --models-dir DIR    every DIR/*.gguf, named by its file name without .gguf\n"
	"      --max-loaded N      models loaded at once; the least recently used idle one\n"
	"                          makes room (0: no limit) [3]\n"
	"      --idle-unload S     unload a model unused for S seconds (0: never) [0]\n"
	"      --host ADDR         address to bind [127.0.0.1]\n"
	"      --port N            port (0: any free one) [8080]\n"
	"  -np, --parallel N       requests decoded together [4]\n"
	"  -c, --ctx-size N        most tokens per request, prompt + output (0: the model's, at most 4096) [0]\n"
	"      --kv-size N         KV cache tokens shared by all requests (0: parallel x ctx-size) [0]\n"
	"  -b, --batch-size N      most tokens per forward pass [512]\n"
	"  -t, --threads N         threads (0: the physical cores) [0]\n"
	"      --cache-type T      KV cache type: f16, f32 or q8_0 [f16]\n"
	"      --max-queue N       waiting requests before 429 [256]\n"
	"      --alias NAME        the name of the -m FILE model [the file name]\n"
	"      --log-prompts       log rendered prompts to stderr (off: prompts are private)\n"
	"      --chat-template FILE  a Jinja2 chat template instead of the model's\n"
	"      --lora NAME=FILE[:SCALE]  a LoRA adapter (llama.cpp's GGUF; a file or a stored name) of the\n"
	"                          first model, times SCALE [1]; requests pick it with \"lora\": NAME or\n"
	"                          \"model\": \"BASE+NAME\"\n"
	"      --lora-dir DIR      let POST /v1/lora load adapters from files inside DIR (off: none)\n"
	"      --control-vector FILE[:SCALE]  steer every request with this llama.cpp control vector\n"
	"                          times SCALE [1] (repeatable: summed; per request: \"steering\")\n"
	"      --allow-special-in-content  control-token text in messages becomes control tokens\n"
	"                          (Hugging Face's behaviour; off: it stays text, no forged turns)\n"
	"      --allow-pull        let clients pull models into the store (Ollama's /api/pull; hub\n"
	"                          references only, never URLs; off: 403)\n"
	"\n"
	"Security (see the README's security model):\n"
	"      --api-key KEY       require 'Authorization: Bearer KEY' (repeatable; at least 16 bytes)\n"
	"      --api-key-file F    keys, one per line: KEY, or NAME KEY [admin] [rpm=N] [tpd=N]\n"
	"                          ('#' starts a comment line)\n"
	"      --allow-weak-key    accept keys shorter than 16 bytes\n"
	"      --allowed-host NAME answer this Host name too, besides IP addresses and localhost\n"
	"                          (repeatable; '*': any name)\n"
	"      --cors-origin URL   let web pages from this origin call the API (repeatable; '*': any)\n"
	"      --ssl-cert FILE     serve HTTPS with this PEM certificate (chain)\n"
	"      --ssl-key FILE      and this PEM private key\n"
	"      --max-body BYTES    largest completion request body [8388608]\n"
	"      --cache-budget BYTES  disk space saved states (/v1/cache, under HEARTH_HOME/states) may\n"
	"                          take; the least recently used go first (0: no limit) [4294967296]\n"
	"      --max-body-total B  bytes all request bodies being received may hold at once [268435456]\n"
	"      --timeout S         a connection must deliver each whole request within S seconds\n"
	"                          of opening (or of its previous reply), and may not leave what it\n"
	"                          is sent unread for longer [30]\n"
	"      --request-timeout S give up on a request after this long (0: never) [600]\n"
	"      --max-connections N open connections in all [1024]\n"
	"      --max-connections-per-ip N  open connections per client address (IPv6: per /64) [256]\n";

/* The whole PEM file at path (malloc'd), or NULL after printing why. */
static char *read_pem(const char *flag, const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0;
	if (!f) {
		fprintf(stderr, "hearth serve: %s %s: %s\n", flag, path, strerror(errno));
		return NULL;
	}
	if (!(buf = malloc(PEM_MAX + 1)))
		goto out;
	n = fread(buf, 1, PEM_MAX + 1, f);
	if (ferror(f) || n == 0 || n > PEM_MAX || !strstr((buf[n] = 0, buf), "-----BEGIN ")) {
		fprintf(stderr, "hearth serve: %s %s: %s\n", flag, path,
			ferror(f) ? strerror(errno) : n > PEM_MAX ? "larger than 1 MiB" : "not a PEM file");
		free(buf);
		buf = NULL;
	}
out:
	fclose(f);
	return buf;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* Adds a --allowed-host or --cors-origin value; false when there are too many. */
static bool add_name(const char **list, int *n, const char *v)
{
	if (*n >= SRV_MAX_NAMES || !*v)
		return false;
	list[(*n)++] = v;
	return true;
}

#define MAX_MODEL_ARGS 64

struct serve_opts {
	const char *models[MAX_MODEL_ARGS]; /* -m values */
	int n_models;
	const char *models_dir;
	int max_loaded;
	double idle_unload;
	const char *key_file, *cert_file, *key_pem_file;
	const char *template_path; /* --chat-template */
	char *template_src;        /* its text (configure reads it) */
	size_t template_len;
	const char *keys[SRV_MAX_KEYS];
	int n_keys;
	bool allow_weak;
};

/* Parses the flags into srv and o; an exit code when it must stop (-1: go on). */
static int parse_flags(int argc, char **argv, struct server *srv, struct serve_opts *o)
{
	long long v;
	double f;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(serve_help, stdout);
			fputs(usage_help, stdout);
			return 0;
		}
		if (!strcmp(a, "--log-prompts")) {
			srv->log_prompts = true;
			continue;
		}
		if (!strcmp(a, "--allow-weak-key")) {
			o->allow_weak = true;
			continue;
		}
		if (!strcmp(a, "--allow-pull")) {
			srv->allow_pull = true;
			continue;
		}
		if (!strcmp(a, "--no-usage")) {
			usage_flag(srv->usage_conf, a, NULL);
			continue;
		}
		if (!strcmp(a, "--allow-special-in-content")) {
			srv->allow_special_in_content = true;
			continue;
		}
		if (!(val = arg_value("serve", argc, argv, &i)))
			return EXIT_USAGE;
		const int uf = usage_flag(srv->usage_conf, a, val);
		if (uf < 0)
			return EXIT_USAGE;
		if (uf > 0) {
			continue;
		} else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
			if (o->n_models == MAX_MODEL_ARGS)
				return usage_error("serve", "at most %d -m flags (--models-dir for more)", MAX_MODEL_ARGS);
			o->models[o->n_models++] = val;
		} else if (!strcmp(a, "--models-dir")) {
			o->models_dir = val;
		} else if (!strcmp(a, "--max-loaded")) {
			if (!arg_int("serve", a, val, 0, MODELS_MAX, &v))
				return EXIT_USAGE;
			o->max_loaded = (int)v;
		} else if (!strcmp(a, "--idle-unload")) {
			if (!arg_float("serve", a, val, 0, 86400 * 365, &f))
				return EXIT_USAGE;
			o->idle_unload = f;
		} else if (!strcmp(a, "--host")) {
			srv->host = val;
		} else if (!strcmp(a, "--port")) {
			if (!arg_int("serve", a, val, 0, 65535, &v))
				return EXIT_USAGE;
			srv->port = (int)v;
		} else if (!strcmp(a, "-np") || !strcmp(a, "--parallel")) {
			if (!arg_int("serve", a, val, 1, 256, &v))
				return EXIT_USAGE;
			srv->sp.n_parallel = (int32_t)v;
		} else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
			if (!arg_int("serve", a, val, 0, 1 << 20, &v))
				return EXIT_USAGE;
			srv->sp.n_ctx_seq = (int32_t)v;
		} else if (!strcmp(a, "--kv-size")) {
			if (!arg_int("serve", a, val, 0, 1 << 24, &v))
				return EXIT_USAGE;
			srv->sp.n_ctx = (int32_t)v;
		} else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
			if (!arg_int("serve", a, val, 1, 1 << 16, &v))
				return EXIT_USAGE;
			srv->sp.n_batch = (int32_t)v;
		} else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
			if (!arg_int("serve", a, val, 0, 512, &v))
				return EXIT_USAGE;
			srv->sp.n_threads = (int32_t)v;
		} else if (!strcmp(a, "--cache-type")) {
			if (strcmp(val, "f16") && strcmp(val, "f32") && strcmp(val, "q8_0"))
				return usage_error("serve", "--cache-type expects f16, f32 or q8_0, got '%s'", val);
			srv->sp.cache_type = !strcmp(val, "f16") ? HEARTH_TYPE_F16 : !strcmp(val, "f32") ? HEARTH_TYPE_F32 : HEARTH_TYPE_Q8_0;
		} else if (!strcmp(a, "--max-queue")) {
			if (!arg_int("serve", a, val, 1, 1 << 20, &v))
				return EXIT_USAGE;
			srv->sp.max_queue = (int32_t)v;
		} else if (!strcmp(a, "--api-key")) {
			if (o->n_keys == SRV_MAX_KEYS)
				return usage_error("serve", "at most %d API keys", SRV_MAX_KEYS);
			o->keys[o->n_keys++] = val;
		} else if (!strcmp(a, "--api-key-file")) {
			o->key_file = val;
		} else if (!strcmp(a, "--allowed-host")) {
			if (!add_name(srv->allowed_hosts, &srv->n_allowed_hosts, val))
				return usage_error("serve", "--allowed-host: at most %d non-empty names", SRV_MAX_NAMES);
		} else if (!strcmp(a, "--cors-origin")) {
			if (!add_name(srv->cors_origins, &srv->n_cors_origins, val))
				return usage_error("serve", "--cors-origin: at most %d non-empty origins", SRV_MAX_NAMES);
		} else if (!strcmp(a, "--ssl-cert")) {
			o->cert_file = val;
		} else if (!strcmp(a, "--ssl-key")) {
			o->key_pem_file = val;
		} else if (!strcmp(a, "--alias")) {
			srv->alias = val;
		} else if (!strcmp(a, "--chat-template")) {
			o->template_path = val;
		} else if (!strcmp(a, "--lora")) {
			char why[600];
			if (!adapters_flag(srv, val, why, sizeof why))
				return usage_error("serve", "%s", why);
		} else if (!strcmp(a, "--lora-dir")) {
			srv->lora_dir = val;
		} else if (!strcmp(a, "--control-vector")) {
			char why[160];
			if (!steer_flag(srv, val, why, sizeof why))
				return usage_error("serve", "%s", why);
		} else if (!strcmp(a, "--cache-budget")) {
			if (!arg_int("serve", a, val, 0, 1LL << 50, &v))
				return EXIT_USAGE;
			srv->cache_budget = (uint64_t)v;
		} else if (!strcmp(a, "--max-body")) {
			if (!arg_int("serve", a, val, 1024, 1LL << 31, &v))
				return EXIT_USAGE;
			srv->max_body = (size_t)v;
		} else if (!strcmp(a, "--max-body-total")) {
			if (!arg_int("serve", a, val, 1024, 1LL << 40, &v))
				return EXIT_USAGE;
			srv->max_body_total = (size_t)v;
		} else if (!strcmp(a, "--timeout")) {
			if (!arg_int("serve", a, val, 1, 86400, &v))
				return EXIT_USAGE;
			srv->timeout_s = (int)v;
		} else if (!strcmp(a, "--request-timeout")) {
			if (!arg_float("serve", a, val, 0, 86400 * 7, &f))
				return EXIT_USAGE;
			srv->request_timeout_s = f;
		} else if (!strcmp(a, "--max-connections")) {
			if (!arg_int("serve", a, val, 1, 1 << 16, &v))
				return EXIT_USAGE;
			srv->max_conns = (int)v;
		} else if (!strcmp(a, "--max-connections-per-ip")) {
			if (!arg_int("serve", a, val, 1, 1 << 16, &v))
				return EXIT_USAGE;
			srv->max_conns_per_addr = (int)v;
		} else {
			return usage_error("serve", "unknown option '%s'", a);
		}
	}
	return -1;
}

/* Keys, TLS files and limits from the flags; an exit code when it must stop (-1: go on). */
static int configure(struct server *srv, struct serve_opts *o)
{
	char why[160];
	if (!o->n_models && !o->models_dir)
		return usage_error("serve", "-m FILE (or -m NAME=FILE, or --models-dir DIR) is required");
	for (int i = 0; i < o->n_keys; i++)
		if (!keys_add(srv, o->keys[i], NULL, false, 0, 0, o->allow_weak, why, sizeof why))
			return usage_error("serve", "--api-key: %s", why);
	if (o->key_file && !keys_read_file(srv, o->key_file, o->allow_weak))
		return 1;
	if (!o->cert_file != !o->key_pem_file)
		return usage_error("serve", "--ssl-cert and --ssl-key go together");
	if (o->cert_file && (!(srv->tls_cert = read_pem("--ssl-cert", o->cert_file)) ||
			     !(srv->tls_key = read_pem("--ssl-key", o->key_pem_file))))
		return 1;
	if (o->template_path && !(o->template_src = cli_read_file(o->template_path, &o->template_len))) {
		fprintf(stderr, "hearth serve: --chat-template %s: %s\n", o->template_path, strerror(errno));
		return 1;
	}
	if (srv->max_conns_per_addr > srv->max_conns)
		srv->max_conns_per_addr = srv->max_conns;
	/* every connection is a descriptor (and a thread); keep some for the model and the rest */
	const int fds = fd_limit_raise();
	if (srv->max_conns > fds / 2 - 64) {
		int was = srv->max_conns;
		srv->max_conns = fds / 2 - 64 > 16 ? fds / 2 - 64 : 16;
		fprintf(stderr, "hearth serve: the descriptor limit (%d) allows %d connections, not %d\n", fds,
			srv->max_conns, was);
	}
	srv->check_host = true;
	for (int i = 0; i < srv->n_allowed_hosts; i++)
		if (!strcmp(srv->allowed_hosts[i], "*"))
			srv->check_host = false;
	if (srv->max_body_total < srv->max_body)
		srv->max_body_total = srv->max_body;
	return -1;
}

/* The one place where a -m value becomes a model file: a path as is, else a
 * stored model's name (hearth pull's store). */
static int model_file(const char *value, char *path, size_t size, struct hearth_err *err)
{
	return hearth_store_resolve(value, path, size, err);
}

/* The models of -m and --models-dir into the registry; an exit code when it must stop (-1: go on). */
static int register_models(struct server *srv, struct serve_opts *o)
{
	struct models *ms = &srv->models;
	struct hearth_err err = { 0 };
	char buf[4096], path[4096], why[400];
	const char *name, *file;
	ms->max_loaded = o->max_loaded;
	ms->idle_s = o->idle_unload > 0 ? o->idle_unload : INFINITY;
	ms->template_src = o->template_src;
	ms->template_len = o->template_len;
	int last_plain = -1; /* a plain -m FILE given again replaces the one before, as any flag does */
	for (int i = 0; i < o->n_models; i++)
		if (models_split_arg(o->models[i], buf, sizeof buf, &name, &file, why, sizeof why) && !name)
			last_plain = i;
	for (int i = 0; i < o->n_models; i++) {
		if (!models_split_arg(o->models[i], buf, sizeof buf, &name, &file, why, sizeof why))
			return usage_error("serve", "%s", why);
		if (!name && i != last_plain)
			continue;
		if (model_file(file, path, sizeof path, &err))
			return usage_error("serve", "%s", err.msg);
		if (!name) /* --alias, else its file name, as before */
			name = srv->alias ? srv->alias : base_name(file);
		if (models_add(ms, srv, name, path, &err)) {
			fprintf(stderr, "hearth serve: %s\n", err.msg);
			return err.code == HEARTH_EINVAL ? EXIT_USAGE : 1; /* a bad name; else the file, or memory */
		}
	}
	if (o->models_dir) {
		int n = models_add_dir(ms, srv, o->models_dir, &err);
		if (n < 0) {
			fprintf(stderr, "hearth serve: %s\n", err.msg);
			return 1;
		}
		fprintf(stderr, "hearth serve: --models-dir %s: %d model(s)\n", o->models_dir, n);
	}
	if (ms->n == 0)
		return usage_error("serve", "no model to serve (--models-dir %s holds no *.gguf file)", o->models_dir);
	return -1;
}

/* Says loudly what a server reachable from other machines lacks. */
static void warn_exposed(const struct server *srv)
{
	if (host_is_loopback(srv->host) || (srv->n_keys && srv->tls_cert))
		return;
	fprintf(stderr,
		"hearth serve: ************************************************************************\n"
		"hearth serve: WARNING: %s:%d is reachable from other machines%s%s.\n"
		"hearth serve: %s"
		"hearth serve: ************************************************************************\n",
		srv->host, srv->listener.port, srv->n_keys ? "" : " with NO API KEY: anyone who reaches it can use it",
		srv->tls_cert ? "" : (srv->n_keys ? " over plain HTTP: keys and prompts cross the network in clear" : ", over plain HTTP"),
		srv->n_keys ? "Give it --ssl-cert and --ssl-key, or bind --host 127.0.0.1 behind a TLS proxy.\n"
			    : "Give it --api-key-file (and --ssl-cert/--ssl-key), or bind --host 127.0.0.1.\n");
}

static void wait_for_signal_and_drain(struct server *srv, sigset_t *sigs)
{
	int sig;
	sigwait(sigs, &sig);
	fprintf(stderr, "hearth serve: %s: draining %d request(s)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT",
		atomic_load(&srv->in_flight));
	atomic_store(&srv->phase, SRV_DRAINING);
	while (atomic_load(&srv->in_flight) > 0) {
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* The saved-state store under HEARTH_HOME. Without one (an unwritable home)
 * the server still serves; /v1/cache answers 503. */
static void open_cache(struct server *srv)
{
	struct hearth_err err = { 0 };
	char home[2048];
	if (hearth_store_home(home, sizeof home, &err) ||
	    cache_store_open(&srv->cache, home, srv->cache_budget, &err))
		fprintf(stderr, "hearth serve: warning: no saved state (/v1/cache): %s\n", err.msg);
}

int cmd_serve(int argc, char **argv)
{
	struct server srv = { .host = "127.0.0.1", .port = 8080, .max_body = 8u << 20, .max_body_total = 256u << 20,
			      .timeout_s = 30, .request_timeout_s = 600, .max_conns = 1024, .max_conns_per_addr = 256,
			      .cache_budget = 4ull << 30 };
	struct serve_opts o = { 0 };
	struct usage_conf uc = { .retention_days = 90, .sample_s = 60 };
	struct hearth_err err = { 0 };
	char why[256];
	int rc = 1;

	srv.listener.fd = srv.listener.wake[0] = srv.listener.wake[1] = srv.listener.reserve = -1;
	srv.sp = hearth_sched_default_params();
	srv.usage_conf = &uc;
	o.max_loaded = 3;
	if (models_init(&srv.models)) {
		fprintf(stderr, "hearth serve: out of memory\n");
		return 1;
	}
	int stop = parse_flags(argc, argv, &srv, &o);
	if (stop < 0)
		stop = configure(&srv, &o);
	if (stop < 0)
		stop = register_models(&srv, &o);
	if (stop >= 0) {
		rc = stop;
		goto out_config;
	}

	/* signals go to sigwait below, not to whichever thread runs */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (conns_init(&srv.conns, srv.max_conns, srv.max_conns_per_addr, srv.timeout_s, srv.tls_cert != NULL) ||
	    models_start_reaper(&srv.models)) {
		fprintf(stderr, "hearth serve: out of memory\n");
		goto out;
	}
	open_cache(&srv);
	if (!usage_open(&srv))
		goto out;
	atomic_store(&srv.phase, SRV_LOADING);
	if (listener_open(&srv.listener, srv.host, srv.port, why, sizeof why)) {
		fprintf(stderr, "hearth serve: %s\n", why);
		goto out;
	}
	if (!http_start(&srv) || listener_start(&srv.listener, &srv)) {
		if (srv.mhd)
			fprintf(stderr, "hearth serve: cannot start the accept thread\n");
		goto out;
	}
	fprintf(stderr, "hearth serve: listening on %s://%s:%d (%s)\n", srv.tls_cert ? "https" : "http", srv.host,
		srv.listener.port, srv.n_keys ? "API key required" : "no API key");
	warn_exposed(&srv);
	if (srv.models.n == 1 && !o.models_dir) { /* one model: loaded now, as /health waits for it */
		struct served_model *sm;
		double load_s;
		if (models_acquire(&srv.models, NULL, 0, &sm, &load_s, &err))
			goto out;
		bool builtin = false;
		hearth_chat_template_src(sm->chat, &builtin);
		fprintf(stderr, "hearth serve: chat template: %s (%s answers)\n",
			o.template_src ? o.template_path : builtin ? "built-in ChatML (the model has none)" : "the model's",
			hearth_chat_format_name(sm->chat));
		fprintf(stderr, "hearth serve: %s ready as '%s' (%d parallel, %d tokens per request)\n", base_name(sm->path),
			sm->name, sm->sp.n_parallel, sm->sp.n_ctx_seq);
		models_release(&srv.models, sm, -1);
	} else {
		fprintf(stderr, "hearth serve: ready: %d models, loaded on first use (default '%s'; --max-loaded %d%s)\n",
			srv.models.n, srv.models.m[0]->name, srv.models.max_loaded, srv.models.max_loaded ? "" : ": no limit");
	}
	atomic_store(&srv.phase, SRV_READY);
	wait_for_signal_and_drain(&srv, &sigs);
	rc = 0;
out:
	listener_close(&srv.listener);
	http_stop(&srv);
	conns_free(&srv.conns);
	cache_store_close(srv.cache);
	usage_close(&srv);
	fprintf(stderr, "hearth serve: stopped\n");
out_config:
	models_free(&srv.models);
	for (int i = 0; i < srv.n_keys; i++)
		free(srv.keys[i]);
	free(srv.tls_cert);
	free(srv.tls_key);
	free(o.template_src);
	return rc;
}
