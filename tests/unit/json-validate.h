/* json-validate.h - a test-only JSON Schema validator for the keywords
 * hearth_json_schema_to_gbnf supports, written from the specification and
 * independent of the grammar code: the oracle of test_json_schema_sampled. */
#ifndef HEARTH_JSON_VALIDATE_H
#define HEARTH_JSON_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>

/* Does v satisfy schema s (root: the document $refs resolve in)? On false, why
 * holds a short reason. */
bool jv_valid(const json_t *root, const json_t *s, const json_t *v, char *why, size_t why_size);

#endif /* HEARTH_JSON_VALIDATE_H */
