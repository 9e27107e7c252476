/* kern.h - the per-type kernel table: how each tensor type converts to float
 * and takes a dot product with activations.
 *
 * A matrix-vector product over weights of type T first converts the
 * activations to ops[T].dot_type (once per row of activations), then calls
 * ops[T].vec_dot for each weight row. The table is filled from the scalar
 * reference kernels (quant-ref.c); faster ISA-specific entries replace them
 * at start-up (a later step).
 */
#ifndef HEARTH_KERN_H
#define HEARTH_KERN_H

#include <stdint.h>

typedef void (*kern_to_float_fn)(const void *x, float *y, int64_t n);
typedef void (*kern_from_float_fn)(const float *x, void *y, int64_t n);
/* *s = dot of n elements: x of the weight type, y of dot_type. */
typedef void (*kern_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);

struct qtype_ops {
	kern_to_float_fn to_float;
	int dot_type;
	kern_from_float_fn dot_from_float; /* F32 -> dot_type */
	kern_vec_dot_fn vec_dot;
};

/* The ops of type, or NULL when hearth cannot compute with it. */
const struct qtype_ops *kern_ops(int type);

#endif /* HEARTH_KERN_H */
