/* Guest program for tests/e2e/test_unicorn_smp.py: one thread pinned to each online CPU,
 * all hammering the same counters, so LL/SC atomics and a futex-based mutex are exercised
 * across vCPUs at the same time.  Prints one result line; exit status 0 only if every total
 * is exact.  Built static with -mno-outline-atomics so the atomics are LDXR/STXR loops.
 *
 * usage: stress THREADS ITERATIONS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_THREADS 64
#define MUTEX_EVERY 8

static unsigned long atomic_counter;
static unsigned long mutex_counter;
static volatile unsigned long plain_counter;  /* racy on purpose: shows real interleaving */
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t start_line;
static long iterations;
static int ran_on_cpu[MAX_THREADS];

static void *worker(void *arg)
{
    long index = (long)arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(index, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
        ran_on_cpu[index] = -1;
    pthread_barrier_wait(&start_line);
    for (long i = 0; i < iterations; i++) {
        __atomic_fetch_add(&atomic_counter, 1, __ATOMIC_SEQ_CST);
        plain_counter = plain_counter + 1;
        if (i % MUTEX_EVERY == 0) {
            pthread_mutex_lock(&mutex);
            mutex_counter++;
            pthread_mutex_unlock(&mutex);
        }
    }
    if (ran_on_cpu[index] == 0)
        ran_on_cpu[index] = sched_getcpu() + 1;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    long threads = atol(argv[1]);
    iterations = atol(argv[2]);
    if (threads < 1 || threads > MAX_THREADS || iterations < 1)
        return 2;
    pthread_t ids[MAX_THREADS];
    pthread_barrier_init(&start_line, NULL, threads);
    for (long t = 0; t < threads; t++)
        if (pthread_create(&ids[t], NULL, worker, (void *)t) != 0)
            return 3;
    for (long t = 0; t < threads; t++)
        pthread_join(ids[t], NULL);

    unsigned long expected_atomic = threads * iterations;
    unsigned long expected_mutex = threads * ((iterations + MUTEX_EVERY - 1) / MUTEX_EVERY);
    int pinned = 1;
    printf("STRESS threads=%ld atomic=%lu/%lu mutex=%lu/%lu plain=%lu cpus=",
           threads, atomic_counter, expected_atomic, mutex_counter, expected_mutex, plain_counter);
    for (long t = 0; t < threads; t++) {
        printf("%s%d", t ? "," : "", ran_on_cpu[t] - 1);
        if (ran_on_cpu[t] - 1 != t)
            pinned = 0;
    }
    int ok = atomic_counter == expected_atomic && mutex_counter == expected_mutex && pinned;
    printf(" %s\n", ok ? "STRESS-OK" : "STRESS-FAILED");
    return ok ? 0 : 1;
}
