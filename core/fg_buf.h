/* Growable byte buffer with a hard size limit: appends fail instead of growing forever. */
#ifndef FG_BUF_H
#define FG_BUF_H

#include <stddef.h>
#include <stdint.h>

struct fg_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t limit; /* 0 = no limit */
};

/* A zeroed struct fg_buf is a valid empty buffer without limit. */
void fg_buf_init(struct fg_buf *buf, size_t limit);
void fg_buf_free(struct fg_buf *buf);
/* Makes room for extra more bytes; FG_ETOOBIG past the limit, FG_ENOMEM. */
int fg_buf_reserve(struct fg_buf *buf, size_t extra);
int fg_buf_append(struct fg_buf *buf, const void *data, size_t len);
int fg_buf_append_str(struct fg_buf *buf, const char *s);
int fg_buf_printf(struct fg_buf *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the bytes to the caller (fg_free them) and resets buf. */
uint8_t *fg_buf_steal(struct fg_buf *buf, size_t *len);

#endif
