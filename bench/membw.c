/* membw.c - memory read bandwidth with N threads: each thread sums its share
 * of a buffer far larger than the caches, repeatedly; prints the median and
 * best GB/s. The ceiling a memory-bound generation step can approach. The
 * buffer is on huge pages where the kernel gives them, as the engine's
 * repacked weights are (src/base/bigmem.c); HEARTH_SMALL_PAGES=1 measures
 * with ordinary 4 KiB pages instead.
 *   build/membw [threads=2] [MiB=1024] [reps=15] */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/base/bigmem.h"

struct part {
	const uint64_t *p;
	size_t n;
	uint64_t sum;
};

static void *reader(void *arg)
{
	struct part *t = arg;
	uint64_t s[8] = { 0 };
	for (size_t i = 0; i + 8 <= t->n; i += 8) {
		__builtin_prefetch(t->p + i + 512); /* 4 KiB ahead, as the matrix kernels ask */
		for (int k = 0; k < 8; k++)
			s[k] ^= t->p[i + k];
	}
	for (int k = 0; k < 8; k++)
		t->sum ^= s[k];
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	const int T = argc > 1 ? atoi(argv[1]) : 2, R = argc > 3 ? atoi(argv[3]) : 15;
	const size_t bytes = (size_t)(argc > 2 ? atoi(argv[2]) : 1024) << 20;
	if (T < 1 || T > 256 || R < 1 || bytes < ((size_t)1 << 20)) {
		fprintf(stderr, "usage: membw [threads] [MiB] [reps]\n");
		return 2;
	}
	const int small = getenv("HEARTH_SMALL_PAGES") && atoi(getenv("HEARTH_SMALL_PAGES"));
	uint64_t *buf = small ? malloc(bytes) : bigmem_alloc(bytes);
	double *gbs = malloc((size_t)R * sizeof *gbs);
	if (!buf || !gbs) {
		fprintf(stderr, "membw: out of memory for %zu bytes\n", bytes);
		return 1;
	}
	memset(buf, 1, bytes);
	const size_t n = bytes / 8, per = n / (size_t)T;
	uint64_t total = 0;
	for (int r = 0; r < R; r++) {
		pthread_t th[256];
		struct part parts[256];
		const double t0 = now();
		for (int i = 0; i < T; i++) {
			parts[i] = (struct part){ buf + (size_t)i * per, per, 0 };
			pthread_create(&th[i], NULL, reader, &parts[i]);
		}
		for (int i = 0; i < T; i++) {
			pthread_join(th[i], NULL);
			total ^= parts[i].sum;
		}
		gbs[r] = (double)(per * (size_t)T * 8) / (now() - t0) / 1e9;
	}
	qsort(gbs, (size_t)R, sizeof *gbs, cmp);
	printf("threads %d  buffer %zu MiB (%s pages)  read bandwidth: median %.1f GB/s, best %.1f GB/s  (%llx)\n", T, bytes >> 20,
	       small ? "4 KiB" : "huge", gbs[R / 2], gbs[R - 1], (unsigned long long)(total & 0xf));
	if (small)
		free(buf);
	else
		bigmem_free(buf, bytes);
	free(gbs);
	return 0;
}
