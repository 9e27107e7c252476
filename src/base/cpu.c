/* cpu.c - CPUID feature bits, checked against what the OS enabled in XCR0. */
#include <string.h>

#include "cpu.h"

#if defined(__x86_64__)
#include <cpuid.h>

static unsigned long long xgetbv0(void)
{
	unsigned int lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((unsigned long long)hi << 32) | lo;
}

void cpu_caps_detect(struct cpu_caps *caps)
{
	unsigned int a, b, c, d;
	memset(caps, 0, sizeof *caps);
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE */
		return;
	const unsigned long long xcr0 = xgetbv0();
	const bool ymm = (xcr0 & 0x6) == 0x6, zmm = ymm && (xcr0 & 0xe0) == 0xe0;
	const bool fma = c & (1u << 12), f16c = c & (1u << 29);
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return;
	caps->avx2 = ymm && (b & (1u << 5));
	caps->fma = ymm && fma;
	caps->f16c = ymm && f16c;
	caps->avx512f = zmm && (b & (1u << 16));
	caps->avx512bw = zmm && (b & (1u << 30));
	caps->avx512vl = zmm && (b & (1u << 31));
	caps->avx512vnni = zmm && (c & (1u << 11));
	if (__get_cpuid_count(7, 1, &a, &b, &c, &d))
		caps->avx512bf16 = caps->avx512f && (a & (1u << 5));
}
#else
void cpu_caps_detect(struct cpu_caps *caps)
{
	memset(caps, 0, sizeof *caps);
}
#endif
