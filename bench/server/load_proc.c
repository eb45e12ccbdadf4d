/* SPDX-License-Identifier: MIT */
/*
 * load_proc: the server processes of the load driver (see load.h): start
 * one with its stdout on a pipe, wait for "listening on HOST:PORT", stop
 * it with SIGTERM and tell how it exited; read its threads' schedstat
 * (run time, run-queue wait, times on a CPU) and nice values from /proc.
 * Linux only.
 */
#define _GNU_SOURCE /* environ */
#include "load.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT_MAX (1 << 20) /* keep at most this much of a child's stdout */

/* ---------------------------------------------------- scheduler stats */

static int read_schedstat(const char *path, uint64_t *run, uint64_t *wait,
                          uint64_t *slices) {
  unsigned long long a, b, c;
  FILE *f = fopen(path, "r");
  int ok;

  if (f == NULL)
    return -1;
  ok = fscanf(f, "%llu %llu %llu", &a, &b, &c) == 3;
  fclose(f);
  if (!ok)
    return -1;
  *run = a;
  *wait = b;
  *slices = c;
  return 0;
}

/* voluntary_ctxt_switches and nonvoluntary_ctxt_switches of a thread. */
static void read_csw(int pid, int tid, uint64_t *v, uint64_t *iv) {
  char path[96], line[128];
  unsigned long long x;
  FILE *f;

  *v = *iv = 0;
  snprintf(path, sizeof(path), "/proc/%d/task/%d/status", pid, tid);
  f = fopen(path, "r");
  if (f == NULL)
    return;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (sscanf(line, "voluntary_ctxt_switches: %llu", &x) == 1)
      *v = x;
    else if (sscanf(line, "nonvoluntary_ctxt_switches: %llu", &x) == 1)
      *iv = x;
  }
  fclose(f);
}

/* Field n (1-based, n >= 3) of /proc/PID/stat or /proc/PID/task/TID/stat
 * (path), as text into out; 0, or -1. */
static int read_stat_field(const char *path, int n, char *out, size_t cap) {
  char buf[1024], *p, *end;
  size_t len;
  FILE *f;
  int i;

  f = fopen(path, "r");
  if (f == NULL)
    return -1;
  len = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[len] = '\0';
  p = strrchr(buf, ')'); /* the name may hold spaces */
  if (p == NULL)
    return -1;
  p++; /* at the space before field 3, the state */
  for (i = 3; i < n && p != NULL; i++)
    p = strchr(p + 1, ' ');
  if (p == NULL)
    return -1;
  p++;
  end = strchr(p, ' ');
  len = end != NULL ? (size_t)(end - p) : strlen(p);
  if (len + 1 > cap)
    return -1;
  memcpy(out, p, len);
  out[len] = '\0';
  return 0;
}

/* utime + stime (fields 14, 15) of the whole process, in ns: every
 * thread's, those that have exited included.  The kernel scales the two
 * so that they add up to the threads' exact run time, then rounds to
 * clock ticks (10 ms): over a loaded window of seconds, under 1 %. */
static uint64_t proc_cpu_ns(int pid) {
  static long hz;
  char path[64], f14[32], f15[32];

  if (hz <= 0)
    hz = sysconf(_SC_CLK_TCK);
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  if (hz <= 0 || read_stat_field(path, 14, f14, sizeof(f14)) != 0 ||
      read_stat_field(path, 15, f15, sizeof(f15)) != 0)
    return 0;
  return (strtoull(f14, NULL, 10) + strtoull(f15, NULL, 10)) *
         (1000000000ull / (uint64_t)hz);
}

void snap_take(snap_t *s, int pid) {
  char path[320];
  struct dirent *e;
  DIR *d;

  s->t_ns = uv_hrtime();
  s->n = 0;
  if (read_schedstat("/proc/thread-self/schedstat", &s->self_run, &s->self_wait,
                     &s->self_slices) != 0)
    s->self_run = s->self_wait = s->self_slices = 0;
  s->main_vcsw = s->main_ivcsw = 0;
  s->proc_cpu_ns = 0;
  if (pid <= 0)
    return;
  s->proc_cpu_ns = proc_cpu_ns(pid);
  read_csw(pid, pid, &s->main_vcsw, &s->main_ivcsw);
  snprintf(path, sizeof(path), "/proc/%d/task", pid);
  d = opendir(path);
  if (d == NULL)
    return;
  while ((e = readdir(d)) != NULL && s->n < LOAD_MAX_THREADS) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", pid, e->d_name);
    if (read_schedstat(path, &s->run[s->n], &s->wait[s->n], &s->slices[s->n]) ==
        0)
      s->tid[s->n++] = atoi(e->d_name);
  }
  closedir(d);
}

void sched_add(sched_acc_t *acc, const snap_t *a, const snap_t *b, int pid) {
  unsigned i, j;

  if (b->t_ns <= a->t_ns)
    return;
  acc->secs += (double)(b->t_ns - a->t_ns) / 1e9;
  acc->self_run += b->self_run - a->self_run;
  acc->self_wait += b->self_wait - a->self_wait;
  acc->self_slices += b->self_slices - a->self_slices;
  acc->loop_vcsw += b->main_vcsw - a->main_vcsw;
  acc->loop_ivcsw += b->main_ivcsw - a->main_ivcsw;
  if (b->proc_cpu_ns >= a->proc_cpu_ns)
    acc->proc_cpu_ns += b->proc_cpu_ns - a->proc_cpu_ns;
  for (i = 0; i < b->n; i++) {
    for (j = 0; j < a->n && a->tid[j] != b->tid[i]; j++)
      ;
    /* A thread born in the window counts from zero. */
    if (b->tid[i] == pid) {
      acc->ok = 1;
      acc->loop_run += b->run[i] - (j < a->n ? a->run[j] : 0);
      acc->loop_wait += b->wait[i] - (j < a->n ? a->wait[j] : 0);
      acc->loop_slices += b->slices[i] - (j < a->n ? a->slices[j] : 0);
    } else {
      acc->others_run += b->run[i] - (j < a->n ? a->run[j] : 0);
    }
  }
}

void sched_get(const sched_acc_t *acc, sched_t *o) {
  double secs = acc->secs;

  o->ok = acc->ok;
  o->client_cpu = secs > 0 ? (double)acc->self_run / 1e9 / secs : NAN;
  o->client_wait_us = acc->self_slices > 0 ? (double)acc->self_wait / 1e3 /
                                                 (double)acc->self_slices
                                           : NAN;
  o->loop_cpu = o->loop_wait_us = o->others_cpu = NAN;
  o->loop_vcsw = o->loop_ivcsw = o->proc_cpu = NAN;
  if (!acc->ok || secs <= 0)
    return;
  o->proc_cpu = (double)acc->proc_cpu_ns / 1e9 / secs;
  o->loop_vcsw = (double)acc->loop_vcsw / secs;
  o->loop_ivcsw = (double)acc->loop_ivcsw / secs;
  o->loop_cpu = (double)acc->loop_run / 1e9 / secs;
  o->loop_wait_us = acc->loop_slices > 0 ? (double)acc->loop_wait / 1e3 /
                                               (double)acc->loop_slices
                                         : 0;
  o->others_cpu = (double)acc->others_run / 1e9 / secs;
}

/* The nice value of a thread, from field 19 of /proc/PID/task/TID/stat. */
static int thread_nice(int pid, int tid, int *nice) {
  char path[96], field[32];

  snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
  if (read_stat_field(path, 19, field, sizeof(field)) != 0)
    return -1;
  *nice = atoi(field);
  return 0;
}

/* The nice value of the server's non-main threads (the same for all of a
 * pool), or INT_MIN if it has none. */
int proc_workers_nice(int pid) {
  snap_t *s = malloc(sizeof(*s));
  int nice, out = INT_MIN;
  unsigned i;

  if (s == NULL)
    return INT_MIN;
  snap_take(s, pid);
  for (i = 0; i < s->n; i++)
    if (s->tid[i] != pid && thread_nice(pid, s->tid[i], &nice) == 0 &&
        (out == INT_MIN || nice > out))
      out = nice;
  free(s);
  return out;
}

void proc_rss(int pid, double *rss, double *peak) {
  char path[64], line[128];
  unsigned long long kb;
  FILE *f;

  *rss = *peak = NAN;
  snprintf(path, sizeof(path), "/proc/%d/status", pid);
  f = fopen(path, "r");
  if (f == NULL)
    return;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
      *rss = (double)kb * 1024;
    else if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
      *peak = (double)kb * 1024;
  }
  fclose(f);
}

/* ---------------------------------------------------------- processes */

static char discard[4096];

static void on_proc_exit(uv_process_t *p, int64_t status, int sig) {
  proc_t *pr = p->data;

  pr->exited = 1;
  pr->exit_status = status;
  pr->term_signal = sig;
}

static void on_proc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  proc_t *pr = h->data;
  char *b;

  (void)suggested;
  if (pr->cap - pr->len < 4096 && pr->cap < OUT_MAX) {
    b = realloc(pr->buf, pr->cap * 2);
    if (b != NULL) {
      pr->buf = b;
      pr->cap *= 2;
    }
  }
  if (pr->cap - pr->len > 1)
    *buf = uv_buf_init(pr->buf + pr->len, (unsigned)(pr->cap - pr->len - 1));
  else
    *buf = uv_buf_init(discard, sizeof(discard));
}

static void on_proc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  proc_t *pr = s->data;

  if (nread < 0) {
    pr->out_eof = 1;
    uv_read_stop(s);
    return;
  }
  if (nread > 0 && buf->base == pr->buf + pr->len) {
    pr->len += (size_t)nread;
    pr->buf[pr->len] = '\0';
  }
}

static void on_proc_timer(uv_timer_t *t) {
  ((proc_t *)t->data)->timed_out = 1;
}

static void on_proc_closed(uv_handle_t *h) {
  ((proc_t *)h->data)->handles--;
}

int proc_spawn(proc_t *pr, uv_loop_t *loop, char *const *argv, char **env,
               int restore_nice) {
  uv_process_options_t opt;
  uv_stdio_container_t stdio[3];
  int r;

  memset(pr, 0, sizeof(*pr));
  pr->loop = loop;
  pr->cap = 4096;
  pr->buf = malloc(pr->cap);
  if (pr->buf == NULL)
    return UV_ENOMEM;
  pr->buf[0] = '\0';
  uv_pipe_init(loop, &pr->out, 0);
  uv_timer_init(loop, &pr->timer);
  pr->proc.data = pr->out.data = pr->timer.data = pr;
  memset(&opt, 0, sizeof(opt));
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)&pr->out;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  opt.file = argv[0];
  opt.args = (char **)argv;
  opt.env = env;
  opt.stdio = stdio;
  opt.stdio_count = 3;
  opt.exit_cb = on_proc_exit;
  /* The child inherits the calling thread's nice value at fork. */
  if (restore_nice != 0)
    (void)setpriority(PRIO_PROCESS, 0, 0);
  r = uv_spawn(loop, &pr->proc, &opt);
  if (restore_nice != 0)
    (void)setpriority(PRIO_PROCESS, 0, restore_nice);
  pr->handles = 3; /* the process handle too, even if uv_spawn failed */
  pr->spawned = r == 0 && pr->proc.pid > 0;
  if (r == 0)
    r = uv_read_start((uv_stream_t *)&pr->out, on_proc_alloc, on_proc_read);
  return r;
}

static int proc_has_port(proc_t *pr) {
  return pr->exited || strstr(pr->buf, "listening on ") != NULL;
}

static int proc_has_exited(proc_t *pr) {
  return pr->exited && pr->out_eof;
}

static int proc_wait(proc_t *pr, int (*done)(proc_t *), uint64_t ms);

int proc_wait_port(proc_t *pr, uint64_t ms) {
  return proc_wait(pr, proc_has_port, ms);
}

int proc_wait_exit(proc_t *pr, uint64_t ms) {
  return proc_wait(pr, proc_has_exited, ms);
}

/* Runs the loop until done(pr) or ms pass; returns 0 if done. */
static int proc_wait(proc_t *pr, int (*done)(proc_t *), uint64_t ms) {
  pr->timed_out = 0;
  uv_timer_start(&pr->timer, on_proc_timer, ms, 0);
  while (!done(pr) && !pr->timed_out)
    uv_run(pr->loop, UV_RUN_ONCE);
  uv_timer_stop(&pr->timer);
  return done(pr) ? 0 : -1;
}

/* The port of "listening on HOST:PORT", or -1. */
int proc_port(const proc_t *pr) {
  const char *p = strstr(pr->buf, "listening on "), *colon = NULL;

  if (p == NULL)
    return -1;
  for (; *p != '\0' && *p != '\n'; p++)
    if (*p == ':')
      colon = p;
  return colon != NULL ? atoi(colon + 1) : -1;
}

int proc_stop(proc_t *pr, uint64_t timeout_ms) {
  /* Never kill(0, ...): that is our whole process group. */
  if (!pr->spawned)
    return -1;
  if (!pr->exited) {
    uv_process_kill(&pr->proc, SIGTERM);
    if (proc_wait(pr, proc_has_exited, timeout_ms) != 0) {
      uv_process_kill(&pr->proc, SIGKILL);
      (void)proc_wait(pr, proc_has_exited, 2000);
      return -1;
    }
  }
  return pr->term_signal != 0 ? 128 + pr->term_signal : (int)pr->exit_status;
}

void proc_release(proc_t *pr) {
  uv_close((uv_handle_t *)&pr->proc, on_proc_closed);
  uv_close((uv_handle_t *)&pr->out, on_proc_closed);
  uv_close((uv_handle_t *)&pr->timer, on_proc_closed);
  while (pr->handles > 0)
    uv_run(pr->loop, UV_RUN_ONCE);
  free(pr->buf);
  pr->buf = NULL;
}

char **proc_env_with(const char *assign) {
  size_t n, i, j, name = strcspn(assign, "=") + 1;
  char **env;

  for (n = 0; environ[n] != NULL; n++)
    ;
  env = calloc(n + 2, sizeof(*env));
  if (env == NULL)
    return NULL;
  for (i = j = 0; i < n; i++)
    if (strncmp(environ[i], assign, name) != 0)
      env[j++] = environ[i];
  env[j] = (char *)assign;
  return env;
}

/* struct sched_attr of sched_setattr(2), which glibc 2.36 does not wrap. */
typedef struct {
  uint32_t size, policy;
  uint64_t flags;
  int32_t nice;
  uint32_t priority;
  uint64_t runtime, deadline, period;
  uint32_t util_min, util_max;
} attr_t;

int proc_set_slice(int pid, int tid, uint64_t ns) {
  attr_t a;
  int nice;

  if (thread_nice(pid, tid, &nice) != 0)
    return -ESRCH;
  memset(&a, 0, sizeof(a));
  a.size = sizeof(a);
  a.policy = SCHED_OTHER;
  a.nice = nice;
  a.runtime = ns; /* the slice of a fair task, Linux 6.12+ */
  return syscall(SYS_sched_setattr, tid, &a, 0) == 0 ? 0 : -errno;
}

int proc_workers_sched_idle(int pid) {
  struct sched_param param = {0};
  snap_t *s = malloc(sizeof(*s));
  unsigned i;
  int n = 0;

  if (s == NULL)
    return -ENOMEM;
  snap_take(s, pid);
  for (i = 0; i < s->n; i++) {
    if (s->tid[i] == pid)
      continue;
    if (sched_setscheduler(s->tid[i], SCHED_IDLE, &param) != 0) {
      n = -errno;
      break;
    }
    n++;
  }
  free(s);
  return n;
}

int proc_spinners_start(unsigned n, int *pids) {
  struct sched_param param = {0};
  volatile unsigned long spin = 0;
  unsigned i;
  pid_t pid;
  int err;

  for (i = 0; i < n; i++) {
    pid = fork();
    if (pid == 0) {
      /* The child only spins: nothing of the parent's (its loop) is used. */
      if (sched_setscheduler(0, SCHED_IDLE, &param) != 0)
        _exit(1);
      for (;;)
        spin++;
    }
    if (pid < 0) {
      err = -errno;
      proc_spinners_stop(i, pids);
      return err;
    }
    pids[i] = (int)pid;
  }
  return 0;
}

void proc_spinners_stop(unsigned n, const int *pids) {
  unsigned i;

  for (i = 0; i < n; i++)
    kill(pids[i], SIGKILL);
  for (i = 0; i < n; i++)
    while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
      ;
}
