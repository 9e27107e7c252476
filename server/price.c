/*
 * price.c - --price FILE: what each model's tokens would cost at an API, as
 * API price lists state them, per million tokens. One model per line:
 *
 *   # MODEL              INPUT   CACHED  OUTPUT    (currency per million tokens)
 *   qwen2.5-7b-instruct  0.40    0.20    1.20
 *   *                    0.15    0.075   0.60      any other model
 *
 * MODEL is the name hearth serves it under ("*": every model without a line);
 * CACHED "-" charges cached prompt tokens as INPUT. Cached tokens are part of
 * the prompt's: a request's API cost is
 *   ((prompt - cached) x INPUT + cached x CACHED + completion x OUTPUT) / 1e6.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usage.h"

/* A price field: a finite number from 0 to 1e9 ("-" allowed for cached: *v = -1). */
static bool price_value(const char *f, bool dash_ok, double *v)
{
	char *end;
	if (dash_ok && !strcmp(f, "-")) {
		*v = -1;
		return true;
	}
	errno = 0;
	*v = strtod(f, &end);
	return *f && !*end && !errno && isfinite(*v) && *v >= 0 && *v <= 1e9;
}

/* One non-blank line into p; false with why. */
static bool price_line(char *s, struct price *p, char *why, size_t why_size)
{
	char *f[5], *save = NULL;
	int n = 0;
	for (char *tok = strtok_r(s, " \t\r", &save); tok && n < 5; tok = strtok_r(NULL, " \t\r", &save))
		f[n++] = tok;
	if (n != 4) {
		snprintf(why, why_size, "expected 4 fields (MODEL INPUT CACHED OUTPUT), got %d", n);
		return false;
	}
	if (strlen(f[0]) > MODEL_NAME_MAX || (strcmp(f[0], "*") && !models_name_ok(f[0]))) {
		snprintf(why, why_size, "'%.64s' is not a model name", f[0]);
		return false;
	}
	snprintf(p->model, sizeof p->model, "%s", f[0]);
	static const char *const what[] = { "INPUT", "CACHED", "OUTPUT" };
	double *dst[] = { &p->input, &p->cached, &p->output };
	for (int i = 0; i < 3; i++)
		if (!price_value(f[i + 1], i == 1, dst[i])) {
			snprintf(why, why_size, "%s: '%.32s' is not a price (a number from 0 to 1e9%s)", what[i], f[i + 1],
				 i == 1 ? ", or -" : "");
			return false;
		}
	if (p->cached < 0)
		p->cached = p->input;
	return true;
}

bool price_parse(const char *text, size_t len, struct price_list *pl, char *why, size_t why_size)
{
	char line[1024], msg[160];
	size_t at = 0;
	int n_line = 0;
	pl->n = 0;
	while (at < len) {
		const char *nl = memchr(text + at, '\n', len - at);
		const size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
		n_line++;
		if (n >= sizeof line || memchr(text + at, 0, n)) {
			snprintf(why, why_size, "line %d: %s", n_line, n >= sizeof line ? "longer than 1023 bytes" : "holds a NUL byte");
			return false;
		}
		memcpy(line, text + at, n);
		line[n] = 0;
		at += n + 1;
		char *s = line + strspn(line, " \t\r");
		if (!*s || *s == '#')
			continue;
		if (pl->n == PRICE_MAX) {
			snprintf(why, why_size, "line %d: more than %d prices", n_line, PRICE_MAX);
			return false;
		}
		if (!price_line(s, &pl->p[pl->n], msg, sizeof msg)) {
			snprintf(why, why_size, "line %d: %s", n_line, msg);
			return false;
		}
		for (int i = 0; i < pl->n; i++)
			if (!strcmp(pl->p[i].model, pl->p[pl->n].model)) {
				snprintf(why, why_size, "line %d: '%s' has a price already", n_line, pl->p[i].model);
				return false;
			}
		pl->n++;
	}
	return true;
}

const struct price *price_find(const struct price_list *pl, const char *model)
{
	const struct price *any = NULL;
	for (int i = 0; i < pl->n; i++) {
		if (!strcmp(pl->p[i].model, model))
			return &pl->p[i];
		if (!strcmp(pl->p[i].model, "*"))
			any = &pl->p[i];
	}
	return any;
}

double price_cost(const struct price *p, int64_t prompt, int64_t cached, int64_t completion)
{
	const double uncached = prompt > cached ? (double)(prompt - cached) : 0;
	return (uncached * p->input + (double)cached * p->cached + (double)completion * p->output) / 1e6;
}
