/*
 * renice.h: scheduling hints for worker threads.
 */
#ifndef TANDEM_RENICE_H
#define TANDEM_RENICE_H

/* Calling thread only: adds `nice` to its nice value (Linux sets it per
 * thread), so that on a busy machine the kernel prefers the loop thread
 * when it wakes.  Returns 0 or a negative libuv error code. */
int tandem__thread_renice(int nice);

#endif /* TANDEM_RENICE_H */
