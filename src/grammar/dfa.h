/* dfa.h - matcher states numbered and their transitions remembered: a DFA
 * built lazily over the parse-stack sets of a matcher (dfa.c).
 *
 * A state here is a sorted set of stack ids with no pending UTF-8 bytes;
 * because the matcher interns stacks, equal sets are equal lists and get
 * one number. The mask walk (mask.c) steps by looking up (state, code
 * point) and only asks the matcher on a miss, so a byte the walk meets
 * again in the same state - most bytes, in practice: the inside of a
 * string, digits, the n-th character of a bounded string - costs a table
 * read. The frames of the states stay in the matcher's pool while the DFA
 * lives; gdfa_clear forgets everything (when the pool is compacted, or the
 * DFA passes its bounds). Owned by one matcher; one thread.
 */
#ifndef HEARTH_DFA_H
#define HEARTH_DFA_H

#include <stdint.h>

#define GD_DEAD (-1)
#define GD_FAIL (-2) /* a bound was hit: the caller clears the DFA and computes without it */
#define GD_MAX_STATES 8192
#define GD_MAX_WIDE (1 << 16)

struct gmatch;
struct gdfa;

struct gdfa *gdfa_new(void);
void gdfa_free(struct gdfa *d);
void gdfa_clear(struct gdfa *d);
/* The number of the state with these n sorted stack ids (GD_FAIL past the bounds). */
int32_t gdfa_state(struct gdfa *d, const int32_t *ids, int32_t n);
/* Its ids (valid until the next gdfa_state or gdfa_next). */
const int32_t *gdfa_ids(const struct gdfa *d, int32_t sid, int32_t *n);
/* The state after code point cp from sid, GD_DEAD when no stack takes it, GD_FAIL past a bound. */
int32_t gdfa_next(struct gdfa *d, struct gmatch *m, int32_t sid, uint32_t cp);

/* How many plain characters (anything but '"', '\\' and controls below 0x20)
 * in a row sid surely takes, whichever they are (at most GD_MAX_RUN; 0 when
 * unknown or none). */
#define GD_MAX_RUN 64
#define GD_RUN_STATES 128
int32_t gdfa_plain_run(struct gdfa *d, struct gmatch *m, int32_t sid, uint64_t limit);

#endif /* HEARTH_DFA_H */
