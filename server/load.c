/*
 * load.c - what serving one model takes: its weights, its chat (the
 * template given with --chat-template, else the model's) and its scheduler,
 * loaded together and released together. models.c decides when.
 */
#include <stdio.h>

#include "server.h"

#define MAX_RENDERS 2 /* chat renders at once: bounds their memory (256 MiB arenas) across connections */

int load_model(struct served_model *sm, const char *template_src, size_t template_len, struct hearth_err *err)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_chat_params cp = hearth_chat_default_params();
	const double t0 = hearth_now();
	int rc;
	cp.template_src = template_src;
	cp.template_len = template_len;
	cp.allow_special_in_content = sm->srv->allow_special_in_content;
	sm->sp = sm->srv->sp;
	if (!(rc = hearth_model_load(&sm->model, sm->path, &mp, err)) &&
	    !(rc = hearth_chat_new(sm->model, &cp, &sm->chat, err)) && !(rc = steer_load(sm, err)) &&
	    !(rc = adapters_load(sm, err)))
		rc = hearth_sched_new(&sm->sched, sm->model, &sm->sp, err);
	if (!rc && (sem_init(&sm->renders, 0, MAX_RENDERS) || sem_init(&sm->attributions, 0, 1))) {
		rc = err->code = HEARTH_ENOMEM; /* (sem_init fails only for counts past SEM_VALUE_MAX) */
		snprintf(err->msg, sizeof err->msg, "serve: cannot make the render semaphores");
	}
	sm->renders_ready = rc == 0;
	if (rc) {
		load_free(sm);
		return rc;
	}
	sm->sp = hearth_sched_params_used(sm->sched); /* the defaults it filled in */
	sm->load_s = hearth_now() - t0;
	return 0;
}

void load_free(struct served_model *sm)
{
	if (sm->renders_ready) {
		sem_destroy(&sm->renders);
		sem_destroy(&sm->attributions);
	}
	sm->renders_ready = false;
	hearth_sched_free(sm->sched);
	steer_free(sm); /* after the scheduler: its requests point at them */
	adapters_free(sm);
	hearth_chat_free(sm->chat);
	hearth_model_free(sm->model);
	sm->sched = NULL;
	sm->chat = NULL;
	sm->model = NULL;
}
