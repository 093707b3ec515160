/* Shared helpers for the cmocka unit tests. */
#ifndef FG_TESTUTIL_H
#define FG_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fg_buf.h"

/* Reads a whole file; returns NULL (and fails nothing) when it is absent. fg_free it. */
uint8_t *tu_read_file(const char *path, size_t *len);
/* Path of a corpus file ($FG_CORPUS/pprof/NAME), or NULL when the corpus is absent
 * (a fresh clone without ../shared): callers skip with a message then. */
const char *tu_corpus_path(const char *name, char *buf, size_t bufsize);
/* A fresh empty directory under /tmp; returns its path in buf. */
const char *tu_tempdir(char *buf, size_t bufsize);
/* Removes a directory tree made by tu_tempdir. */
void tu_rmtree(const char *path);

#endif
