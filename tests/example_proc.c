/* SPDX-License-Identifier: MIT */
/*
 * Running the example programs and talking to them: see example_proc.h.
 */
#include "example_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double time_scale(void) {
  const char *s = getenv("CK_TIMEOUT_MULTIPLIER");
  double v = s != NULL ? atof(s) : 1.0;
  return v >= 1.0 ? v : 1.0;
}

double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static int ms_left(double deadline) {
  double left = deadline - now_s();
  return left <= 0 ? 0 : (int)(left * 1000) + 1;
}

int proc_start(proc_t *p, char *const argv[]) {
  int out[2], err;
  pid_t parent = getpid();

  memset(p, 0, sizeof(*p));
  p->out_fd = -1;
  snprintf(p->err_path, sizeof(p->err_path), "/tmp/tandem-example-XXXXXX");
  err = mkstemp(p->err_path);
  if (err < 0)
    return -1;
  if (pipe(out) != 0) {
    close(err);
    return -1;
  }
  fflush(NULL);
  p->pid = fork();
  if (p->pid < 0)
    return -1;
  if (p->pid == 0) {
    /* If the test dies (a failed assertion, a timeout), so does the child. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    dup2(out[1], 1);
    dup2(err, 2);
    close(out[0]);
    close(out[1]);
    close(err);
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(out[1]);
  close(err);
  p->out_fd = out[0];
  return 0;
}

int proc_read_port(proc_t *p, double timeout) {
  double deadline = now_s() + timeout * time_scale();
  struct pollfd pfd = {p->out_fd, POLLIN, 0};
  char line[256], *colon;
  size_t len = 0;
  ssize_t n;

  /* Byte by byte: whatever follows the first line stays in the pipe. */
  while (len < sizeof(line) - 1) {
    if (poll(&pfd, 1, ms_left(deadline)) <= 0)
      return -1;
    n = read(p->out_fd, line + len, 1);
    if (n <= 0)
      return -1;
    if (line[len] == '\n')
      break;
    len++;
  }
  line[len] = '\0';
  colon = strrchr(line, ':');
  if (strncmp(line, "listening on ", 13) != 0 || colon == NULL)
    return -1;
  p->port = atoi(colon + 1);
  return p->port > 0 ? 0 : -1;
}

ssize_t proc_read_output(proc_t *p, char *buf, size_t cap, double timeout) {
  double deadline = now_s() + timeout * time_scale();
  struct pollfd pfd = {p->out_fd, POLLIN, 0};
  size_t len = 0;
  ssize_t n;

  while (len < cap - 1) {
    if (poll(&pfd, 1, ms_left(deadline)) <= 0)
      return -1;
    n = read(p->out_fd, buf + len, cap - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  return (ssize_t)len;
}

char *proc_stderr(proc_t *p) {
  FILE *f = fopen(p->err_path, "r");
  size_t len = 0, cap = 4096, n;
  char *buf = malloc(cap);

  if (buf == NULL)
    abort();
  if (f != NULL) {
    while ((n = fread(buf + len, 1, cap - 1 - len, f)) > 0) {
      len += n;
      if (len == cap - 1) {
        cap *= 2;
        buf = realloc(buf, cap);
        if (buf == NULL)
          abort();
      }
    }
    fclose(f);
  }
  buf[len] = '\0';
  return buf;
}

int proc_stop(proc_t *p, int sig, double timeout) {
  double deadline = now_s() + timeout * time_scale();
  int status, rc;
  char *err;

  if (p->pid <= 0)
    return -1;
  if (sig != 0)
    kill(p->pid, sig);
  while (waitpid(p->pid, &status, WNOHANG) == 0) {
    if (now_s() > deadline) {
      kill(p->pid, SIGKILL);
      waitpid(p->pid, &status, 0);
      status = -1;
      break;
    }
    sleep_ms(5);
  }
  p->pid = 0;
  if (status == -1)
    rc = -1;
  else if (WIFEXITED(status))
    rc = WEXITSTATUS(status);
  else
    rc = 128 + WTERMSIG(status);

  err = proc_stderr(p);
  if (strstr(err, "Sanitizer") != NULL || strstr(err, "runtime error") != NULL)
    rc = -2;
  if (rc != 0 && err[0] != '\0' && (!p->quiet || rc < 0 || rc > 127))
    fprintf(stderr, "---- stderr of the example (exit %d) ----\n%s----\n", rc,
            err);
  free(err);
  unlink(p->err_path);
  if (p->out_fd >= 0)
    close(p->out_fd);
  p->out_fd = -1;
  return rc;
}

long raise_nofile(long want) {
  struct rlimit rl;

  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -1;
  if ((long)rl.rlim_cur < want) {
    rl.rlim_cur = (rlim_t)want;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
      rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return (long)rl.rlim_cur;
}

int tcp_connect(int port) {
  struct sockaddr_in addr;
  int fd;

  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int tcp_send(int fd, const void *buf, size_t len) {
  const char *p = buf;
  ssize_t n;

  while (len > 0) {
    n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

size_t tcp_read_all(int fd, char *buf, size_t cap, double timeout,
                    int *closed) {
  double deadline = now_s() + timeout * time_scale();
  struct pollfd pfd = {fd, POLLIN, 0};
  size_t len = 0;
  ssize_t n;

  *closed = 0;
  while (len < cap - 1) {
    if (poll(&pfd, 1, ms_left(deadline)) <= 0)
      break;
    n = recv(fd, buf + len, cap - 1 - len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      *closed = 1;
      break;
    }
    len += (size_t)n;
  }
  buf[len] = '\0';
  return len;
}

void tcp_reset(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(fd);
}

size_t http_response(const char *buf, size_t len, int *status,
                     const char **body, size_t *body_len) {
  const char *end = NULL, *cl;
  size_t i, head, n;

  for (i = 0; i + 3 < len; i++) {
    if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
      end = buf + i;
      break;
    }
  }
  if (end == NULL || len < 12 || strncmp(buf, "HTTP/1.1 ", 9) != 0)
    return 0;
  head = (size_t)(end - buf) + 4;
  *status = atoi(buf + 9);
  n = 0;
  for (cl = buf; cl < end; cl++) {
    if (strncmp(cl, "\r\nContent-Length: ", 18) == 0) {
      n = (size_t)strtoul(cl + 18, NULL, 10);
      break;
    }
  }
  if (len < head + n)
    return 0;
  *body = buf + head;
  *body_len = n;
  return head + n;
}

int http_request(int port, const char *method, const char *path,
                 const char *req_body, char *body, size_t cap) {
  char req[1024], resp[65536];
  const char *b;
  size_t len, blen;
  int fd, status, closed;

  fd = tcp_connect(port);
  if (fd < 0)
    return -1;
  snprintf(req, sizeof(req),
           "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
           "Content-Length: %zu\r\n\r\n%s",
           method, path, req_body ? strlen(req_body) : 0,
           req_body ? req_body : "");
  if (tcp_send(fd, req, strlen(req)) != 0) {
    close(fd);
    return -1;
  }
  len = tcp_read_all(fd, resp, sizeof(resp), 60, &closed);
  close(fd);
  if (http_response(resp, len, &status, &b, &blen) == 0)
    return -1;
  if (body != NULL && cap > 0) {
    if (blen > cap - 1)
      blen = cap - 1;
    memcpy(body, b, blen);
    body[blen] = '\0';
  }
  return status;
}

int run_cmd(const char *cmd, char *out, size_t cap) {
  FILE *f;
  size_t len = 0, n;
  int status;

  fflush(NULL);
  f = popen(cmd, "r");
  if (f == NULL)
    return -1;
  while (len < cap - 1 && (n = fread(out + len, 1, cap - 1 - len, f)) > 0)
    len += n;
  out[len] = '\0';
  status = pclose(f);
  return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
