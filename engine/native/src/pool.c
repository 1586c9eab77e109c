/* See pool.h. Workers sleep on a condition variable between jobs. A job lives on its caller's
 * stack; a worker that joins it counts itself in `users`, and the caller returns only when every
 * part has finished and no worker still holds the job, so no thread ever touches a stale job. */
#define _GNU_SOURCE
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#define MAX_THREADS 16

typedef struct {
  pool_task fn;
  void *ctx;
  int parts;
  atomic_int next; /* the next unclaimed part */
  int pending;     /* parts not yet finished (under lock) */
  int users;       /* workers inside this job (under lock) */
} job_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t caller = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */

static int wanted = 1;  /* threads asked for, caller included */
static int started = 0; /* workers running */
static unsigned long generation = 0;
static job_t *current; /* the job workers may join, or NULL */

/* Claim and run parts until none are left; returns how many this thread ran. */
static int drain(job_t *j) {
  int ran = 0;
  for (int p; (p = atomic_fetch_add(&j->next, 1)) < j->parts; ran++) j->fn(j->ctx, p);
  return ran;
}

static void *worker(void *arg) {
  (void)arg;
  unsigned long seen = 0;
  pthread_mutex_lock(&lock);
  for (;;) {
    while (generation == seen) pthread_cond_wait(&wake, &lock);
    seen = generation;
    job_t *j = current;
    if (!j) continue;
    j->users++;
    pthread_mutex_unlock(&lock);
    const int ran = drain(j);
    pthread_mutex_lock(&lock);
    j->pending -= ran;
    j->users--;
    if (j->pending == 0 && j->users == 0) pthread_cond_signal(&done);
  }
  return NULL;
}

void pool_set_threads(int n) {
  if (n < 1) n = 1;
  if (n > MAX_THREADS) n = MAX_THREADS;
  pthread_mutex_lock(&caller);
  pthread_mutex_lock(&lock);
  wanted = n;
  while (started < wanted - 1) {
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) break;
    pthread_detach(t);
    started++;
  }
  if (started < wanted - 1) wanted = started + 1;
  pthread_mutex_unlock(&lock);
  pthread_mutex_unlock(&caller);
}

int pool_threads(void) { return wanted; }

void pool_run(pool_task fn, void *ctx, int parts) {
  if (parts <= 0) return;
  if (parts == 1 || wanted <= 1 || pthread_mutex_trylock(&caller) != 0) {
    for (int p = 0; p < parts; p++) fn(ctx, p);
    return;
  }
  job_t j = {.fn = fn, .ctx = ctx, .parts = parts, .pending = parts, .users = 0};
  atomic_init(&j.next, 0);
  pthread_mutex_lock(&lock);
  current = &j;
  generation++;
  pthread_cond_broadcast(&wake);
  pthread_mutex_unlock(&lock);
  const int ran = drain(&j);
  pthread_mutex_lock(&lock);
  j.pending -= ran;
  while (j.pending > 0 || j.users > 0) pthread_cond_wait(&done, &lock);
  current = NULL;
  pthread_mutex_unlock(&lock);
  pthread_mutex_unlock(&caller);
}
