/* Chunked bump allocator; big requests get a chunk of their own. */
#include "fg_arena.h"

#include <stdint.h>
#include <string.h>

#include "fg_alloc.h"

#define ARENA_CHUNK (64 * 1024)
#define ARENA_ALIGN 16

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct fg_arena {
    struct arena_chunk *head;
    size_t used;
};

int fg_arena_new(struct fg_arena **out)
{
    struct fg_arena *a = fg_calloc(1, sizeof(*a));
    if (!a)
        return -1;
    *out = a;
    return 0;
}

void fg_arena_free(struct fg_arena *arena)
{
    if (!arena)
        return;
    struct arena_chunk *c = arena->head;
    while (c) {
        struct arena_chunk *next = c->next;
        fg_free(c);
        c = next;
    }
    fg_free(arena);
}

void *fg_arena_alloc(struct fg_arena *arena, size_t size)
{
    size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (size == 0)
        size = ARENA_ALIGN;
    struct arena_chunk *c = arena->head;
    if (!c || c->size - c->used < size) {
        size_t chunk_size = size > ARENA_CHUNK / 4 ? size : ARENA_CHUNK;
        struct arena_chunk *fresh = fg_malloc(sizeof(*fresh) + chunk_size);
        if (!fresh)
            return NULL;
        fresh->size = chunk_size;
        fresh->used = 0;
        if (c && chunk_size == size && c->size - c->used >= ARENA_ALIGN) {
            /* keep the current chunk on top: it still has room for small requests */
            fresh->next = c->next;
            c->next = fresh;
        } else {
            fresh->next = c;
            arena->head = fresh;
        }
        c = fresh;
    }
    void *p = c->data + c->used;
    c->used += size;
    arena->used += size;
    return p;
}

void *fg_arena_calloc(struct fg_arena *arena, size_t size)
{
    void *p = fg_arena_alloc(arena, size);
    if (p)
        memset(p, 0, size);
    return p;
}

void *fg_arena_memdup(struct fg_arena *arena, const void *src, size_t size)
{
    void *p = fg_arena_alloc(arena, size);
    if (p && size)
        memcpy(p, src, size);
    return p;
}

char *fg_arena_strndup(struct fg_arena *arena, const char *src, size_t len)
{
    char *p = fg_arena_alloc(arena, len + 1);
    if (p) {
        if (len)
            memcpy(p, src, len);
        p[len] = '\0';
    }
    return p;
}

size_t fg_arena_used(const struct fg_arena *arena)
{
    return arena->used;
}
