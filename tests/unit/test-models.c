/* test-models.c - the server's model registry (server/models.c): names and
 * -m values, registration (files, folders that keep to themselves), loading
 * on first use, holds that keep a model loaded, --max-loaded's least recently
 * used unload, the idle reaper and Ollama's keep_alive, and a failed load
 * answered without retrying at once. Real tiny models: a load takes ms. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../server/server.h"
#include "../harness.h"

static void test_names(void)
{
	char buf[256], why[300];
	const char *name, *file;
	T_TRUE(models_name_ok("qwen2.5:0.5b"));
	T_TRUE(models_name_ok("library/llama3+x_y-1"));
	T_TRUE(!models_name_ok(""));
	T_TRUE(!models_name_ok(".hidden"));
	T_TRUE(!models_name_ok("/abs"));
	T_TRUE(!models_name_ok("-flag"));
	T_TRUE(!models_name_ok("a/../b"));
	T_TRUE(!models_name_ok("with space"));
	T_TRUE(!models_name_ok("quo\"te"));
	memset(buf, 'a', 200);
	buf[MODEL_NAME_MAX + 1] = 0;
	T_TRUE(!models_name_ok(buf));
	buf[MODEL_NAME_MAX] = 0;
	T_TRUE(models_name_ok(buf));

	T_TRUE(models_split_arg("x/model.gguf", buf, sizeof buf, &name, &file, why, sizeof why));
	T_TRUE(name == NULL);
	T_STR_EQ(file, "x/model.gguf");
	T_TRUE(models_split_arg("qwen=dir/a=b.gguf", buf, sizeof buf, &name, &file, why, sizeof why));
	T_STR_EQ(name, "qwen");
	T_STR_EQ(file, "dir/a=b.gguf");
	T_TRUE(!models_split_arg("bad name=x.gguf", buf, sizeof buf, &name, &file, why, sizeof why));
	T_TRUE(strstr(why, "bad name") != NULL);
	T_TRUE(!models_split_arg("q=", buf, sizeof buf, &name, &file, why, sizeof why));
	T_TRUE(!models_split_arg("", buf, sizeof buf, &name, &file, why, sizeof why));
	/* an existing file whose name holds '=' is a file */
	char path[] = "/tmp/hearth-models-a=b-XXXXXX";
	int fd = mkstemp(path);
	T_TRUE(fd >= 0);
	close(fd);
	T_TRUE(models_split_arg(path, buf, sizeof buf, &name, &file, why, sizeof why));
	T_TRUE(name == NULL);
	unlink(path);
}

static void srv_init(struct server *srv)
{
	memset(srv, 0, sizeof *srv);
	srv->sp = hearth_sched_default_params();
	srv->sp.n_parallel = 1;
	srv->sp.n_ctx_seq = 64;
	srv->sp.n_threads = 1;
	T_EQ_I64(models_init(&srv->models), 0);
}

static int state_of(struct models *ms, struct served_model *sm)
{
	struct model_view v;
	models_view(ms, sm, &v);
	return v.state;
}

static void test_register(void)
{
	struct server srv;
	struct hearth_err err = { 0 };
	srv_init(&srv);
	struct models *ms = &srv.models;
	T_OK(models_add(ms, &srv, "a", fixture("models/tiny-llama3.f32.gguf"), &err), err);
	T_EQ_I64(models_add(ms, &srv, "a", fixture("models/tiny-qwen2.f32.gguf"), &err), HEARTH_EINVAL);
	T_TRUE(strstr(err.msg, "twice") != NULL);
	T_EQ_I64(models_add(ms, &srv, "b", "/nonexistent/x.gguf", &err), HEARTH_EIO);
	T_EQ_I64(models_add(ms, &srv, "b", "/tmp", &err), HEARTH_EIO);
	T_TRUE(strstr(err.msg, "not a regular file") != NULL);
	T_EQ_I64(models_add(ms, &srv, "../b", fixture("models/tiny-qwen2.f32.gguf"), &err), HEARTH_EINVAL);
	T_EQ_I64(ms->n, 1);
	T_TRUE(models_find(ms, "a") == ms->m[0]);
	T_TRUE(models_find(ms, "a:latest") == ms->m[0]);
	T_TRUE(models_find(ms, "b") == NULL);
	T_TRUE(models_find(ms, ":latest") == NULL);
	models_free(ms);

	/* a folder: *.gguf inside it, sorted; links out of it, odd names and other files skipped */
	char dir[] = "/tmp/hearth-models-XXXXXX", p[512];
	T_TRUE(mkdtemp(dir) != NULL);
	const char *real = fixture("models/tiny-qwen2.f32.gguf");
	snprintf(p, sizeof p, "%s/zeta.gguf", dir);
	T_EQ_I64(symlink(real, p), 0); /* leads outside: skipped */
	snprintf(p, sizeof p, "%s/bad name.gguf", dir);
	FILE *f = fopen(p, "w");
	T_TRUE(f != NULL);
	if (f)
		fclose(f);
	snprintf(p, sizeof p, "%s/beta.gguf", dir);
	f = fopen(p, "w");
	if (f)
		fclose(f);
	snprintf(p, sizeof p, "%s/alpha.gguf", dir);
	f = fopen(p, "w");
	if (f)
		fclose(f);
	snprintf(p, sizeof p, "%s/inner.gguf", dir); /* a link that stays inside: served */
	T_EQ_I64(symlink("alpha.gguf", p), 0);
	snprintf(p, sizeof p, "%s/notes.txt", dir);
	f = fopen(p, "w");
	if (f)
		fclose(f);
	srv_init(&srv);
	T_EQ_I64(models_add_dir(ms, &srv, dir, &err), 3);
	T_EQ_I64(ms->n, 3);
	if (ms->n == 3) {
		T_STR_EQ(ms->m[0]->name, "alpha");
		T_STR_EQ(ms->m[1]->name, "beta");
		T_STR_EQ(ms->m[2]->name, "inner");
	}
	models_free(ms);
	T_EQ_I64(models_add_dir(ms, &srv, "/nonexistent-dir", &err), HEARTH_EIO);
	const char *names[] = { "zeta.gguf", "bad name.gguf", "beta.gguf", "alpha.gguf", "inner.gguf", "notes.txt" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

static void test_lifecycle(void)
{
	struct server srv;
	struct hearth_err err = { 0 };
	struct served_model *a, *b, *x;
	double load_s;
	srv_init(&srv);
	struct models *ms = &srv.models;
	ms->max_loaded = 1;
	T_OK(models_add(ms, &srv, "a", fixture("models/tiny-llama3.f32.gguf"), &err), err);
	T_OK(models_add(ms, &srv, "b", fixture("models/tiny-qwen2.f32.gguf"), &err), err);
	T_EQ_I64(models_acquire(ms, "c", 0, &x, &load_s, &err), HEARTH_ENOTFOUND);
	T_TRUE(x == NULL);
	/* the default is the first; it loads on first use */
	T_EQ_I64(state_of(ms, ms->m[0]), MODEL_UNLOADED);
	T_OK(models_acquire(ms, NULL, 0, &a, &load_s, &err), err);
	T_TRUE(a == ms->m[0] && a->model && a->sched && load_s > 0);
	T_EQ_I64(state_of(ms, a), MODEL_LOADED);
	/* a is held: b finds no room and gives up after its wait */
	T_EQ_I64(models_acquire(ms, "b", 0.05, &b, &load_s, &err), HEARTH_EBUSY);
	T_EQ_I64(state_of(ms, ms->m[1]), MODEL_UNLOADED);
	/* a second hold loads nothing */
	T_OK(models_acquire(ms, "a", 0, &x, &load_s, &err), err);
	T_TRUE(x == a && load_s == 0);
	models_release(ms, x, -1);
	models_release(ms, a, -1);
	/* now idle: b takes its room */
	T_OK(models_acquire(ms, "b", 0, &b, &load_s, &err), err);
	T_EQ_I64(state_of(ms, a), MODEL_UNLOADED);
	T_TRUE(a->model == NULL);
	T_EQ_I64(state_of(ms, b), MODEL_LOADED);
	/* a peek holds only what is loaded */
	T_TRUE(!models_peek(ms, a));
	T_TRUE(models_peek(ms, b));
	models_unpeek(ms, b);
	/* the reaper leaves what is held or not idle long enough */
	T_EQ_I64(models_reap(ms, hearth_now() + 1e6), 0);
	models_release(ms, b, -1); /* the default: never unloaded for idleness */
	T_EQ_I64(models_reap(ms, hearth_now() + 1e6), 0);
	T_OK(models_acquire(ms, "b", 0, &b, &load_s, &err), err);
	models_release(ms, b, 30); /* keep_alive 30 s */
	T_EQ_I64(models_reap(ms, hearth_now() + 10), 0);
	T_EQ_I64(models_reap(ms, hearth_now() + 31), 1);
	T_EQ_I64(state_of(ms, b), MODEL_UNLOADED);
	T_TRUE(b->model == NULL);
	/* keep_alive 0: unloaded as soon as it is idle */
	T_OK(models_acquire(ms, "b", 0, &b, &load_s, &err), err);
	models_release(ms, b, 0);
	T_EQ_I64(models_reap(ms, hearth_now()), 1);
	models_free(ms);
}

static void test_failed_load(void)
{
	struct server srv;
	struct hearth_err err = { 0 };
	struct served_model *x;
	double load_s;
	char path[] = "/tmp/hearth-broken-XXXXXX";
	int fd = mkstemp(path);
	T_TRUE(fd >= 0);
	T_EQ_I64(write(fd, "GGUF not really", 15), 15);
	close(fd);
	srv_init(&srv);
	T_OK(models_add(&srv.models, &srv, "broken", path, &err), err);
	int rc = models_acquire(&srv.models, "broken", 0, &x, &load_s, &err);
	T_TRUE(rc != 0 && x == NULL && err.msg[0]);
	/* asked again at once: the same failure, without a second load */
	const struct served_model *sm = srv.models.m[0];
	const double failed_at = sm->failed_at;
	T_EQ_I64(models_acquire(&srv.models, "broken", 0, &x, &load_s, &err), HEARTH_EIO);
	T_TRUE(sm->failed_at == failed_at && failed_at > 0);
	T_EQ_I64(state_of(&srv.models, srv.models.m[0]), MODEL_UNLOADED);
	models_free(&srv.models);
	unlink(path);
}

void test_models(void)
{
	test_names();
	test_register();
	test_lifecycle();
	test_failed_load();
}
