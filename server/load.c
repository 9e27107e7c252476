/*
 * load.c - what a server serves: the model, its chat (the template given
 * with --chat-template, else the model's) and the scheduler, loaded together
 * and released together.
 */
#include <stdio.h>

#include "server.h"

#define MAX_RENDERS 2 /* chat renders at once: bounds their memory (256 MiB arenas) across connections */

int server_load(struct server *srv, const char *template_src, size_t template_len, struct hearth_err *err)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_chat_params cp = hearth_chat_default_params();
	int rc;
	cp.template_src = template_src;
	cp.template_len = template_len;
	cp.allow_special_in_content = srv->allow_special_in_content;
	if (!(rc = hearth_model_load(&srv->model, srv->model_path, &mp, err)) &&
	    !(rc = hearth_chat_new(srv->model, &cp, &srv->chat, err)))
		rc = hearth_sched_new(&srv->sched, srv->model, &srv->sp, err);
	if (!rc && sem_init(&srv->renders, 0, MAX_RENDERS)) {
		rc = err->code = HEARTH_ENOMEM;
		snprintf(err->msg, sizeof err->msg, "serve: cannot make the render semaphore");
	}
	srv->renders_ready = rc == 0;
	if (rc)
		server_unload(srv);
	else
		srv->sp = hearth_sched_params_used(srv->sched); /* the defaults it filled in */
	return rc;
}

void server_unload(struct server *srv)
{
	if (srv->renders_ready)
		sem_destroy(&srv->renders);
	srv->renders_ready = false;
	hearth_sched_free(srv->sched);
	hearth_chat_free(srv->chat);
	hearth_model_free(srv->model);
	srv->sched = NULL;
	srv->chat = NULL;
	srv->model = NULL;
}
