/* Thin wrappers over malloc with a failure-injection counter for tests. */
#include "fg_alloc.h"

#include <stdlib.h>
#include <string.h>

static unsigned long fail_at;   /* 0 = never */
static unsigned long alloc_count;

static int should_fail(void)
{
    if (!fail_at)
        return 0;
    alloc_count++;
    return alloc_count == fail_at;
}

unsigned long fg_alloc_fail_after(unsigned long n)
{
    unsigned long made = alloc_count;
    fail_at = n;
    alloc_count = 0;
    return made;
}

void *fg_malloc(size_t size)
{
    return should_fail() ? NULL : malloc(size ? size : 1);
}

void *fg_calloc(size_t count, size_t size)
{
    return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *fg_realloc(void *ptr, size_t size)
{
    return should_fail() ? NULL : realloc(ptr, size ? size : 1);
}

void fg_free(void *ptr)
{
    free(ptr);
}

char *fg_strndup(const char *s, size_t len)
{
    char *copy = fg_malloc(len + 1);
    if (copy) {
        memcpy(copy, s, len);
        copy[len] = '\0';
    }
    return copy;
}

char *fg_strdup(const char *s)
{
    return fg_strndup(s, strlen(s));
}
