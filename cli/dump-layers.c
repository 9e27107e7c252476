/* dump-layers.c - `hearth run --dump-layers L1,L2 --dump-file FILE`: the
 * prompt's hidden states after chosen layers, written as a NumPy .npy file.
 *
 * The file is NPY format 1.0: the magic "\x93NUMPY", version 1.0, a
 * little-endian u16 header length, then an ASCII dict
 * {'descr': '<f4', 'fortran_order': False, 'shape': (L, T, E), } padded with
 * spaces and a newline so that the data starts at a multiple of 64 bytes,
 * then L x T x E little-endian float32s: layer (in the order given), prompt
 * token, dimension. numpy.load() opens it as is. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int dump_layers_parse(const char *spec, int32_t n_layer, int32_t **layers, int32_t *n)
{
	*layers = NULL;
	*n = 0;
	int32_t *out = malloc(((size_t)n_layer + 1) * sizeof *out);
	const char *p = spec;
	if (!out)
		return usage_error("run", "out of memory");
	while (*p) {
		char *end;
		errno = 0;
		long v = strtol(p, &end, 10);
		if (end == p || errno || (*end && *end != ',') || v < -n_layer || v >= n_layer || *n >= n_layer) {
			free(out);
			return usage_error("run", "--dump-layers %s: give up to %d layers from %d to %d, comma-separated",
					   spec, n_layer, -n_layer, n_layer - 1);
		}
		out[(*n)++] = (int32_t)v;
		p = *end ? end + 1 : end;
	}
	if (*n == 0) {
		free(out);
		return usage_error("run", "--dump-layers: no layers given");
	}
	*layers = out;
	return 0;
}

static int put_le32(FILE *f, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		unsigned char b[4];
		memcpy(&u, &x[i], 4);
		for (int k = 0; k < 4; k++)
			b[k] = (unsigned char)(u >> (8 * k));
		if (fwrite(b, 1, 4, f) != 4)
			return -1;
	}
	return 0;
}

int dump_layers_write(const char *path, const struct hearth_context *c, int32_t n_layers, int32_t n_tokens,
		      int32_t n_embd)
{
	char hdr[192];
	int h = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d, %d), }", n_layers,
			 n_tokens, n_embd);
	const int total = (10 + h + 1 + 63) / 64 * 64; /* magic, version, length, dict, newline */
	memset(hdr + h, ' ', (size_t)(total - 10 - h));
	hdr[total - 10 - 1] = '\n';
	FILE *f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "hearth run: --dump-file %s: %s\n", path, strerror(errno));
		return 1;
	}
	const unsigned char head[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)((total - 10) & 0xff),
					 (unsigned char)((total - 10) >> 8) };
	int bad = fwrite(head, 1, 10, f) != 10 || fwrite(hdr, 1, (size_t)(total - 10), f) != (size_t)(total - 10);
	for (int32_t k = 0; !bad && k < n_layers; k++)
		for (int32_t i = 0; !bad && i < n_tokens; i++) {
			const float *x = hearth_get_hidden(c, k, i);
			bad = !x || put_le32(f, x, (size_t)n_embd);
		}
	bad |= fclose(f) != 0;
	if (bad)
		fprintf(stderr, "hearth run: --dump-file %s: could not write the hidden states\n", path);
	return bad;
}
