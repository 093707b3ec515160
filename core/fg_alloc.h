/* The allocator every module uses, so tests can make the n-th allocation fail. */
#ifndef FG_ALLOC_H
#define FG_ALLOC_H

#include <stddef.h>

void *fg_malloc(size_t size);
void *fg_calloc(size_t count, size_t size);
void *fg_realloc(void *ptr, size_t size);
void fg_free(void *ptr);
char *fg_strdup(const char *s);
char *fg_strndup(const char *s, size_t len);

/* Test hook: make the n-th allocation from now fail (1 = the next one); 0 turns it off.
 * Returns how many allocations were made since the last call. Not thread-safe: tests only. */
unsigned long fg_alloc_fail_after(unsigned long n);

#endif
