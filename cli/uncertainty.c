/*
 * uncertainty.c - `hearth run/chat --uncertainty`: how sure the model was of
 * each token it generated (hearth_sampler_uncertainty: the entropy, in nats,
 * of the softmax of its logits at temperature 1, and the rank of the chosen
 * token in it, 1 the most likely), shown where the text goes:
 *
 *   on a terminal (and NO_COLOR unset): the text as usual, each token
 *     coloured by its entropy: plain below 1 nat, yellow below 2.5, red
 *     from 2.5; a token that was not the most likely (rank > 1: sampled)
 *     underlined
 *   otherwise (a pipe, a file): one line per token, tab-separated:
 *     index, entropy (4 decimals), rank, the token's text as a JSON string
 *     (the streaming detokenizer's piece: "" while a UTF-8 character is
 *     incomplete); text left at the end (an incomplete character) comes as
 *     a last line "-<TAB>-<TAB>-<TAB>text"
 */
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"

#define UNC_YELLOW_NATS 1.0f
#define UNC_RED_NATS 2.5f

int uncertainty_mode(FILE *f)
{
	const char *nc = getenv("NO_COLOR");
	return isatty(fileno(f)) && !(nc && *nc) ? UNCERTAINTY_COLOUR : UNCERTAINTY_LINES;
}

void uncertainty_put(FILE *f, int mode, int32_t index, const char *piece, size_t k, float entropy, int32_t rank)
{
	if (mode == UNCERTAINTY_LINES) {
		fprintf(f, "%d\t%.4f\t%d\t", index, (double)entropy, rank);
		json_write_str(f, piece, k);
		fputc('\n', f);
	} else {
		const char *colour = entropy >= UNC_RED_NATS ? "\x1b[31m" : entropy >= UNC_YELLOW_NATS ? "\x1b[33m" : "";
		fputs(colour, f);
		if (rank > 1)
			fputs("\x1b[4m", f);
		fwrite(piece, 1, k, f);
		if (*colour || rank > 1)
			fputs("\x1b[0m", f);
	}
	fflush(f);
}

void uncertainty_rest(FILE *f, int mode, const char *piece, size_t k)
{
	if (!k)
		return;
	if (mode == UNCERTAINTY_LINES) {
		fputs("-\t-\t-\t", f);
		json_write_str(f, piece, k);
		fputc('\n', f);
	} else {
		fwrite(piece, 1, k, f);
	}
	fflush(f);
}
