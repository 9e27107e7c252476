/* ref.c - model references: what `hearth pull REF` and `-m NAME` accept, and
 * which file of a repository a reference's tag chooses.
 *
 *   Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M        Hugging Face, a quantization
 *   hf.co/bartowski/X-GGUF:IQ4_XS                 Ollama's spelling (also huggingface.co/, hf:)
 *   Qwen/X-GGUF:qwen2.5-0.5b-instruct-q8_0.gguf   a file by name (".gguf" may be left out)
 *   modelscope:Qwen/X-GGUF[:TAG]                  ModelScope
 *   https://host/path/model.gguf                  a URL
 *
 * A tag that names no file is matched against the quantization in file names,
 * case-insensitively and at word boundaries, so "Q4_K" does not take
 * "Q4_K_M". Without a tag a repository's only GGUF is taken, else its
 * Q4_K_M one, as Ollama does. Files of a split GGUF ("-00001-of-00003.gguf")
 * are refused with a message: hearth loads single files.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../base/err.h"
#include "store.h"

#define REF_NAME_MAX 96   /* an owner's or a repository's name */
#define REF_PATH_DEPTH 8  /* directories in a repository path */

static bool name_char(int c)
{
	return isalnum(c) || c == '.' || c == '_' || c == '-' || c == '+';
}

/* A plain name: [A-Za-z0-9._+-]{1,max}, not starting with '.'. */
static bool plain_name(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char((unsigned char)s[i]))
			return false;
	return true;
}

bool ref_safe_path(const char *path)
{
	int depth = 0;
	for (const char *s = path;; depth++) {
		const char *slash = strchr(s, '/');
		size_t len = slash ? (size_t)(slash - s) : strlen(s);
		if (depth > REF_PATH_DEPTH || !plain_name(s, len, 255))
			return false;
		if (!slash)
			return true;
		s = slash + 1;
	}
}

static bool ends_with_ci(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcasecmp(s + n - k, suffix);
}

static const char *base_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static int parse_url(const char *s, struct ref *r, struct hearth_err *err)
{
	const char *host = strstr(s, "://") + 3, *path = strchr(host, '/');
	if (strlen(s) >= sizeof r->url)
		return err_set(err, HEARTH_EINVAL, "%.60s...: the URL is longer than %zu bytes", s, sizeof r->url - 1);
	for (const char *c = s; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			return err_set(err, HEARTH_EINVAL, "%.200s: a URL may not hold spaces or control characters", s);
	const char *at = memchr(host, '@', path ? (size_t)(path - host) : strlen(host));
	if (at)
		host = at + 1;
	size_t host_len = path ? (size_t)(path - host) : strlen(host);
	if (host_len == 0 || host_len >= sizeof r->host)
		return err_set(err, HEARTH_EINVAL, "%.200s: the URL has no host", s);
	for (size_t i = 0; i < host_len; i++)
		if (!isalnum((unsigned char)host[i]) && !strchr(".-:[]", host[i]))
			return err_set(err, HEARTH_EINVAL, "%.200s: the URL's host is not a plain name", s);
	memcpy(r->host, host, host_len);
	r->host[host_len] = 0;
	const char *start = path ? path : host + host_len;
	size_t end = strcspn(start, "?#");
	const char *file = start + end;
	while (file > start && file[-1] != '/')
		file--;
	size_t file_len = (size_t)(start + end - file);
	if (!plain_name(file, file_len, sizeof r->file - 6))
		return err_set(err, HEARTH_EINVAL,
			       "%.200s: the URL does not end in a plain file name ([A-Za-z0-9._+-]) to store it under", s);
	snprintf(r->file, sizeof r->file, "%.*s%s", (int)file_len, file,
		 file_len >= 5 && !strncasecmp(file + file_len - 5, ".gguf", 5) ? "" : ".gguf");
	strcpy(r->url, s);
	r->kind = REF_URL;
	return 0;
}

int ref_parse(const char *s, struct ref *r, struct hearth_err *err)
{
	static const char *hf_prefixes[] = { "hf.co/", "huggingface.co/", "hf:" };
	memset(r, 0, sizeof *r);
	if (!strncmp(s, "https://", 8) || !strncmp(s, "http://", 7))
		return parse_url(s, r, err);
	const char *rest = s;
	r->kind = REF_HF;
	if (!strncmp(rest, "modelscope:", 11)) {
		r->kind = REF_MODELSCOPE;
		rest += 11;
	} else {
		for (size_t i = 0; i < sizeof hf_prefixes / sizeof *hf_prefixes; i++)
			if (!strncmp(rest, hf_prefixes[i], strlen(hf_prefixes[i]))) {
				rest += strlen(hf_prefixes[i]);
				break;
			}
	}
	const char *colon = strchr(rest, ':'), *slash = strchr(rest, '/');
	size_t repo_len = colon ? (size_t)(colon - rest) : strlen(rest);
	if (!slash || slash >= rest + repo_len || !plain_name(rest, (size_t)(slash - rest), REF_NAME_MAX) ||
	    !plain_name(slash + 1, (size_t)(rest + repo_len - slash - 1), REF_NAME_MAX))
		return err_set(err, HEARTH_EINVAL,
			       "'%.200s' is not a model reference (OWNER/REPO[:QUANT], modelscope:OWNER/REPO, or a URL)", s);
	memcpy(r->repo, rest, repo_len);
	if (colon) {
		const char *tag = colon + 1;
		if (!ref_safe_path(tag) || strlen(tag) >= sizeof r->tag)
			return err_set(err, HEARTH_EINVAL, "'%.200s': the tag after ':' must be a quantization or a file name",
				       s);
		if (strcasecmp(tag, "latest"))
			strcpy(r->tag, tag);
	}
	return 0;
}

void ref_format(const struct ref *r, char *out, size_t size)
{
	if (r->kind == REF_URL)
		snprintf(out, size, "%s", r->url);
	else
		snprintf(out, size, "%s%s%s%s", r->kind == REF_MODELSCOPE ? "modelscope:" : "", r->repo, r->tag[0] ? ":" : "",
			 r->tag);
}

static bool is_quant_token(const char *t, size_t n)
{
	static const char *plain[] = { "f16", "f32", "bf16", "f64" };
	for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
		if (n == strlen(plain[i]) && !strncasecmp(t, plain[i], n))
			return true;
	size_t i = 0;
	if (n > 0 && (t[0] == 'i' || t[0] == 'I' || t[0] == 't' || t[0] == 'T'))
		i = 1;
	if (n < i + 2 || (t[i] != 'q' && t[i] != 'Q') || !isdigit((unsigned char)t[i + 1]))
		return false;
	for (i += 2; i < n; i++)
		if (!isalnum((unsigned char)t[i]) && t[i] != '_')
			return false;
	return true;
}

bool ref_quant_of(const char *file, char *out, size_t size)
{
	const char *b = base_of(file);
	size_t n = strlen(b), best = 0, best_len = 0;
	if (ends_with_ci(b, ".gguf"))
		n -= 5;
	for (size_t i = 0; i < n;) {
		size_t k = i;
		while (k < n && b[k] != '-' && b[k] != '.')
			k++;
		if (is_quant_token(b + i, k - i)) {
			best = i;
			best_len = k - i;
		}
		i = k + 1;
	}
	if (!best_len || best_len >= size)
		return false;
	for (size_t i = 0; i < best_len; i++)
		out[i] = (char)toupper((unsigned char)b[best + i]);
	out[best_len] = 0;
	return true;
}

/* "-00001-of-00003.gguf" at the end of the name. */
static bool is_shard(const char *path)
{
	const char *b = base_of(path);
	size_t n = strlen(b);
	if (n < 20 || !ends_with_ci(b, ".gguf"))
		return false;
	const char *t = b + n - 20; /* "-DDDDD-of-DDDDD.gguf" */
	for (int i = 0; i < 20; i++) {
		char want = "-#####-of-#####.gguf"[i];
		if (want == '#' ? !isdigit((unsigned char)t[i]) : tolower((unsigned char)t[i]) != want)
			return false;
	}
	return true;
}

/* The first place in s where k bytes equal t's, case-insensitively, or NULL. */
static const char *find_ci(const char *s, const char *t)
{
	size_t k = strlen(t);
	for (; *s; s++)
		if (!strncasecmp(s, t, k))
			return s;
	return NULL;
}

static bool is_candidate(const struct hub_file *f)
{
	return ends_with_ci(f->path, ".gguf") && ref_safe_path(f->path);
}

static bool is_mmproj(const char *path)
{
	return find_ci(base_of(path), "mmproj") != NULL;
}

/* Does the file's name hold tag, not inside a longer word? */
static bool holds_tag(const char *path, const char *tag)
{
	const char *b = base_of(path);
	size_t k = strlen(tag);
	for (const char *s = b; (s = find_ci(s, tag)); s++) {
		bool left = s == b || !(isalnum((unsigned char)s[-1]) || s[-1] == '_');
		bool right = !(isalnum((unsigned char)s[k]) || s[k] == '_');
		if (left && right)
			return true;
	}
	return false;
}

static bool names_file(const char *path, const char *tag)
{
	size_t k = strlen(tag);
	const char *b = base_of(path);
	for (int i = 0; i < 2; i++) {
		const char *p = i ? b : path;
		if (!strcasecmp(p, tag) || (!strncasecmp(p, tag, k) && !strcasecmp(p + k, ".gguf")))
			return true;
	}
	return false;
}

/* "a.gguf, b.gguf, ..." of the candidates (those with match[i] when match is not NULL). */
static void list_names(const struct hub_file *files, int n, const bool *match, char *out, size_t size)
{
	size_t used = 0;
	out[0] = 0;
	for (int i = 0; i < n && used + 1 < size; i++) {
		if (!is_candidate(&files[i]) || (match && !match[i]))
			continue;
		int w = snprintf(out + used, size - used, "%s%s", used ? ", " : "", base_of(files[i].path));
		if (w < 0)
			break;
		used += (size_t)w;
	}
	if (!out[0])
		snprintf(out, size, "none");
}

static int pick_among(const struct ref *r, const char *tag, const struct hub_file *files, int n, const bool *match,
		      int *pick, struct hearth_err *err)
{
	char names[160];
	int n_match = 0, n_shard = 0;
	for (int i = 0; i < n; i++)
		if (match[i]) {
			n_match++;
			n_shard += is_shard(files[i].path);
			*pick = i;
		}
	if (n_match == 1 && !n_shard)
		return 0;
	if (n_match == 0) {
		list_names(files, n, NULL, names, sizeof names);
		return err_set(err, HEARTH_ENOTFOUND, "%s has no GGUF file for '%s' (it has: %s)", r->repo, tag, names);
	}
	list_names(files, n, match, names, sizeof names);
	if (n_shard == n_match)
		return err_set(err, HEARTH_EUNSUPPORTED,
			       "%s:%s is a GGUF split into %d files (%s); hearth loads single-file GGUFs only", r->repo, tag,
			       n_match, names);
	return err_set(err, HEARTH_EINVAL, "%s:%s matches %d files (%s); name one as %s:FILE", r->repo, tag, n_match, names,
		       r->repo);
}

int ref_pick(const struct ref *r, const struct hub_file *files, int n, int *pick, struct hearth_err *err)
{
	bool match[n > 0 ? n : 1];
	const char *tag = r->tag;
	int n_gguf = 0;
	if (!tag[0]) {
		for (int i = 0; i < n; i++)
			if ((match[i] = is_candidate(&files[i]) && !is_mmproj(files[i].path)))
				n_gguf++;
		if (n_gguf == 1)
			return pick_among(r, "(default)", files, n, match, pick, err);
		tag = "Q4_K_M";
	} else {
		for (int i = 0; i < n; i++)
			if ((match[i] = is_candidate(&files[i]) && names_file(files[i].path, tag)))
				n_gguf++;
		if (n_gguf)
			return pick_among(r, tag, files, n, match, pick, err);
	}
	for (int i = 0; i < n; i++)
		match[i] = is_candidate(&files[i]) && !is_mmproj(files[i].path) && holds_tag(files[i].path, tag);
	return pick_among(r, tag, files, n, match, pick, err);
}
