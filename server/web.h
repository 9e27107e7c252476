/*
 * web.h - the web chat page served at / (web.c), from the files of web/
 * embedded into the binary at build time (tools/web-embed.c writes
 * web-assets.c: one entry per file, in the order the Makefile lists them).
 */
#ifndef HEARTH_WEB_H
#define HEARTH_WEB_H

#include <stddef.h>

struct web_asset {
	const char *name;          /* the file's name, served at /ui/NAME ("index.html" also at /) */
	const unsigned char *data; /* its bytes (NUL-terminated past size) */
	size_t size;
	const char *etag;          /* "\"hex\"": a hash of the bytes */
};

extern const struct web_asset web_assets[]; /* web_n_assets entries, then a NULL name */
extern const size_t web_n_assets;

#endif /* HEARTH_WEB_H */
