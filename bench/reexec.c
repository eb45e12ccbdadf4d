/* SPDX-License-Identifier: MIT */
/* reexec: run this program again with one variable set, capture stdout. */
#include "reexec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "stats.h"

extern char **environ;

/* environ without `name`, plus var ("name=value", built in a malloc()ed
 * block that *var_out points at).  NULL when memory runs out. */
static char **env_with(const char *name, const char *value, char **var_out) {
  size_t namelen;
  size_t count;
  size_t i;
  size_t j;
  char **env;
  char *var;

  namelen = strlen(name);
  for (count = 0; environ[count] != NULL; count++)
    ;
  env = calloc(count + 2, sizeof(*env));
  var = malloc(namelen + strlen(value) + 2);
  if (env == NULL || var == NULL) {
    free(env);
    free(var);
    return NULL;
  }
  for (i = 0, j = 0; i < count; i++)
    if (strncmp(environ[i], name, namelen) != 0 || environ[i][namelen] != '=')
      env[j++] = environ[i];
  strcpy(var, name);
  var[namelen] = '=';
  strcpy(var + namelen + 1, value);
  env[j] = var;
  *var_out = var;
  return env;
}

static int spawn_child(pid_t *pid, char *const argv[], char **env, int out_fd) {
  posix_spawn_file_actions_t fa;
  int rc;

  rc = posix_spawn_file_actions_init(&fa);
  if (rc != 0)
    return uv_translate_sys_error(rc);
  rc = posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
  if (rc == 0)
    rc = posix_spawn(pid, "/proc/self/exe", &fa, NULL, argv, env);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? 0 : uv_translate_sys_error(rc);
}

/* Reads fd to its end into buf (NUL-terminated), for at most timeout_ms. */
static int read_all(int fd, char *buf, size_t cap, int timeout_ms) {
  struct pollfd pfd;
  uint64_t deadline;
  uint64_t now;
  size_t len;
  ssize_t n;
  int rc;

  deadline = stats_now_ns() + (uint64_t)timeout_ms * 1000000u;
  for (len = 0;;) {
    now = stats_now_ns();
    if (now >= deadline)
      return UV_ETIMEDOUT;
    pfd.fd = fd;
    pfd.events = POLLIN;
    rc = poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
    if (rc < 0 && errno != EINTR)
      return uv_translate_sys_error(errno);
    if (rc <= 0)
      continue;
    if (len + 1 >= cap)
      return UV_ENOBUFS;
    n = read(fd, buf + len, cap - len - 1);
    if (n < 0 && errno != EINTR)
      return uv_translate_sys_error(errno);
    if (n == 0)
      break;
    if (n > 0)
      len += (size_t)n;
  }
  buf[len] = '\0';
  return 0;
}

/* Reaps the child; returns its exit status or 128 + signal, -1 on error. */
static int wait_child(pid_t pid) {
  int status;

  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

int reexec_capture(char *const argv[], const char *name, const char *value,
                   char *buf, size_t cap, int timeout_ms, int *exit_code) {
  char **env;
  char *var;
  pid_t pid;
  int fds[2];
  int err;

  *exit_code = -1;
  if (cap == 0)
    return UV_ENOBUFS;
  env = env_with(name, value, &var);
  if (env == NULL)
    return UV_ENOMEM;
  err = 0;
  if (pipe(fds) != 0)
    err = uv_translate_sys_error(errno);
  if (err == 0) {
    /* Only the dup2()ed copy of the write end, its stdout, reaches the
     * child, so we see end-of-file when it exits. */
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    err = spawn_child(&pid, argv, env, fds[1]);
    close(fds[1]);
    if (err == 0) {
      err = read_all(fds[0], buf, cap, timeout_ms);
      if (err != 0)
        kill(pid, SIGKILL);
      *exit_code = wait_child(pid);
      if (err == 0 && *exit_code != 0)
        err = UV_EIO;
    }
    close(fds[0]);
  }
  free(env);
  free(var);
  return err;
}
