/* Helpers for the unit tests: files, the corpus, temporary directories. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fg_alloc.h"

uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct fg_buf buf;
    fg_buf_init(&buf, 0);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (fg_buf_append(&buf, chunk, n) != 0)
            break;
    fclose(f);
    return fg_buf_steal(&buf, len);
}

const char *tu_corpus_path(const char *name, char *buf, size_t bufsize)
{
    const char *root = getenv("FG_CORPUS");
    if (!root || !*root)
        root = "../shared/testdata";
    snprintf(buf, bufsize, "%s/pprof/%s", root, name);
    if (access(buf, R_OK) != 0)
        return NULL;
    return buf;
}

const char *tu_tempdir(char *buf, size_t bufsize)
{
    snprintf(buf, bufsize, "/tmp/fg-test-XXXXXX");
    return mkdtemp(buf);
}

void tu_rmtree(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", path);
}
