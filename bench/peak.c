/* peak.c - the arithmetic ceiling: multiply-adds per second per thread with N
 * threads at once, for the instructions the kernels are built on (AVX-512
 * VNNI vpdpbusd: 64 8-bit multiply-adds; AVX-512 and AVX2 FMA: 16 / 8 f32).
 * Twelve independent accumulators hide each instruction's latency, so the
 * figure is the issue rate. What prompt processing and batched decoding are
 * bounded by (RESULTS.md compares them with it).
 *   build/peak [threads=2] */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITERS 100000000L
#define ACC 12
/* the twelve accumulators written out, so they stay in registers at -O2 */
#define TWELVE(op, f) op(0, f) op(1, f) op(2, f) op(3, f) op(4, f) op(5, f) op(6, f) op(7, f) op(8, f) op(9, f) op(10, f) op(11, f)
#define STEP(k, f) a[k] = f(a[k], w, x);

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct job {
	int kind;
	double macs_per_s;
	int sink;
};

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static int run_dpbusd(double *rate)
{
	__m512i a[ACC];
	for (int i = 0; i < ACC; i++)
		a[i] = _mm512_set1_epi32(i);
	__m512i w = _mm512_set1_epi8(3), x = _mm512_set1_epi8(5);
	const double t0 = now();
	for (long i = 0; i < ITERS; i++) {
		TWELVE(STEP, _mm512_dpbusd_epi32)
		__asm__ volatile("" : "+v"(w), "+v"(x));
	}
	*rate = (double)ITERS * ACC * 64 / (now() - t0);
	for (int i = 1; i < ACC; i++)
		a[0] = _mm512_add_epi32(a[0], a[i]);
	return _mm512_reduce_add_epi32(a[0]) & 1;
}

/* The f32 FMA runs, one per vector width: name, target, vector type, lanes,
 * and the set1 / fmadd / add / store intrinsics of that width. */
#define DEFINE_FMA_RUN(name, isa, vec, lanes, set1, fmadd, add, store)          \
	__attribute__((target(isa))) static int name(double *rate)               \
	{                                                                         \
		vec a[ACC];                                                       \
		for (int i = 0; i < ACC; i++)                                     \
			a[i] = set1((float)i);                                    \
		vec w = set1(0.999999f), x = set1(1e-7f);                         \
		const double t0 = now();                                          \
		for (long i = 0; i < ITERS; i++) {                                \
			TWELVE(STEP, fmadd)                                       \
			__asm__ volatile("" : "+v"(w), "+v"(x));                  \
		}                                                                 \
		*rate = (double)ITERS * ACC * (lanes) / (now() - t0);             \
		for (int i = 1; i < ACC; i++)                                     \
			a[0] = add(a[0], a[i]);                                   \
		float f[lanes];                                                   \
		store(f, a[0]);                                                   \
		return f[0] + f[(lanes) - 1] > 0;                                 \
	}
DEFINE_FMA_RUN(run_fma512, "avx512f", __m512, 16, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps)
DEFINE_FMA_RUN(run_fma256, "avx2,fma", __m256, 8, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps)

static void *worker(void *arg)
{
	struct job *j = arg;
	j->sink = j->kind == 0 ? run_dpbusd(&j->macs_per_s) : j->kind == 1 ? run_fma512(&j->macs_per_s)
									  : run_fma256(&j->macs_per_s);
	return NULL;
}

int main(int argc, char **argv)
{
	const int T = argc > 1 ? atoi(argv[1]) : 2;
	if (T < 1 || T > 256) {
		fprintf(stderr, "usage: peak [threads]\n");
		return 2;
	}
	__builtin_cpu_init();
	const char *names[] = { "vpdpbusd zmm (8-bit)", "vfmadd zmm (f32)", "vfmadd ymm (f32)" };
	const int have[] = { __builtin_cpu_supports("avx512vnni"), __builtin_cpu_supports("avx512f"),
			     __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") };
	printf("| instruction | threads | G multiply-adds/s per thread | all threads |\n|---|---:|---:|---:|\n");
	for (int kind = 0; kind < 3; kind++) {
		if (!have[kind])
			continue;
		pthread_t th[256];
		struct job jobs[256];
		for (int i = 0; i < T; i++) {
			jobs[i] = (struct job){ .kind = kind };
			pthread_create(&th[i], NULL, worker, &jobs[i]);
		}
		double sum = 0, lo = 1e30;
		int sink = 0;
		for (int i = 0; i < T; i++) {
			pthread_join(th[i], NULL);
			sum += jobs[i].macs_per_s;
			lo = jobs[i].macs_per_s < lo ? jobs[i].macs_per_s : lo;
			sink ^= jobs[i].sink;
		}
		printf("| %s | %d | %.1f (slowest) | %.1f |\n", names[kind], T, lo / 1e9, sum / 1e9);
		if (sink < 0) /* never: keeps the accumulators' results alive */
			return 1;
	}
	return 0;
}
