/*
 * json-load.c - parsing the JSON text of a request's variables. jansson 2.14
 * can misparse when one of its allocations fails: it may report a syntax
 * error for good text, or drop a member and return the rest. So a failed parse is
 * tried once more, and a result is parsed twice and must agree (json_equal allocates
 * nothing): a disagreement, or a failure while memory is short, is reported
 * as out of memory rather than as bad text or a silently different value.
 * The text is a conversation: parsing it twice costs little next to
 * rendering and tokenizing it.
 */
#include <stdlib.h>

#include "jinja.h"

json_t *chat_json_load(const char *s, size_t n, size_t flags, json_error_t *je, bool *oom)
{
	json_t *a = json_loadb(s, n, flags, je);
	if (!a) /* once more: good text may fail while memory is short */
		a = json_loadb(s, n, flags, je);
	*oom = false;
	if (!a) {
		void *probe = malloc(4096); /* a syntax error, unless memory is what is missing */
		*oom = !probe || json_error_code(je) == json_error_out_of_memory || !je->text[0];
		free(probe);
		return NULL;
	}
	json_t *b = json_loadb(s, n, flags, NULL);
	const bool same = b && json_equal(a, b);
	json_decref(b);
	if (same)
		return a;
	json_decref(a); /* the parses disagree, or the second failed: memory */
	*oom = true;
	return NULL;
}
