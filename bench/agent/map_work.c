/* Overhead bench, a realistic allocation-heavy workload: each round builds a string-keyed
 * hash map of small records (key string, record, 0-4 tag strings; the bucket array grows by
 * rehashing), looks keys up, replaces some records, deletes half and tears the rest down.
 * Allocation is a large share of its CPU time, but not all of it (hashing, formatting,
 * comparing and walking the records are the rest): see agent/README.md for the measured share.
 * With THREADS > 1 the rounds are split over that many threads (a server's shape: glibc's
 * malloc then takes its multi-threaded paths with or without a profiler).
 * usage: bench_agent_map [ROUNDS [THREADS]] ; prints a checksum */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENTRIES 20000

struct record {
    char *name;
    uint32_t n_tags;
    char **tags;
    uint64_t score;
};

struct entry {
    struct entry *next;
    uint64_t hash;
    char *key;
    struct record *rec;
};

struct map {
    struct entry **buckets;
    size_t n_buckets, count;
};

static _Thread_local uint64_t rng_state = 88172645463325252ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* "prefix-<decimal>/<hex>" into buf; returns its length. */
static size_t format_key(char *buf, const char *prefix, uint64_t a, uint64_t b)
{
    size_t n = strlen(prefix);
    memcpy(buf, prefix, n);
    buf[n++] = '-';
    char tmp[24];
    size_t t = 0;
    do
        tmp[t++] = (char)('0' + a % 10);
    while ((a /= 10));
    while (t)
        buf[n++] = tmp[--t];
    buf[n++] = '/';
    for (int i = 0; i < 8; i++, b >>= 4)
        buf[n++] = "0123456789abcdef"[b & 15];
    buf[n] = '\0';
    return n;
}

static char *dup_str(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        exit(1);
    memcpy(p, s, n + 1);
    return p;
}

__attribute__((noinline)) static struct record *record_new(uint64_t seed)
{
    char buf[64];
    struct record *r = malloc(sizeof(*r));
    if (!r)
        exit(1);
    r->name = dup_str(buf, format_key(buf, "name", seed % 100000, seed >> 20));
    r->n_tags = (uint32_t)(seed >> 40) % 5;
    r->tags = r->n_tags ? calloc(r->n_tags, sizeof(char *)) : NULL;
    if (r->n_tags && !r->tags)
        exit(1);
    for (uint32_t i = 0; i < r->n_tags; i++)
        r->tags[i] = dup_str(buf, format_key(buf, "tag", i, seed >> (i * 8)));
    r->score = seed;
    return r;
}

static void record_free(struct record *r)
{
    for (uint32_t i = 0; i < r->n_tags; i++)
        free(r->tags[i]);
    free(r->tags);
    free(r->name);
    free(r);
}

static void map_grow(struct map *m)
{
    size_t nb = m->n_buckets ? m->n_buckets * 2 : 64;
    struct entry **b = calloc(nb, sizeof(*b));
    if (!b)
        exit(1);
    for (size_t i = 0; i < m->n_buckets; i++) {
        for (struct entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = nb;
}

static struct entry **map_slot(struct map *m, const char *key, uint64_t h)
{
    struct entry **pp = &m->buckets[h & (m->n_buckets - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
        pp = &(*pp)->next;
    return pp;
}

__attribute__((noinline)) static void map_put(struct map *m, const char *key, size_t len,
                                              struct record *rec)
{
    if (m->count >= m->n_buckets)
        map_grow(m);
    uint64_t h = hash_str(key);
    struct entry **pp = map_slot(m, key, h);
    if (*pp) {
        record_free((*pp)->rec);
        (*pp)->rec = rec;
        return;
    }
    struct entry *e = malloc(sizeof(*e));
    if (!e)
        exit(1);
    *e = (struct entry){.hash = h, .key = dup_str(key, len), .rec = rec};
    *pp = e;
    m->count++;
}

static struct record *map_get(struct map *m, const char *key)
{
    struct entry *e = *map_slot(m, key, hash_str(key));
    return e ? e->rec : NULL;
}

static void map_del(struct map *m, const char *key)
{
    struct entry **pp = map_slot(m, key, hash_str(key));
    struct entry *e = *pp;
    if (!e)
        return;
    *pp = e->next;
    record_free(e->rec);
    free(e->key);
    free(e);
    m->count--;
}

static void map_free(struct map *m)
{
    for (size_t i = 0; i < m->n_buckets; i++) {
        for (struct entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            record_free(e->rec);
            free(e->key);
            free(e);
        }
    }
    free(m->buckets);
}

static size_t key_of(char *buf, uint64_t id)
{
    return format_key(buf, "user", id, (id * 0x9E3779B97F4A7C15ULL) >> 32);
}

static uint64_t round_work(uint64_t base)
{
    struct map m = {0};
    char key[64];
    uint64_t sum = 0;
    for (uint64_t i = 0; i < ENTRIES; i++) {
        map_put(&m, key, key_of(key, base + i), record_new(rng()));
    }
    /* lookups of present and absent keys; sums over what they find */
    for (uint64_t i = 0; i < ENTRIES; i++) {
        uint64_t k = rng() % ENTRIES;
        key_of(key, base + k + ENTRIES / 8); /* 1 in 8 is absent */
        struct record *r = map_get(&m, key);
        if (r)
            sum += r->score + strlen(r->name);
    }
    /* walk every record: score its tags */
    for (size_t i = 0; i < m.n_buckets; i++)
        for (struct entry *e = m.buckets[i]; e; e = e->next)
            for (uint32_t t = 0; t < e->rec->n_tags; t++)
                sum += hash_str(e->rec->tags[t]) & 0xff;
    /* replace a quarter of the records, delete half of the entries, then tear down */
    for (uint64_t i = 0; i < ENTRIES; i++) {
        size_t n = key_of(key, base + i);
        if (i % 4 == 0)
            map_put(&m, key, n, record_new(rng()));
        else if (i % 2 == 1)
            map_del(&m, key);
    }
    sum += m.count;
    map_free(&m);
    return sum;
}

struct worker {
    pthread_t thread;
    long first, rounds;
    uint64_t sum;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (long r = w->first; r < w->first + w->rounds; r++) {
        rng_state = 88172645463325252ULL + (uint64_t)r;
        w->sum += round_work((uint64_t)r * 7919);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
    long threads = argc > 2 ? strtol(argv[2], NULL, 10) : 1;
    if (rounds < 1 || threads < 1 || threads > 64)
        return 2;
    struct worker w[64] = {{0}};
    uint64_t sum = 0;
    for (long t = 0; t < threads; t++) {
        w[t].first = rounds * t / threads;
        w[t].rounds = rounds * (t + 1) / threads - w[t].first;
        if (threads > 1 && pthread_create(&w[t].thread, NULL, worker_main, &w[t]))
            return 1;
    }
    if (threads == 1)
        worker_main(&w[0]);
    for (long t = 0; t < threads; t++) {
        if (threads > 1)
            pthread_join(w[t].thread, NULL);
        sum += w[t].sum;
    }
    printf("%llu\n", (unsigned long long)(sum & 0xffffffff));
    return 0;
}
