/* utf8.h - small UTF-8 helpers shared by the tokenizers (validation is
 * hearth_utf8_valid in utf8.c). */
#ifndef HEARTH_UTF8_H
#define HEARTH_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the sequence a lead byte starts (1 for ASCII and stray bytes). */
static inline size_t utf8_seq_len(unsigned char c)
{
	return c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/* The code point at s (n > 0 bytes left), its byte length in *k (cut to n).
 * Not validating: call on text known to be UTF-8, or take garbage back. */
static inline uint32_t utf8_cp(const char *s, size_t n, size_t *k)
{
	const unsigned char *u = (const unsigned char *)s;
	*k = utf8_seq_len(u[0]);
	if (*k > n)
		*k = n;
	uint32_t cp = *k == 1 ? u[0] : u[0] & (0x7fu >> *k);
	for (size_t j = 1; j < *k; j++)
		cp = (cp << 6) | (u[j] & 0x3fu);
	return cp;
}

#endif /* HEARTH_UTF8_H */
