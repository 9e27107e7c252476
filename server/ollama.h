/*
 * ollama.h - what Ollama's endpoints (api-ollama.c) share, internal to server/:
 *
 *   ollama-wire.c  Ollama's requests read into the OpenAI path's fields (options,
 *                  format, think, keep_alive, messages), and its NDJSON replies
 *   ollama-info.c  models described as Ollama lists them, from their GGUF files
 *
 * Errors use Ollama's shape {"error": "..."} (rp->ollama, set by request.c).
 */
#ifndef HEARTH_SERVER_OLLAMA_H
#define HEARTH_SERVER_OLLAMA_H

#include "openai.h"

/* The Ollama release whose API this follows (clients compare it to enable features). */
#define OLLAMA_API_VERSION "0.9.0"

/* ollama-wire.c */
/* An OpenAI-shaped request body (new reference in *out) from an Ollama one:
 * chat (messages) or generate (prompt, system: as one user turn, unless raw),
 * the options, format and think; false after an error reply naming the field. */
bool ollama_wire_body(json_t *body, bool chat, json_t **out, struct reply *rp);
/* keep_alive (seconds as a number, or a duration "5m", "1h30m", "0", "-1") into
 * *keep_s (-1: absent: the server's default; INFINITY: forever); false after a 400. */
bool ollama_wire_keep_alive(json_t *body, double *keep_s, struct reply *rp);
/* Sets st to write Ollama's NDJSON (chat: messages, else generate's "response"). */
void ollama_wire_stream(struct stream *st, bool chat);
/* The whole answer of a finished st as one Ollama reply object; NULL when out of memory. */
json_t *ollama_wire_reply(struct stream *st);
/* A reply without generation: the model loaded (or unloaded: done_reason). */
json_t *ollama_wire_done(struct served_model *sm, bool chat, const char *done_reason);
/* The time now as Ollama writes it (RFC 3339 with nanoseconds, UTC) into buf. */
void ollama_wire_time(char *buf, size_t size, double unix_s);

/* ollama-info.c */
/* {format, family, families, parameter_size, quantization_level} of sm's file (new reference), or NULL. */
json_t *ollama_info_details(struct served_model *sm);
/* /api/show's reply for sm: template, details, model_info (arrays whole up
 * to a bound when verbose, else null), capabilities; NULL after an error reply. */
json_t *ollama_info_show(struct served_model *sm, bool verbose, struct reply *rp);

#endif /* HEARTH_SERVER_OLLAMA_H */
