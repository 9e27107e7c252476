/* test-attribute-http.c - POST /v1/attribute through the server's request
 * path (no sockets) on tiny-qwen2: its scores and log-probability are the
 * library's hearth_attribute on the same ids (gradient x input and
 * integrated gradients), and each bad field is a 400 naming it. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../server/server.h"
#include "../harness.h"

#define KEY "unit-test-key-attribute-0123"
#define CTX 128

static bool attr_srv_open(struct server *srv)
{
	struct hearth_err err = { 0 };
	memset(srv, 0, sizeof *srv);
	srv->host = "127.0.0.1";
	srv->alias = "tiny";
	srv->model_path = fixture("models/tiny-qwen2.f32.gguf");
	srv->max_body = 1 << 16;
	srv->timeout_s = 30;
	srv->request_timeout_s = 60;
	srv->keys[srv->n_keys++] = strdup(KEY);
	srv->sp = hearth_sched_default_params();
	srv->sp.n_parallel = 1;
	srv->sp.n_ctx_seq = CTX;
	srv->sp.n_threads = 1;
	if (!srv->keys[0] || conns_init(&srv->conns, 8, 8, 30, false))
		return false;
	if (server_load(srv, NULL, 0, &err)) {
		T_FAIL("%s", err.msg);
		return false;
	}
	atomic_store(&srv->phase, SRV_READY);
	return true;
}

/* Posts body to /v1/attribute (with the key when key); the reply's JSON
 * (NULL when none) and *status. */
static json_t *attr_post_fd(struct server *srv, const char *body, bool key, int fd, int *status)
{
	struct http_request rq = { .method = "POST", .url = "/v1/attribute", .content_type = "application/json",
				   .authorization = key ? "Bearer " KEY : NULL, .fd = fd, .body = body,
				   .body_len = strlen(body), .has_length = true, .content_length = strlen(body) };
	const struct route *rt;
	struct reply rp = { 0 };
	if (!request_head(srv, &rq, &rt, &rp))
		request_answer(srv, rt, &rq, &rp);
	*status = rp.status;
	json_t *j = rp.body ? json_loadb(rp.body, rp.len, 0, NULL) : NULL;
	free(rp.body);
	return j;
}

static json_t *attr_post(struct server *srv, const char *body, bool key, int *status)
{
	return attr_post_fd(srv, body, key, -1, status);
}

/* The reply to ids (n_p of prompt, then n_c of completion) with steps
 * (0: gradient x input) against hearth_attribute's on the same ids. */
static void check_same(struct server *srv, const int32_t *ids, int32_t n_p, int32_t n_c, int32_t steps)
{
	char body[1024];
	size_t at = (size_t)snprintf(body, sizeof body, "{\"prompt\":[");
	for (int32_t i = 0; i < n_p + n_c; i++)
		at += (size_t)snprintf(body + at, sizeof body - at, "%s%d", i == n_p ? "],\"completion\":[" : i ? "," : "",
				       ids[i]);
	if (steps)
		snprintf(body + at, sizeof body - at, "],\"method\":\"integrated_gradients\",\"steps\":%d}", steps);
	else
		snprintf(body + at, sizeof body - at, "]}");
	int status;
	json_t *j = attr_post(srv, body, true, &status);
	T_EQ_I64(status, 200);
	json_t *toks = json_object_get(j, "tokens");
	T_EQ_I64((int64_t)json_array_size(toks), n_p);
	T_STR_EQ(json_string_value(json_object_get(j, "method")), steps ? "integrated_gradients" : "gradient_x_input");
	T_EQ_I64(json_integer_value(json_object_get(json_object_get(j, "usage"), "total_tokens")), n_p + n_c);

	struct hearth_trainer_params tp = hearth_trainer_default_params();
	struct hearth_trainer *t = NULL;
	struct hearth_err err = { 0 };
	float want[64];
	double lp = 0;
	tp.targets = 0;
	tp.n_ctx = n_p + n_c - 1;
	tp.n_threads = 1;
	T_OK(hearth_trainer_new(&t, srv->models.m[0]->model, &tp, &err), err);
	T_OK(hearth_attribute(t, ids, n_p, ids + n_p, n_c, steps, want, &lp, &err), err);
	hearth_trainer_free(t);
	double max_s = 0;
	for (int32_t i = 0; i < n_p; i++)
		max_s = fmax(max_s, fabs(want[i]));
	T_TRUE(max_s > 0);
	for (int32_t i = 0; i < n_p && i < (int32_t)json_array_size(toks); i++) {
		json_t *e = json_array_get(toks, (size_t)i);
		T_EQ_I64(json_integer_value(json_object_get(e, "id")), ids[i]);
		T_NEAR(json_real_value(json_object_get(e, "score")), want[i], 1e-6 * max_s);
	}
	T_NEAR(json_real_value(json_object_get(j, "completion_logprob")), lp, 1e-9 * fabs(lp));
	json_decref(j);
}

/* The status and error param of body's reply. */
static void check_error(struct server *srv, const char *body, int want, const char *param, const char *code)
{
	int status;
	json_t *j = attr_post(srv, body, true, &status);
	json_t *e = json_object_get(j, "error");
	T_EQ_I64(status, want);
	if (param)
		T_STR_EQ(json_string_value(json_object_get(e, "param")), param);
	if (code)
		T_STR_EQ(json_string_value(json_object_get(e, "code")), code);
	json_decref(j);
}

void test_http_attribute(void)
{
	struct server srv;
	if (!attr_srv_open(&srv))
		return;
	const int32_t ids[] = { 1925, 346, 705, 263, 264, 882, 1052, 572, 264, 2000, 17 };
	check_same(&srv, ids, 8, 3, 0);
	check_same(&srv, ids, 8, 3, 3);
	check_same(&srv, ids, 1, 1, 0);

	check_error(&srv, "{\"completion\":\" a\"}", 400, "prompt", "missing_required_parameter");
	check_error(&srv, "{\"prompt\":\"Once\"}", 400, "completion", "missing_required_parameter");
	check_error(&srv, "{\"prompt\":\"Once\",\"completion\":[]}", 400, "completion", "invalid_value");
	check_error(&srv, "{\"prompt\":[1],\"completion\":[99999]}", 400, "completion", "invalid_value");
	check_error(&srv, "{\"prompt\":\"Once\",\"completion\":\" a\",\"method\":\"saliency\"}", 400, "method", NULL);
	check_error(&srv, "{\"prompt\":\"Once\",\"completion\":\" a\",\"steps\":4}", 400, "steps", NULL);
	check_error(&srv, "{\"prompt\":\"Once\",\"completion\":\" a\",\"method\":\"integrated_gradients\",\"steps\":0}", 400,
		    "steps", NULL);
	check_error(&srv, "{\"prompt\":\"Once\",\"completion\":\" a\",\"method\":\"integrated_gradients\",\"steps\":65}",
		    400, "steps", NULL);
	check_error(&srv, "{\"prompt\":\"Once\",\"messages\":[],\"completion\":\" a\"}", 400, "messages", NULL);
	/* CTX - 1 tokens pass (as /v1/score), one more does not */
	char body[2048];
	for (int extra = 0; extra <= 1; extra++) {
		size_t at = (size_t)snprintf(body, sizeof body, "{\"prompt\":[");
		for (int i = 0; i < CTX - 3 + extra; i++)
			at += (size_t)snprintf(body + at, sizeof body - at, "%s%d", i ? "," : "", 100 + i);
		snprintf(body + at, sizeof body - at, "],\"completion\":[5,6]}");
		check_error(&srv, body, extra ? 400 : 200, extra ? "completion" : NULL,
			    extra ? "context_length_exceeded" : NULL);
	}
	int status;
	json_decref(attr_post(&srv, "{\"prompt\":\"Once\",\"completion\":\" a\"}", false, &status));
	T_EQ_I64(status, 401);
	server_unload(&srv);
	conns_free(&srv.conns);
	free(srv.keys[0]);
}

/* An attribution stops inside its passes when the client leaves (400
 * client_closed) or the request's deadline passes (504), and the model's
 * turn is given back: the next attribution runs. */
void test_http_attribute_stops(void)
{
	struct server srv;
	if (!attr_srv_open(&srv))
		return;
	const char *body = "{\"prompt\":\"Once upon a time\",\"completion\":\" there\","
			   "\"method\":\"integrated_gradients\",\"steps\":64}";
	int sv[2], status;
	T_TRUE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	close(sv[1]); /* the client is gone before the first layer */
	json_t *j = attr_post_fd(&srv, body, true, sv[0], &status);
	close(sv[0]);
	T_EQ_I64(status, 400);
	T_STR_EQ(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "client_closed");
	json_decref(j);

	srv.request_timeout_s = 1e-6; /* past by the first layer */
	j = attr_post(&srv, body, true, &status);
	T_EQ_I64(status, 504);
	T_STR_EQ(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "timeout");
	json_decref(j);

	srv.request_timeout_s = 60;
	json_decref(attr_post(&srv, body, true, &status));
	T_EQ_I64(status, 200);
	server_unload(&srv);
	conns_free(&srv.conns);
	free(srv.keys[0]);
}
