/* Region allocator: many small allocations, freed together in one call. Not thread-safe. */
#ifndef FG_ARENA_H
#define FG_ARENA_H

#include <stddef.h>

struct fg_arena;

int fg_arena_new(struct fg_arena **out);
void fg_arena_free(struct fg_arena *arena);
/* 16-byte aligned; NULL when memory is exhausted. Never freed piece by piece. */
void *fg_arena_alloc(struct fg_arena *arena, size_t size);
void *fg_arena_calloc(struct fg_arena *arena, size_t size);
void *fg_arena_memdup(struct fg_arena *arena, const void *src, size_t size);
/* Copies len bytes and appends a NUL. */
char *fg_arena_strndup(struct fg_arena *arena, const char *src, size_t len);
/* Bytes handed out so far (for memory accounting). */
size_t fg_arena_used(const struct fg_arena *arena);

#endif
