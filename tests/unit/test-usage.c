/* test-usage.c - usage per key (server/usage.h): the key file's lines, the
 * SQLite record (round trip, retention, a writer killed with SIGKILL mid
 * stream loses no committed row), the OpenAI-shaped bucket query, price
 * files and the quotas (429 exactly at the limit). */
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../server/usage.h"
#include "../harness.h"

static void free_keys(struct server *srv)
{
	for (int i = 0; i < srv->n_keys; i++)
		free(srv->keys[i]);
	srv->n_keys = 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	T_TRUE(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* keys_read_file on text; what it printed to stderr into why (NUL-terminated). */
static bool read_keys_text(struct server *srv, const char *text, char *why, size_t size)
{
	const char *path = tmp_path("keys.txt"), *errp = tmp_path("keys.err");
	write_file(path, text);
	fflush(stderr);
	int saved = dup(2), fd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
	bool ok = keys_read_file(srv, path, false);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	FILE *f = fopen(errp, "r");
	size_t n = f ? fread(why, 1, size - 1, f) : 0;
	why[n] = 0;
	if (f)
		fclose(f);
	return ok;
}

void test_usage_keys(void)
{
	struct key_line kl;
	char why[200], name[KEY_NAME_MAX];
	T_TRUE(keys_parse_line("  # a comment\n", &kl, why, sizeof why) && kl.blank);
	T_TRUE(keys_parse_line("\r\n", &kl, why, sizeof why) && kl.blank);
	T_TRUE(keys_parse_line("sk-bare-key-0123456789\n", &kl, why, sizeof why) && !kl.blank);
	T_STR_EQ(kl.key, "sk-bare-key-0123456789");
	T_STR_EQ(kl.name, "");
	T_TRUE(keys_parse_line("alice\tsk-alice-0123456789 \n", &kl, why, sizeof why));
	T_STR_EQ(kl.name, "alice");
	T_STR_EQ(kl.key, "sk-alice-0123456789");
	T_TRUE(!kl.admin && kl.rpm == 0 && kl.tpd == 0);
	T_TRUE(keys_parse_line("ops sk-ops-0123456789 admin rpm=60 tpd=1000", &kl, why, sizeof why));
	T_TRUE(kl.admin);
	T_EQ_I64(kl.rpm, 60);
	T_EQ_I64(kl.tpd, 1000);
	/* malformed lines, each named */
	T_TRUE(!keys_parse_line("-bad sk-0123456789abcdef", &kl, why, sizeof why) && strstr(why, "not a key name"));
	T_TRUE(!keys_parse_line("bob sk-0123456789abcdef root", &kl, why, sizeof why) && strstr(why, "'root'"));
	T_TRUE(!keys_parse_line("bob sk-0123456789abcdef rpm=-1", &kl, why, sizeof why) && strstr(why, "rpm"));
	T_TRUE(!keys_parse_line("bob sk-0123456789abcdef rpm=1x", &kl, why, sizeof why));
	T_TRUE(!keys_parse_line("bob sk-0123456789abcdef tpd=", &kl, why, sizeof why) && strstr(why, "tpd"));
	T_TRUE(!keys_parse_line("bob sk-0123456789abcdef rpm=100001", &kl, why, sizeof why));
	/* a bare key's name: its hash's prefix, stable, not the key */
	keys_hash_name("sk-bare-key-0123456789", name);
	T_TRUE(!strncmp(name, "key-", 4) && strlen(name) == 12 && !strstr(name, "bare"));
	char again[KEY_NAME_MAX];
	keys_hash_name("sk-bare-key-0123456789", again);
	T_STR_EQ(name, again);

	struct server srv = { 0 };
	T_TRUE(read_keys_text(&srv, "\xef\xbb\xbf# team keys\nalice sk-alice-0123456789\nops sk-ops-0123456789 admin\n"
				    "\nsk-bare-key-0123456789\n", why, sizeof why));
	T_EQ_I64(srv.n_keys, 3);
	T_STR_EQ(srv.key_info[0].name, "alice");
	T_TRUE(!srv.key_info[0].admin && srv.key_info[1].admin);
	T_STR_EQ(srv.key_info[2].name, name);
	T_STR_EQ(keys_name(&srv, srv.keys[1]), "ops");
	T_TRUE(keys_is_admin(&srv, srv.keys[1]) && !keys_is_admin(&srv, srv.keys[0]) && !keys_is_admin(&srv, NULL));
	T_EQ_I64(keys_index(&srv, "sk-alice-0123456789"), -1); /* a pointer into srv's keys, not a copy */
	free_keys(&srv);
	/* bad lines are named by number */
	T_TRUE(!read_keys_text(&srv, "alice sk-alice-0123456789\n# x\nbob sk-bob-0123456789 superuser\n", why, sizeof why));
	T_TRUE(strstr(why, "line 3") && strstr(why, "superuser"));
	free_keys(&srv);
	T_TRUE(!read_keys_text(&srv, "alice sk-alice-0123456789\nalice sk-other-0123456789\n", why, sizeof why));
	T_TRUE(strstr(why, "line 2") && strstr(why, "taken"));
	free_keys(&srv);
	T_TRUE(!read_keys_text(&srv, "alice short\n", why, sizeof why));
	T_TRUE(strstr(why, "line 1") && strstr(why, "16"));
	free_keys(&srv);
	T_TRUE(!read_keys_text(&srv, "# only comments\n\n", why, sizeof why));
	T_TRUE(strstr(why, "no API key") != NULL);
	free_keys(&srv);
	T_TRUE(!read_keys_text(&srv, "sk-same-key-0123456789\nbob sk-same-key-0123456789\n", why, sizeof why));
	T_TRUE(strstr(why, "line 2") && strstr(why, "twice"));
	free_keys(&srv);
}

static struct usage_rec rec(int64_t t, const char *key, const char *model, int64_t prompt, int64_t cached,
			    int64_t completion)
{
	struct usage_rec r = { .t = t, .prompt = prompt, .cached = cached, .completion = completion, .queue_s = 0.01,
			       .compute_s = 0.5, .cpu_s = 1.0, .ttft_s = 0.1, .itl_s = 0.02, .status = 200 };
	snprintf(r.key, sizeof r.key, "%s", key);
	snprintf(r.model, sizeof r.model, "%s", model);
	snprintf(r.route, sizeof r.route, "chat.completions");
	snprintf(r.finish, sizeof r.finish, "stop");
	return r;
}

static int64_t count_rows(const char *path, const char *where)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	char sql[256];
	int64_t n = -1;
	snprintf(sql, sizeof sql, "SELECT count(*) FROM requests %s", where);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			n = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
	return n;
}

void test_usage_store(void)
{
	const char *path = tmp_path("usage.db");
	struct usage_store *st;
	struct hearth_err err = { 0 };
	const int64_t now = (int64_t)time(NULL);
	T_OK(usage_store_open(&st, path, 0, 64, &err), err);
	if (!st)
		return;
	for (int i = 0; i < 50; i++) {
		struct usage_rec r = rec(now - 100 * 86400 + i, "old", "m", 1, 0, 1);
		T_TRUE(usage_store_put(st, &r));
	}
	usage_store_flush(st);
	for (int i = 0; i < 30; i++) {
		struct usage_rec r = rec(now - i, i % 2 ? "alice" : "bob", "m", 10, 2, 5);
		T_TRUE(usage_store_put(st, &r));
	}
	usage_store_flush(st);
	T_EQ_I64(usage_store_tokens_since(st, "alice", now - 3600), 15 * 15);
	T_EQ_I64(usage_store_tokens_since(st, "bob", now - 3600), 15 * 15);
	T_EQ_I64(usage_store_tokens_since(st, "bob", now + 1), 0);
	/* retention: in batches of 7, only the old rows go */
	T_EQ_I64(usage_store_prune(st, now - 90 * 86400, 7), 50);
	T_EQ_I64(usage_store_prune(st, now - 90 * 86400, 7), 0);
	usage_store_close(st);
	T_EQ_I64(count_rows(path, ""), 30);
	T_EQ_I64(count_rows(path, "WHERE key = 'alice' AND prompt = 10 AND cached = 2 AND completion = 5 AND "
				 "finish = 'stop' AND route = 'chat.completions' AND status = 200 AND ttft_s > 0.09"), 15);
	/* reopened, with retention: the writer deletes old rows at start */
	T_OK(usage_store_open(&st, path, 1, 64, &err), err);
	struct usage_rec r = rec(now - 3 * 86400, "carol", "m", 1, 0, 0);
	T_TRUE(usage_store_put(st, &r));
	usage_store_flush(st);
	for (int i = 0; i < 100 && count_rows(path, "WHERE key = 'carol'") != 0; i++)
		usleep(20000); /* the writer prunes after its first batch */
	T_EQ_I64(count_rows(path, "WHERE key = 'carol'"), 0);
	usage_store_close(st);
	T_EQ_I64(count_rows(path, ""), 30);
}

/* A full queue drops and counts instead of waiting. */
void test_usage_store_full(void)
{
	struct usage_store *st;
	struct hearth_err err = { 0 };
	T_OK(usage_store_open(&st, tmp_path("full.db"), 0, 4, &err), err);
	if (!st)
		return;
	int put = 0;
	for (int i = 0; i < 20000; i++) {
		struct usage_rec r = rec(1000 + i, "k", "m", 1, 0, 1);
		put += usage_store_put(st, &r);
	}
	usage_store_flush(st);
	T_EQ_I64((int64_t)usage_store_dropped(st), 20000 - put);
	T_TRUE(put >= 4);
	usage_store_close(st);
	T_EQ_I64(count_rows(tmp_path("full.db"), ""), put);
}

/* The child writes rows 0, 1, 2, ... flushing after each and telling the
 * parent the count committed; the parent kills it with SIGKILL mid stream:
 * every row it was told of is in the database, with no gap. */
void test_usage_store_kill9(void)
{
	const char *path = tmp_path("kill.db");
	int pfd[2];
	T_TRUE(pipe(pfd) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct usage_store *st;
		struct hearth_err err = { 0 };
		close(pfd[0]);
		if (usage_store_open(&st, path, 0, 1024, &err))
			_exit(3);
		for (int64_t i = 0;; i++) {
			struct usage_rec r = rec(i, "k", "m", i, 0, 0);
			usage_store_put(st, &r);
			if (i % 3 == 2) { /* a few rows per transaction */
				usage_store_flush(st);
				int64_t n = i + 1;
				if (write(pfd[1], &n, sizeof n) != sizeof n)
					_exit(4);
			}
		}
	}
	close(pfd[1]);
	int64_t told = 0, n;
	while (told < 600 && read(pfd[0], &n, sizeof n) == sizeof n)
		told = n;
	kill(pid, SIGKILL); /* mid stream: it keeps writing until here */
	int status;
	waitpid(pid, &status, 0);
	while (read(pfd[0], &n, sizeof n) == sizeof n)
		told = n; /* what it committed and said before it died */
	close(pfd[0]);
	T_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	T_TRUE(told >= 600);
	struct usage_store *st;
	struct hearth_err err = { 0 };
	T_OK(usage_store_open(&st, path, 0, 16, &err), err); /* recovers the log */
	usage_store_close(st);
	const int64_t rows = count_rows(path, "");
	T_TRUE(rows >= told);
	char where[128];
	snprintf(where, sizeof where, "WHERE prompt < %lld", (long long)told);
	T_EQ_I64(count_rows(path, where), told);                       /* every told row, once */
	T_EQ_I64(count_rows(path, "WHERE prompt = t"), rows);          /* no torn row */
	snprintf(where, sizeof where, "WHERE prompt >= %lld", (long long)rows);
	T_EQ_I64(count_rows(path, where), 0);                          /* no gap */
}

void test_usage_query(void)
{
	struct usage_store *st;
	struct hearth_err err = { 0 };
	T_OK(usage_store_open(&st, tmp_path("q.db"), 0, 256, &err), err);
	if (!st)
		return;
	const int64_t t0 = 1700000040; /* a minute boundary is 1700000040 (divisible by 60) */
	struct usage_rec rs[] = {
		rec(t0 + 1, "alice", "m1", 10, 4, 3),  rec(t0 + 59, "alice", "m2", 20, 0, 7),
		rec(t0 + 61, "bob", "m1", 5, 0, 1),    rec(t0 + 130, "alice", "m1", 1, 1, 1),
		rec(t0 - 1, "alice", "m1", 999, 0, 0), /* before start_time */
	};
	for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
		T_TRUE(usage_store_put(st, &rs[i]));
	usage_store_flush(st);
	struct usage_query q = { .start = t0, .end = t0 + 180, .width = 60, .limit = 60 };
	json_t *j = usage_query_completions(st, &q, &err);
	T_TRUE(j != NULL);
	json_t *data = json_object_get(j, "data");
	T_STR_EQ(json_string_value(json_object_get(j, "object")), "page");
	T_EQ_I64(json_array_size(data), 3);
	T_TRUE(json_is_false(json_object_get(j, "has_more")) && json_is_null(json_object_get(j, "next_page")));
	json_t *b0 = json_array_get(data, 0), *r0 = json_array_get(json_object_get(b0, "results"), 0);
	T_EQ_I64(json_integer_value(json_object_get(b0, "start_time")), t0);
	T_EQ_I64(json_integer_value(json_object_get(b0, "end_time")), t0 + 60);
	T_STR_EQ(json_string_value(json_object_get(b0, "object")), "bucket");
	T_EQ_I64(json_integer_value(json_object_get(r0, "input_tokens")), 30);
	T_EQ_I64(json_integer_value(json_object_get(r0, "input_cached_tokens")), 4);
	T_EQ_I64(json_integer_value(json_object_get(r0, "output_tokens")), 10);
	T_EQ_I64(json_integer_value(json_object_get(r0, "num_model_requests")), 2);
	T_NEAR(json_real_value(json_object_get(r0, "cpu_seconds")), 2.0, 1e-9);
	T_TRUE(json_is_null(json_object_get(r0, "api_key_id")) && json_is_null(json_object_get(r0, "model")));
	json_decref(j);
	/* grouped by key and model, paged 2 buckets at a time */
	q.by_key = q.by_model = true;
	q.limit = 2;
	j = usage_query_completions(st, &q, &err);
	data = json_object_get(j, "data");
	T_EQ_I64(json_array_size(data), 2);
	json_t *res = json_object_get(json_array_get(data, 0), "results");
	T_EQ_I64(json_array_size(res), 2);
	T_STR_EQ(json_string_value(json_object_get(json_array_get(res, 0), "api_key_id")), "alice");
	T_STR_EQ(json_string_value(json_object_get(json_array_get(res, 1), "model")), "m2");
	T_TRUE(json_is_true(json_object_get(j, "has_more")));
	const char *next = json_string_value(json_object_get(j, "next_page"));
	T_TRUE(next && !strncmp(next, "page_", 5));
	q.page = next ? strtoll(next + 5, NULL, 10) : 0;
	json_decref(j);
	j = usage_query_completions(st, &q, &err);
	data = json_object_get(j, "data");
	T_EQ_I64(json_array_size(data), 1);
	T_EQ_I64(json_integer_value(json_object_get(json_array_get(data, 0), "start_time")), t0 + 120);
	T_TRUE(json_is_false(json_object_get(j, "has_more")));
	json_decref(j);
	/* one key only (what a non-admin key sees) */
	q.page = 0;
	q.limit = 60;
	q.only_key = "bob";
	j = usage_query_completions(st, &q, &err);
	data = json_object_get(j, "data");
	T_EQ_I64(json_array_size(json_object_get(json_array_get(data, 0), "results")), 0);
	res = json_object_get(json_array_get(data, 1), "results");
	T_EQ_I64(json_array_size(res), 1);
	T_STR_EQ(json_string_value(json_object_get(json_array_get(res, 0), "api_key_id")), "bob");
	json_decref(j);
	/* latency percentiles over the same buckets */
	q.only_key = NULL;
	j = usage_query_latency(st, &q, &err);
	data = json_object_get(j, "data");
	T_EQ_I64(json_array_size(data), 3);
	T_EQ_I64(json_integer_value(json_object_get(json_array_get(data, 0), "requests")), 2);
	T_NEAR(json_real_value(json_object_get(json_object_get(json_array_get(data, 0), "ttft_s"), "p50")), 0.1, 1e-9);
	json_decref(j);
	usage_store_close(st);
}

void test_usage_price(void)
{
	struct price_list pl;
	char why[200];
	const char *text = "# model input cached output\n"
			   "m1   3.00  1.50  15.00\n"
			   "\t*  0.15  -     0.60   \r\n";
	T_TRUE(price_parse(text, strlen(text), &pl, why, sizeof why));
	T_EQ_I64(pl.n, 2);
	const struct price *p = price_find(&pl, "m1");
	T_TRUE(p && !strcmp(p->model, "m1"));
	/* 1M prompt of which 400k cached, 100k out: 0.6 x 3 + 0.4 x 1.5 + 0.1 x 15 */
	T_NEAR(price_cost(p, 1000000, 400000, 100000), 1.8 + 0.6 + 1.5, 1e-9);
	p = price_find(&pl, "other");
	T_TRUE(p && !strcmp(p->model, "*"));
	T_NEAR(p->cached, 0.15, 1e-12); /* "-": as input */
	static const char *const bad[][2] = {
		{ "m1 1 2\n", "line 1" },            { "m1 1 2 3 4\n", "line 1" },  { "\nm1 1 x 3\n", "line 2" },
		{ "m1 -1 0 0\n", "INPUT" },          { "m1 1 1 1\nm1 2 2 2\n", "already" }, { "m1 nan 1 1", "INPUT" },
		{ "../x 1 1 1\n", "model name" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		bool ok = price_parse(bad[i][0], strlen(bad[i][0]), &pl, why, sizeof why);
		T_TRUE(!ok);
		if (!ok && !strstr(why, bad[i][1]))
			T_FAIL("price '%s': message '%s' lacks '%s'", bad[i][0], why, bad[i][1]);
	}
	T_TRUE(price_parse("", 0, &pl, why, sizeof why) && pl.n == 0);
	T_TRUE(price_find(&pl, "m1") == NULL);
}

void test_usage_quota(void)
{
	struct quota *q;
	int retry = 0;
	const char *which = NULL;
	T_EQ_I64(quota_new(&q, 2), 0);
	if (!q)
		return;
	const double t = 1700000000.5;
	/* rpm 3: three admitted, the fourth refused until the first is a minute old */
	for (int i = 0; i < 3; i++)
		T_TRUE(quota_admit(q, 0, 3, 0, t + i, NULL, "a", &retry, &which));
	T_TRUE(!quota_admit(q, 0, 3, 0, t + 10, NULL, "a", &retry, &which));
	T_STR_EQ(which, "rpm");
	T_EQ_I64(retry, 50);
	T_TRUE(quota_admit(q, 1, 3, 0, t + 10, NULL, "b", &retry, &which)); /* another key's own window */
	T_TRUE(!quota_admit(q, 0, 3, 0, t + 59.9, NULL, "a", &retry, &which));
	T_TRUE(quota_admit(q, 0, 3, 0, t + 60.0, NULL, "a", &retry, &which));
	T_TRUE(!quota_admit(q, 0, 3, 0, t + 60.5, NULL, "a", &retry, &which));
	/* tpd 100: admitted while the day's total is under it */
	quota_spent(q, 1, 99, t, NULL, "b");
	T_TRUE(quota_admit(q, 1, 0, 100, t, NULL, "b", &retry, &which));
	quota_spent(q, 1, 1, t, NULL, "b");
	T_TRUE(!quota_admit(q, 1, 0, 100, t, NULL, "b", &retry, &which));
	T_STR_EQ(which, "tpd");
	const int64_t midnight = ((int64_t)t / 86400 + 1) * 86400;
	T_EQ_I64(retry, midnight - (int64_t)t);
	T_TRUE(quota_admit(q, 1, 0, 100, (double)midnight, NULL, "b", &retry, &which)); /* a new day */
	/* no keys: the last slot */
	T_TRUE(quota_admit(q, -1, 1, 0, t, NULL, "", &retry, &which));
	T_TRUE(!quota_admit(q, -1, 1, 0, t + 1, NULL, "", &retry, &which));
	quota_free(q);
}
