/* toolcall-result.c - the non-streaming result: a whole output through one
 * parser, its deltas joined into content, reasoning and the final calls. */
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "toolcall-impl.h"

void tc_result_free(struct tc_result *r)
{
	if (!r)
		return;
	free(r->content);
	free(r->reasoning);
	for (int32_t i = 0; i < r->n_calls; i++) {
		free(r->calls[i].name);
		free(r->calls[i].arguments);
	}
	free(r->calls);
	memset(r, 0, sizeof *r);
}

/* The concatenation of the events of one kind. */
static char *join(const struct tc_events *ev, enum tc_event_kind kind)
{
	size_t n = 0;
	for (size_t i = 0; i < ev->n; i++)
		if (ev->v[i].kind == kind)
			n += ev->v[i].len;
	char *s = malloc(n + 1), *at = s;
	if (!s)
		return NULL;
	for (size_t i = 0; i < ev->n; i++)
		if (ev->v[i].kind == kind) {
			memcpy(at, ev->v[i].text, ev->v[i].len);
			at += ev->v[i].len;
		}
	*at = '\0';
	return s;
}

static int take_calls(const struct tc_parser *p, struct tc_result *out, struct hearth_err *err)
{
	int32_t n;
	const struct tc_call *c = tc_parser_calls(p, &n);
	if (n == 0)
		return 0;
	if (!(out->calls = calloc((size_t)n, sizeof *out->calls)))
		return err_set(err, HEARTH_ENOMEM, "tool calls: no memory for %d calls", (int)n);
	for (int32_t i = 0; i < n; i++) {
		out->calls[i] = c[i];
		out->calls[i].name = strdup(c[i].name);
		out->calls[i].arguments = strdup(c[i].arguments);
		out->n_calls = i + 1;
		if (!out->calls[i].name || !out->calls[i].arguments)
			return err_set(err, HEARTH_ENOMEM, "tool calls: no memory for call '%s'", c[i].name);
	}
	return 0;
}

int tc_parse(enum tc_format format, const json_t *tools, bool starts_in_reasoning, const char *text, size_t len,
	     tc_random_fn rnd, void *rnd_ud, struct tc_result *out, struct hearth_err *err)
{
	struct tc_parser *p = NULL;
	struct tc_events ev = { 0 };
	memset(out, 0, sizeof *out);
	int rc = tc_parser_new(format, tools, starts_in_reasoning, &p, err);
	if (rc)
		return rc;
	if (rnd)
		tc_parser_set_random(p, rnd, rnd_ud);
	if (!(rc = tc_parser_feed(p, text, len, &ev, err)) && !(rc = tc_parser_finish(p, &ev, err))) {
		out->content = join(&ev, TC_EV_CONTENT);
		out->reasoning = join(&ev, TC_EV_REASONING);
		if (!out->content || !out->reasoning)
			rc = err_set(err, HEARTH_ENOMEM, "tool calls: no memory for the content");
		else
			rc = take_calls(p, out, err);
	}
	if (rc)
		tc_result_free(out);
	tc_events_free(&ev);
	tc_parser_free(p);
	return rc;
}
