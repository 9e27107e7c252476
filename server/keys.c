/*
 * keys.c - the API keys: each with a name (what usage records and shows,
 * never the key), a role (admin keys read every key's usage) and its quotas.
 *
 * A key file holds one key per line; '#' starts a comment line; a UTF-8 byte
 * order mark before the first line is skipped:
 *
 *   sk-the-key-itself-0123456789                  a bare key, named key-<8 hex of its SHA-256>
 *   alice  sk-alice-key-0123456789                a named key
 *   ops    sk-ops-key-0123456789 admin            an admin key
 *   bob    sk-bob-key-0123456789 rpm=60 tpd=200000   with quotas (0: the server's default)
 *
 * Fields are separated by spaces or tabs. Names are 1..63 letters, digits and
 * . _ - @ (not starting with . or -), unique in the server.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usage.h"

#define KEY_LINE_MAX 4096

bool keys_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n >= KEY_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		const char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-' || c == '@'))
			return false;
	}
	return true;
}

void keys_hash_name(const char *key, char out[KEY_NAME_MAX])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	if (!EVP_Digest(key, strlen(key), d, &n, EVP_sha256(), NULL) || n < 4) {
		snprintf(out, KEY_NAME_MAX, "key-unknown");
		return;
	}
	snprintf(out, KEY_NAME_MAX, "key-%02x%02x%02x%02x", d[0], d[1], d[2], d[3]);
}

/* The next field of *s (spaces and tabs between), copied into out; false
 * when there is none. *too_long: it did not fit. */
static bool next_field(const char **s, char *out, size_t size, bool *too_long)
{
	const char *p = *s + strspn(*s, " \t\r\n");
	size_t n = strcspn(p, " \t\r\n");
	*too_long = false;
	if (n == 0)
		return false;
	if (n >= size) {
		*too_long = true;
		n = size - 1;
	}
	memcpy(out, p, n);
	out[n] = 0;
	*s = p + strcspn(p, " \t\r\n");
	return true;
}

/* "rpm=N" or "tpd=N" into l; false with why. */
static bool parse_option(const char *f, struct key_line *l, char *why, size_t why_size)
{
	int64_t *dst = !strncmp(f, "rpm=", 4) ? &l->rpm : !strncmp(f, "tpd=", 4) ? &l->tpd : NULL;
	if (!strcmp(f, "admin")) {
		l->admin = true;
		return true;
	}
	if (!dst) {
		snprintf(why, why_size, "unknown field '%.40s' (expected admin, rpm=N or tpd=N)", f);
		return false;
	}
	const char *v = f + 4;
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	const long long max = dst == &l->rpm ? QUOTA_RPM_MAX : (1LL << 50);
	if (!*v || *end || errno || x < 0 || x > max || *v == '+' || *v == '-') {
		snprintf(why, why_size, "%.4s expects a whole number from 0 to %lld, got '%.40s'", f, max, v);
		return false;
	}
	*dst = x;
	return true;
}

bool keys_parse_line(const char *line, struct key_line *out, char *why, size_t why_size)
{
	char f[3][sizeof out->key];
	char opt[64];
	bool long_field;
	int n = 0;
	memset(out, 0, sizeof *out);
	const char *s = line + strspn(line, " \t");
	if (*s == '#' || strspn(s, " \t\r\n") == strlen(s)) {
		out->blank = true;
		return true;
	}
	while (n < 2 && next_field(&s, f[n], sizeof f[n], &long_field)) {
		if (long_field) {
			snprintf(why, why_size, "field %d is longer than %zu bytes", n + 1, sizeof out->key - 1);
			return false;
		}
		n++;
	}
	for (const char *p = line; *p; p++)
		if ((unsigned char)*p < ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
			snprintf(why, why_size, "the line holds a control character");
			return false;
		}
	if (n == 1) { /* a bare key */
		snprintf(out->key, sizeof out->key, "%s", f[0]);
		return true;
	}
	if (!keys_name_ok(f[0])) {
		snprintf(why, why_size, "'%.64s' is not a key name (1 to 63 letters, digits, '.', '_', '-', '@'; not "
			 "starting with '.' or '-')", f[0]);
		return false;
	}
	memcpy(out->name, f[0], strlen(f[0]) + 1); /* keys_name_ok: shorter than KEY_NAME_MAX */
	snprintf(out->key, sizeof out->key, "%s", f[1]);
	while (next_field(&s, opt, sizeof opt, &long_field))
		if (long_field || !parse_option(opt, out, why, why_size)) {
			if (long_field)
				snprintf(why, why_size, "unknown field '%.40s...'", opt);
			return false;
		}
	return true;
}

bool keys_add(struct server *srv, const char *k, const char *name, bool admin, int64_t rpm, int64_t tpd,
	      bool allow_weak, char *why, size_t n)
{
	while (*k == ' ' || *k == '\t')
		k++;
	size_t len = strlen(k);
	while (len && (k[len - 1] == ' ' || k[len - 1] == '\t' || k[len - 1] == '\r' || k[len - 1] == '\n'))
		len--;
	if (len == 0) {
		snprintf(why, n, "the key is empty");
		return false;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)k[i] <= ' ' || (unsigned char)k[i] >= 0x7f) {
			snprintf(why, n, "the key holds a space, a control character or a byte outside ASCII");
			return false;
		}
	if (len < SRV_MIN_KEY_BYTES && !allow_weak) {
		snprintf(why, n, "the key is %zu bytes; keys need at least %d (or pass --allow-weak-key)", len,
			 SRV_MIN_KEY_BYTES);
		return false;
	}
	if (srv->n_keys >= SRV_MAX_KEYS) {
		snprintf(why, n, "more than %d keys", SRV_MAX_KEYS);
		return false;
	}
	char *copy = strndup(k, len);
	if (!copy) {
		snprintf(why, n, "out of memory");
		return false;
	}
	struct srv_key *ki = &srv->key_info[srv->n_keys];
	memset(ki, 0, sizeof *ki);
	if (name)
		snprintf(ki->name, sizeof ki->name, "%s", name);
	else
		keys_hash_name(copy, ki->name);
	for (int i = 0; i < srv->n_keys; i++) {
		if (!strcmp(srv->keys[i], copy)) {
			snprintf(why, n, "the key is given twice (as '%s' and '%s')", srv->key_info[i].name, ki->name);
			free(copy);
			return false;
		}
		if (!strcmp(srv->key_info[i].name, ki->name)) {
			snprintf(why, n, "the name '%s' is taken by another key", ki->name);
			free(copy);
			return false;
		}
	}
	ki->admin = admin;
	ki->rpm = rpm;
	ki->tpd = tpd;
	srv->keys[srv->n_keys++] = copy;
	return true;
}

/* Reads one line of f into line; 1: a line, 0: the end, -1 after printing why. */
static int read_line(FILE *f, const char *path, int n_line, char *line, size_t size)
{
	if (!fgets(line, (int)size, f))
		return 0;
	const size_t got = strlen(line);
	if (got < size - 1 && !feof(f) && line[got ? got - 1 : 0] != '\n') {
		fprintf(stderr, "hearth serve: %s line %d holds a NUL byte\n", path, n_line);
		return -1;
	}
	if (!strchr(line, '\n') && !feof(f)) {
		fprintf(stderr, "hearth serve: %s line %d: longer than %zu bytes\n", path, n_line, size - 2);
		return -1;
	}
	return 1;
}

bool keys_read_file(struct server *srv, const char *path, bool allow_weak)
{
	FILE *f = fopen(path, "r");
	char line[KEY_LINE_MAX], why[200];
	struct key_line kl;
	int n_line = 0, before = srv->n_keys, got;
	bool ok = true;
	if (!f) {
		fprintf(stderr, "hearth serve: --api-key-file %s: %s\n", path, strerror(errno));
		return false;
	}
	while (ok && (got = read_line(f, path, n_line + 1, line, sizeof line)) != 0) {
		n_line++;
		if (got < 0) {
			ok = false;
			break;
		}
		const char *t = line + (n_line == 1 && !strncmp(line, "\xef\xbb\xbf", 3) ? 3 : 0);
		if (!keys_parse_line(t, &kl, why, sizeof why) ||
		    (!kl.blank && !keys_add(srv, kl.key, kl.name[0] ? kl.name : NULL, kl.admin, kl.rpm, kl.tpd, allow_weak,
					    why, sizeof why))) {
			fprintf(stderr, "hearth serve: %s line %d: %s\n", path, n_line, why);
			ok = false;
		}
	}
	explicit_bzero(line, sizeof line);
	explicit_bzero(&kl, sizeof kl);
	if (ok && ferror(f)) {
		fprintf(stderr, "hearth serve: %s: cannot read: %s\n", path, strerror(errno));
		ok = false;
	}
	fclose(f);
	if (ok && srv->n_keys == before) {
		fprintf(stderr, "hearth serve: %s holds no API key: refusing to start an open server from it\n", path);
		ok = false;
	}
	return ok;
}

int keys_index(const struct server *srv, const char *tenant)
{
	for (int i = 0; tenant && i < srv->n_keys; i++)
		if (srv->keys[i] == tenant)
			return i;
	return -1;
}

const char *keys_name(const struct server *srv, const char *tenant)
{
	const int k = keys_index(srv, tenant);
	return k < 0 ? "" : srv->key_info[k].name;
}

bool keys_is_admin(const struct server *srv, const char *tenant)
{
	const int k = keys_index(srv, tenant);
	return srv->n_keys == 0 || (k >= 0 && srv->key_info[k].admin);
}
