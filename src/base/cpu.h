/* cpu.h - what the CPU and the OS let us run, from CPUID and XGETBV. */
#ifndef HEARTH_CPU_H
#define HEARTH_CPU_H

#include <stdbool.h>

struct cpu_caps {
	bool avx2, fma, f16c;                        /* with the OS saving YMM state */
	bool avx512f, avx512bw, avx512vl, avx512vnni; /* with the OS saving ZMM state */
	bool avx512bf16;                              /* bfloat16 dot products (vdpbf16ps) */
};

/* Fills caps (all false on CPUs other than x86-64). */
void cpu_caps_detect(struct cpu_caps *caps);

#endif /* HEARTH_CPU_H */
