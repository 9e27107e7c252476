/* hf-vocab.h - a Hugging Face tokenizer folder read as a GGUF vocabulary
 * (hf-vocab.c): shared by `hearth convert --vocab-only` and the whole-model
 * converter (hf-model.c). */
#ifndef HEARTH_HF_VOCAB_H
#define HEARTH_HF_VOCAB_H

#include <stdint.h>

#include "hearth.h"
#include "../gguf/gguf.h"

struct hf_vocab;

/* Reads dir/tokenizer.json (with tokenizer_config.json and config.json when
 * present). HEARTH_EUNSUPPORTED names any part that is not understood. */
int hf_vocab_load(struct hf_vocab **out, const char *dir, struct hearth_err *err);
void hf_vocab_free(struct hf_vocab *v);
/* Tokens written (config.json's vocab_size when larger than the tokenizer's). */
int32_t hf_vocab_n_tokens(const struct hf_vocab *v);
/* Sets the tokenizer.* keys llama.cpp's converter writes (out_path names the
 * output in messages). */
int hf_vocab_write_keys(const struct hf_vocab *v, struct gguf_writer *w, const char *out_path, struct hearth_err *err);

#endif /* HEARTH_HF_VOCAB_H */
