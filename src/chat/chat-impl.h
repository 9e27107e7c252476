/* chat-impl.h - what chat.c and chat-reader.c share: a compiled chat (internal to src/chat/). */
#ifndef HEARTH_CHAT_IMPL_H
#define HEARTH_CHAT_IMPL_H

#include <stdbool.h>

#include "hearth.h"
#include "toolcall.h"

struct hearth_chat {
	const struct hearth_model *m;
	struct hearth_template *t;
	char *src;             /* the template's source */
	bool builtin;          /* src is the built-in ChatML */
	bool allow_special;
	char *bos, *eos;       /* the text of the model's BOS / EOS tokens (NULL: none) */
	enum tc_format format; /* how its answers write reasoning and calls */
};

/* How the prompt leaves reasoning, by the template's own <think> / </think>
 * in its last bytes (the generation prompt; content does not count): a block
 * opened and not closed, one already closed (thinking switched off), or
 * neither. (chat-grammar.c) */
enum think_state { THINK_UNKNOWN, THINK_OPEN, THINK_CLOSED };
enum think_state chat_prompt_think(const struct hearth_chat_prompt *p);

#endif /* HEARTH_CHAT_IMPL_H */
