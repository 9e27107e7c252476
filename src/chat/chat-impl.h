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

/* Does the prompt end inside a reasoning block: an opening <think> in its
 * last bytes (the generation prompt) that nothing closes? (chat-grammar.c) */
bool chat_prompt_in_reasoning(const struct hearth_chat_prompt *p);

#endif /* HEARTH_CHAT_IMPL_H */
