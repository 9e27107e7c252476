/*
 * dataset.c - fine-tuning examples from a JSON Lines file (see hearth.h,
 * "fine-tuning data").
 *
 * A conversation becomes text through the chat template; the trained spans
 * are found by rendering it incrementally: for the assistant message j, the
 * render of messages[0..j) with the generation prompt ends where the reply
 * starts, and the render of messages[0..j] ends where the turn's closing
 * markup ends. When each of these renders is a prefix of the render of the
 * whole conversation, one example covers every trained turn; a template that
 * rewrites earlier turns (dropping past reasoning, say) breaks that, and the
 * conversation becomes one example per trained turn instead.
 *
 * The text is tokenized in segments cut at the span edges (a trained span on
 * its own), each as the chat tokenizer does (control-token text inside
 * message content stays text), with BOS first when the vocabulary asks.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth.h"
#include "../base/err.h"

#define DS_MAX_LINE ((size_t)64 << 20) /* bytes of one JSON line */

struct ds_example {
	int32_t *ids;
	uint8_t *loss;
	int32_t n, line;
};

struct hearth_dataset {
	struct ds_example *ex; /* every example, file order */
	int32_t n_ex, cap;
	int32_t *split[2];     /* indices into ex: train, valid */
	int32_t n_split[2];
	struct hearth_dataset_stats st;
};

/* What one line is being turned into: its text, and the trained byte ranges. */
struct ds_text {
	const char *text;
	size_t len;
	const struct hearth_span *content; /* where message content landed (stays text) */
	size_t n_content;
	struct hearth_span train[64];      /* trained ranges, sorted */
	int n_train;
};

struct ds_load {
	const struct hearth_model *m;
	struct hearth_chat *chat;
	struct hearth_dataset *d;
	int32_t max_tokens;
	const char *path;
	int32_t line;
};

struct hearth_dataset_params hearth_dataset_default_params(void)
{
	return (struct hearth_dataset_params){ .valid_fraction = 0.0f };
}

/* ---- tokenizing a text in segments ---- */

static int append_ids(int32_t **ids, uint8_t **loss, int32_t *n, int32_t *cap, const int32_t *add, int32_t k,
		      uint8_t flag)
{
	if (*n > INT32_MAX - k)
		return HEARTH_ETOOBIG;
	if (*n + k > *cap) {
		int32_t c = *cap ? *cap : 256;
		while (c < *n + k)
			c = c > INT32_MAX / 2 ? INT32_MAX : c * 2;
		int32_t *ni = realloc(*ids, (size_t)c * sizeof *ni);
		if (!ni)
			return HEARTH_ENOMEM;
		*ids = ni;
		uint8_t *nl = realloc(*loss, (size_t)c);
		if (!nl)
			return HEARTH_ENOMEM;
		*loss = nl;
		*cap = c;
	}
	memcpy(*ids + *n, add, (size_t)k * sizeof *add);
	memset(*loss + *n, flag, (size_t)k);
	*n += k;
	return 0;
}

/* Tokenizes text[a, b) with the content ranges that fall in it kept as text. */
static int tokenize_segment(const struct ds_load *L, const struct ds_text *t, size_t a, size_t b, int32_t **out,
			    int32_t *n_out, struct hearth_err *err)
{
	struct hearth_span *plain = NULL;
	size_t np = 0;
	if (t->n_content && !(plain = malloc(t->n_content * sizeof *plain)))
		return err_set(err, HEARTH_ENOMEM, "%s:%d: out of memory", L->path, L->line);
	for (size_t i = 0; i < t->n_content; i++) {
		const size_t s = t->content[i].off, e = s + t->content[i].len;
		const size_t cs = s > a ? s : a, ce = e < b ? e : b;
		if (cs < ce)
			plain[np++] = (struct hearth_span){ cs - a, ce - cs };
	}
	struct hearth_err e2 = { 0 };
	int rc = hearth_tokenize_chat(L->m, t->text + a, b - a, false, plain, np, INT32_MAX, out, n_out, &e2);
	free(plain);
	return rc ? err_set(err, rc, "%s:%d: tokenizing the example: %s", L->path, L->line, e2.msg) : 0;
}

/* Appends the tokens of text[a, b) to ex, all flagged train; BOS goes first
 * when the vocabulary asks for one and the text does not begin with it. */
static int add_segment(const struct ds_load *L, const struct ds_text *t, size_t a, size_t b, uint8_t train,
		       struct ds_example *ex, int32_t *cap, struct hearth_err *err)
{
	if (a == b)
		return 0;
	int32_t *ids = NULL, n = 0;
	int rc = tokenize_segment(L, t, a, b, &ids, &n, err);
	if (rc)
		return rc;
	const int32_t bos = hearth_token_bos(L->m);
	if (ex->n == 0 && hearth_vocab_add_bos(L->m) && bos >= 0 && (n == 0 || ids[0] != bos))
		rc = append_ids(&ex->ids, &ex->loss, &ex->n, cap, &bos, 1, 0);
	if (!rc)
		rc = append_ids(&ex->ids, &ex->loss, &ex->n, cap, ids, n, train);
	free(ids);
	return rc ? err_set(err, rc, "%s:%d: out of memory for the example's tokens", L->path, L->line) : 0;
}

/* The example of t: the stretches between trained spans and the spans
 * themselves, tokenized in order. */
static int tokenize_text(const struct ds_load *L, const struct ds_text *t, struct ds_example *ex,
			 struct hearth_err *err)
{
	int32_t cap = 0;
	int rc = 0;
	size_t at = 0;
	memset(ex, 0, sizeof *ex);
	ex->line = L->line;
	for (int k = 0; k < t->n_train && !rc; k++) {
		const size_t s0 = t->train[k].off, s1 = s0 + t->train[k].len;
		if (s0 < at || s1 > t->len) {
			rc = err_set(err, HEARTH_EUNSUPPORTED, "%s:%d: the chat template put the assistant turns out of "
				     "order", L->path, L->line);
			break;
		}
		if (!(rc = add_segment(L, t, at, s0, 0, ex, &cap, err)))
			rc = add_segment(L, t, s0, s1, 1, ex, &cap, err);
		at = s1;
	}
	if (!rc)
		rc = add_segment(L, t, at, t->len, 0, ex, &cap, err);
	if (rc) {
		free(ex->ids);
		free(ex->loss);
		memset(ex, 0, sizeof *ex);
	}
	return rc;
}

/* ---- keeping examples ---- */

/* Moves ex's arrays into allocations of its n tokens: an example cut to
 * max_tokens must not keep the memory of the whole text it came from (a file
 * of long lines would otherwise hold all their tokens). Copies, as realloc
 * may keep a shrunk large block at a page or more. When an allocation fails
 * the old array stays (it is valid, only larger). */
static void shrink_example(struct ds_example *ex)
{
	const size_t n = ex->n > 0 ? (size_t)ex->n : 1;
	int32_t *ids = malloc(n * sizeof *ids);
	uint8_t *loss = malloc(n);
	if (ids) {
		memcpy(ids, ex->ids, (size_t)ex->n * sizeof *ids);
		free(ex->ids);
		ex->ids = ids;
	}
	if (loss) {
		memcpy(loss, ex->loss, (size_t)ex->n);
		free(ex->loss);
		ex->loss = loss;
	}
}

/* Takes ex into d: cut to max_tokens, dropped when nothing trained is left. */
static int keep_example(struct ds_load *L, struct ds_example *ex, struct hearth_err *err)
{
	struct hearth_dataset *d = L->d;
	if (ex->n > L->max_tokens) {
		ex->n = L->max_tokens;
		d->st.n_cut++;
	}
	int64_t trained = 0;
	for (int32_t i = 1; i < ex->n; i++) /* token 0 has nothing before it to be predicted from */
		trained += ex->loss[i];
	if (ex->n > 0)
		ex->loss[0] = 0;
	if (!trained) {
		d->st.n_dropped++;
		free(ex->ids);
		free(ex->loss);
		return 0;
	}
	if (d->n_ex == d->cap) {
		const int32_t c = d->cap ? (d->cap > INT32_MAX / 2 ? INT32_MAX : d->cap * 2) : 64;
		struct ds_example *n = c > d->cap ? realloc(d->ex, (size_t)c * sizeof *n) : NULL;
		if (!n) {
			free(ex->ids);
			free(ex->loss);
			return err_set(err, HEARTH_ENOMEM, "%s:%d: out of memory for %d examples", L->path, L->line,
				       d->n_ex + 1);
		}
		d->ex = n;
		d->cap = c;
	}
	shrink_example(ex);
	d->ex[d->n_ex++] = *ex;
	d->st.tokens += ex->n;
	d->st.loss_tokens += trained;
	return 0;
}

/* ---- {"prompt", "completion"} ---- */

static int from_prompt(struct ds_load *L, json_t *o, struct hearth_err *err)
{
	json_t *jp = json_object_get(o, "prompt"), *jc = json_object_get(o, "completion");
	if (!json_is_string(jp) || !json_is_string(jc))
		return err_set(err, HEARTH_EINVAL, "%s:%d: 'prompt' and 'completion' must both be strings", L->path,
			       L->line);
	const size_t np = json_string_length(jp), nc = json_string_length(jc);
	char *text = malloc(np + nc + 1);
	if (!text)
		return err_set(err, HEARTH_ENOMEM, "%s:%d: out of memory", L->path, L->line);
	memcpy(text, json_string_value(jp), np);
	memcpy(text + np, json_string_value(jc), nc);
	text[np + nc] = 0;
	/* plain text: no control tokens from it (the whole text is content) */
	const struct hearth_span all = { 0, np + nc };
	struct ds_text t = { .text = text, .len = np + nc, .content = &all, .n_content = 1, .n_train = 1 };
	t.train[0] = (struct hearth_span){ np, nc };
	struct ds_example ex;
	int rc = tokenize_text(L, &t, &ex, err);
	free(text);
	const int32_t eos = hearth_token_eos(L->m);
	int32_t cap = ex.n;
	if (!rc && eos >= 0 && (rc = append_ids(&ex.ids, &ex.loss, &ex.n, &cap, &eos, 1, 1))) {
		free(ex.ids);
		free(ex.loss);
		return err_set(err, rc, "%s:%d: out of memory", L->path, L->line);
	}
	return rc ? rc : keep_example(L, &ex, err);
}

/* ---- {"messages": [...]} ---- */

/* The render of o's first k messages (with the generation prompt or not). */
static int render(struct ds_load *L, json_t *o, size_t k, bool gen, struct hearth_chat_prompt *out,
		  struct hearth_err *err)
{
	memset(out, 0, sizeof *out);
	json_t *all = json_object_get(o, "messages");
	json_t *vars = json_copy(o), *msgs = json_array(); /* shallow: the messages are shared */
	bool ok = vars && msgs;
	for (size_t i = 0; ok && i < k; i++)
		ok = !json_array_append(msgs, json_array_get(all, i));
	if (!ok)
		json_decref(msgs);
	/* json_object_set_new takes the value's reference, also when it fails */
	ok = ok && !json_object_set_new(vars, "messages", msgs) &&
	     !json_object_set_new(vars, "add_generation_prompt", json_boolean(gen));
	char *s = ok ? json_dumps(vars, JSON_COMPACT) : NULL;
	json_decref(vars);
	if (!s)
		return err_set(err, HEARTH_ENOMEM, "%s:%d: out of memory rendering the conversation", L->path, L->line);
	struct hearth_err e2 = { 0 };
	int rc = hearth_chat_apply(L->chat, s, strlen(s), NULL, -1, out, &e2);
	free(s);
	return rc ? err_set(err, rc, "%s:%d: the chat template: %s", L->path, L->line, e2.msg) : 0;
}

static bool is_prefix(const struct hearth_chat_prompt *a, const struct hearth_chat_prompt *b)
{
	return a->len <= b->len && !memcmp(a->text, b->text, a->len);
}

/* Checks the messages and marks in trained[j] the assistant turns trained on. */
static int check_messages(struct ds_load *L, json_t *msgs, bool *trained, size_t *n_trained, struct hearth_err *err)
{
	const size_t n = json_array_size(msgs);
	*n_trained = 0;
	for (size_t j = 0; j < n; j++) {
		json_t *mj = json_array_get(msgs, j), *role = json_object_get(mj, "role"), *w;
		if (!json_is_object(mj) || !json_is_string(role))
			return err_set(err, HEARTH_EINVAL, "%s:%d: messages[%zu] must be an object with a string 'role'",
				       L->path, L->line, j);
		trained[j] = false;
		if (strcmp(json_string_value(role), "assistant"))
			continue;
		if ((w = json_object_get(mj, "weight")) &&
		    !(json_is_integer(w) && (json_integer_value(w) == 0 || json_integer_value(w) == 1)))
			return err_set(err, HEARTH_EINVAL, "%s:%d: messages[%zu]: 'weight' must be 0 or 1", L->path,
				       L->line, j);
		trained[j] = !w || json_integer_value(w) == 1;
		*n_trained += trained[j];
	}
	if (!*n_trained)
		return err_set(err, HEARTH_EINVAL, "%s:%d: the conversation has no assistant message to train on",
			       L->path, L->line);
	if (*n_trained > sizeof ((struct ds_text *)0)->train / sizeof ((struct ds_text *)0)->train[0])
		return err_set(err, HEARTH_ETOOBIG, "%s:%d: more than %zu trained assistant turns in one conversation",
			       L->path, L->line, sizeof ((struct ds_text *)0)->train / sizeof ((struct ds_text *)0)->train[0]);
	return 0;
}

/* The byte range of assistant turn j in the render of messages[0..j]. */
static int turn_span(struct ds_load *L, json_t *o, size_t j, struct hearth_chat_prompt *upto, struct hearth_span *span,
		     struct hearth_err *err)
{
	struct hearth_chat_prompt before;
	int rc = render(L, o, j, true, &before, err);
	if (!rc)
		rc = render(L, o, j + 1, false, upto, err);
	if (!rc && !is_prefix(&before, upto))
		rc = err_set(err, HEARTH_EUNSUPPORTED,
			     "%s:%d: the chat template's render up to messages[%zu] does not begin with its render "
			     "of the messages before it and the generation prompt, so the reply cannot be located",
			     L->path, L->line, j);
	if (!rc)
		*span = (struct hearth_span){ before.len, upto->len - before.len };
	hearth_chat_prompt_free(&before);
	return rc;
}

/* One example per trained turn j, each from the render of messages[0..j]:
 * for a template that rewrites earlier turns. One render held at a time. */
static int split_turns(struct ds_load *L, json_t *o, const bool *trained, size_t n, struct hearth_err *err)
{
	int rc = 0;
	L->d->st.n_split++;
	for (size_t j = 0; j < n && !rc; j++) {
		if (!trained[j])
			continue;
		struct hearth_chat_prompt upto = { 0 };
		struct ds_text t = { .n_train = 1 };
		if (!(rc = turn_span(L, o, j, &upto, &t.train[0], err))) {
			t.text = upto.text;
			t.len = upto.len;
			t.content = upto.content;
			t.n_content = upto.n_content;
			struct ds_example ex;
			if (!(rc = tokenize_text(L, &t, &ex, err)))
				rc = keep_example(L, &ex, err);
		}
		hearth_chat_prompt_free(&upto);
	}
	return rc;
}

/* A conversation: one example of the whole render when every trained turn's
 * render is a prefix of it, else split_turns. Each turn's render is dropped
 * once its span is known, so a line costs a few renders of memory, not one
 * per trained turn. */
static int from_messages(struct ds_load *L, json_t *o, struct hearth_err *err)
{
	json_t *msgs = json_object_get(o, "messages");
	const size_t n = json_array_size(msgs);
	if (!json_is_array(msgs) || !n)
		return err_set(err, HEARTH_EINVAL, "%s:%d: 'messages' must be a non-empty array", L->path, L->line);
	bool *trained = malloc(n * sizeof *trained);
	size_t n_trained = 0;
	if (!trained)
		return err_set(err, HEARTH_ENOMEM, "%s:%d: out of memory", L->path, L->line);
	int rc = check_messages(L, msgs, trained, &n_trained, err);
	struct hearth_chat_prompt full = { 0 };
	struct ds_text t = { 0 };
	bool whole = true; /* every turn's render is a prefix of the whole conversation's */
	if (!rc)
		rc = render(L, o, n, false, &full, err);
	for (size_t j = 0; j < n && !rc && whole; j++) {
		struct hearth_chat_prompt upto = { 0 };
		if (trained[j] && !(rc = turn_span(L, o, j, &upto, &t.train[t.n_train], err))) {
			whole = is_prefix(&upto, &full);
			t.n_train++;
		}
		hearth_chat_prompt_free(&upto);
	}
	if (!rc && whole) {
		t.text = full.text;
		t.len = full.len;
		t.content = full.content;
		t.n_content = full.n_content;
		struct ds_example ex;
		if (!(rc = tokenize_text(L, &t, &ex, err)))
			rc = keep_example(L, &ex, err);
	}
	hearth_chat_prompt_free(&full);
	if (!rc && !whole)
		rc = split_turns(L, o, trained, n, err);
	free(trained);
	return rc;
}

/* ---- the file ---- */

static int load_line(struct ds_load *L, const char *s, size_t n, struct hearth_err *err)
{
	json_error_t je;
	json_t *o = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return err_set(err, HEARTH_EINVAL, "%s:%d: not valid JSON (column %d: %s)", L->path, L->line, je.column,
			       je.text);
	int rc;
	if (!json_is_object(o))
		rc = err_set(err, HEARTH_EINVAL, "%s:%d: an example must be a JSON object", L->path, L->line);
	else if (json_object_get(o, "messages"))
		rc = from_messages(L, o, err);
	else if (json_object_get(o, "prompt") || json_object_get(o, "completion"))
		rc = from_prompt(L, o, err);
	else
		rc = err_set(err, HEARTH_EINVAL, "%s:%d: an example needs 'messages' or 'prompt' and 'completion'",
			     L->path, L->line);
	json_decref(o);
	return rc;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr(" \t\r\n", s[i])) /* strchr finds the terminator: a NUL byte is not blank */
			return false;
	return true;
}

/* Reads one line (its newline included) into *buf, refusing one longer
 * than DS_MAX_LINE before reading past it. *n: its bytes; 0 at the end. */
static int read_line(FILE *f, char **buf, size_t *cap, size_t *n)
{
	*n = 0;
	int c;
	while ((c = getc(f)) != EOF) {
		if (*n == DS_MAX_LINE)
			return HEARTH_ETOOBIG;
		if (*n + 1 >= *cap) {
			const size_t nc = *cap ? *cap * 2 : 4096;
			char *nb = realloc(*buf, nc);
			if (!nb)
				return HEARTH_ENOMEM;
			*buf = nb;
			*cap = nc;
		}
		(*buf)[(*n)++] = (char)c;
		if (c == '\n')
			break;
	}
	return ferror(f) ? HEARTH_EIO : 0;
}

static int read_file(struct ds_load *L, struct hearth_err *err)
{
	FILE *f = fopen(L->path, "rb");
	if (!f)
		return err_set(err, errno == ENOENT ? HEARTH_ENOTFOUND : HEARTH_EIO, "%s: %s", L->path, strerror(errno));
	char *buf = NULL;
	size_t cap = 0, got;
	int rc = 0;
	while (!rc) {
		if (L->line == INT32_MAX) {
			rc = err_set(err, HEARTH_ETOOBIG, "%s: too many lines", L->path);
			break;
		}
		if ((rc = read_line(f, &buf, &cap, &got))) {
			rc = err_set(err, rc, "%s:%d: %s", L->path, L->line + 1,
				     rc == HEARTH_ETOOBIG ? "the line is longer than 64 MiB"
				     : rc == HEARTH_ENOMEM ? "out of memory for the line" : "read error");
			break;
		}
		if (!got)
			break;
		L->line++;
		if (!blank(buf, got)) {
			L->d->st.lines++;
			rc = load_line(L, buf, got, err);
		}
	}
	free(buf);
	fclose(f);
	if (!rc && !L->d->n_ex)
		rc = err_set(err, HEARTH_EINVAL, "%s: no example with a trained token", L->path);
	return rc;
}

/* Holds out round(fraction * n) examples chosen by a seeded shuffle, keeping
 * both splits in file order. */
static int split(struct hearth_dataset *d, float fraction, uint64_t seed, struct hearth_err *err)
{
	const int32_t n = d->n_ex;
	int32_t n_valid = (int32_t)(fraction * (float)n + 0.5f);
	if (fraction > 0 && n_valid == 0 && n > 1)
		n_valid = 1;
	uint8_t *held = calloc((size_t)n, 1);
	int32_t *perm = malloc((size_t)n * sizeof *perm);
	d->split[0] = malloc((size_t)(n - n_valid) * sizeof(int32_t) + 1);
	d->split[1] = malloc((size_t)n_valid * sizeof(int32_t) + 1);
	if (!held || !perm || !d->split[0] || !d->split[1]) {
		free(held);
		free(perm);
		return err_set(err, HEARTH_ENOMEM, "dataset: out of memory splitting %d examples", n);
	}
	uint64_t x = seed;
	for (int32_t i = 0; i < n; i++)
		perm[i] = i;
	for (int32_t i = n - 1; i > 0; i--) { /* Fisher-Yates with splitmix64 */
		x += 0x9e3779b97f4a7c15ULL;
		uint64_t z = x;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		const int32_t j = (int32_t)(z % (uint64_t)(i + 1)), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (int32_t i = 0; i < n_valid; i++)
		held[perm[i]] = 1;
	for (int32_t i = 0; i < n; i++)
		d->split[held[i]][d->n_split[held[i]]++] = i;
	free(held);
	free(perm);
	d->st.n_train = d->n_split[0];
	d->st.n_valid = d->n_split[1];
	return 0;
}

int hearth_dataset_load(struct hearth_dataset **out, const struct hearth_model *m, const char *path,
			const struct hearth_dataset_params *p, struct hearth_err *err)
{
	*out = NULL;
	const struct hearth_dataset_params dp = p ? *p : hearth_dataset_default_params();
	if (!(dp.valid_fraction >= 0 && dp.valid_fraction <= 0.5f))
		return err_set(err, HEARTH_EINVAL, "dataset: the validation share %g is outside 0..0.5",
			       (double)dp.valid_fraction);
	if (dp.max_tokens < 0)
		return err_set(err, HEARTH_EINVAL, "dataset: max_tokens %d is negative", dp.max_tokens);
	struct ds_load L = { .m = m, .path = path, .max_tokens = dp.max_tokens ? dp.max_tokens : hearth_model_n_ctx_train(m) };
	if (L.max_tokens < 2)
		L.max_tokens = 2;
	struct hearth_chat_params cp = hearth_chat_default_params();
	cp.template_src = dp.template_src;
	cp.template_len = dp.template_len;
	int rc = hearth_chat_new(m, &cp, &L.chat, err);
	if (rc)
		return rc;
	if (!(L.d = calloc(1, sizeof *L.d))) {
		hearth_chat_free(L.chat);
		return err_set(err, HEARTH_ENOMEM, "dataset: out of memory");
	}
	rc = read_file(&L, err);
	if (!rc)
		rc = split(L.d, dp.valid_fraction, dp.seed, err);
	hearth_chat_free(L.chat);
	if (rc) {
		hearth_dataset_free(L.d);
		return rc;
	}
	*out = L.d;
	return 0;
}

void hearth_dataset_free(struct hearth_dataset *d)
{
	if (!d)
		return;
	for (int32_t i = 0; i < d->n_ex; i++) {
		free(d->ex[i].ids);
		free(d->ex[i].loss);
	}
	free(d->ex);
	free(d->split[0]);
	free(d->split[1]);
	free(d);
}

void hearth_dataset_stats(const struct hearth_dataset *d, struct hearth_dataset_stats *out) { *out = d->st; }

static const struct ds_example *example_of(const struct hearth_dataset *d, enum hearth_split s, int32_t i)
{
	if ((s != HEARTH_SPLIT_TRAIN && s != HEARTH_SPLIT_VALID) || i < 0 || i >= d->n_split[s])
		return NULL;
	return &d->ex[d->split[s][i]];
}

const int32_t *hearth_dataset_example(const struct hearth_dataset *d, enum hearth_split s, int32_t i,
				      const uint8_t **loss, int32_t *n, int32_t *line)
{
	const struct ds_example *e = example_of(d, s, i);
	*loss = e ? e->loss : NULL;
	*n = e ? e->n : 0;
	if (line)
		*line = e ? e->line : 0;
	return e ? e->ids : NULL;
}

int hearth_dataset_pack(const struct hearth_dataset *d, enum hearth_split s, const int32_t *order, int32_t n_order,
			int32_t *next, int32_t n_ctx, int32_t *ids, uint8_t *loss, int32_t *pos, int32_t *n_out,
			struct hearth_err *err)
{
	*n_out = 0;
	if (n_ctx < 1 || *next < 0 || n_order < 0)
		return err_set(err, HEARTH_EINVAL, "dataset: packing needs n_ctx >= 1 and a place in the order");
	int32_t k = 0;
	while (*next < n_order) {
		const struct ds_example *e = example_of(d, s, order[*next]);
		if (!e)
			return err_set(err, HEARTH_EINVAL, "dataset: order[%d] = %d is not an example of the split", *next,
				       order[*next]);
		if (k > 0 && e->n > n_ctx - k)
			break; /* the next row starts with it */
		const int32_t take = e->n < n_ctx - k ? e->n : n_ctx - k;
		memcpy(ids + k, e->ids, (size_t)take * sizeof *ids);
		memcpy(loss + k, e->loss, (size_t)take);
		for (int32_t i = 0; i < take; i++)
			pos[k + i] = i;
		k += take;
		(*next)++;
	}
	*n_out = k;
	return 0;
}
