/* SPDX-License-Identifier: MIT */
/*
 * threads_named: how many threads of this process carry a name starting
 * with a prefix ("tandem-w", "tandem-b"), read from /proc/self/task (Linux).
 * A thread that has just been joined may still be listed for a moment.
 */
#ifndef THREADS_NAMED_H
#define THREADS_NAMED_H

/* Fails the test if /proc/self/task cannot be read. */
unsigned threads_named(const char *prefix);

#endif /* THREADS_NAMED_H */
