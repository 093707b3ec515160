/* A minimal HTTP/1.1 client for the agent's uploads: one POST per connection over a plain
 * TCP socket, every step bounded by a deadline. No libcurl: the agent is preloaded into
 * arbitrary programs and should not bring a TLS stack, a resolver thread pool or a second
 * copy of libcurl (with its global init) into them. */
#include "agent_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_buf.h"
#include "fg_text.h"

int fg__url_parse(const char *base, struct fg__url *u, struct fg_err *err)
{
    memset(u, 0, sizeof(*u));
    if (strncmp(base, "https://", 8) == 0)
        return fg_err_set(err, FG_EUNSUPPORTED,
                          "https is not supported by the agent (send to a local gateway "
                          "over http)");
    if (strncmp(base, "http://", 7) != 0)
        return fg_err_set(err, FG_EINVAL, "must start with http://");
    const char *h = base + 7, *end = h + strcspn(h, "/?#");
    const char *colon = NULL;
    if (*h == '[') { /* IPv6 literal */
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb)
            return fg_err_set(err, FG_EINVAL, "unterminated IPv6 address");
        if ((size_t)(rb - h - 1) >= sizeof(u->host) || rb == h + 1)
            return fg_err_set(err, FG_EINVAL, "bad host");
        memcpy(u->host, h + 1, (size_t)(rb - h - 1));
        if (rb + 1 < end && rb[1] == ':')
            colon = rb + 1;
        else if (rb + 1 != end)
            return fg_err_set(err, FG_EINVAL, "bad host");
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        const char *he = colon ? colon : end;
        if (he == h || (size_t)(he - h) >= sizeof(u->host))
            return fg_err_set(err, FG_EINVAL, "missing or too long host");
        memcpy(u->host, h, (size_t)(he - h));
    }
    if (colon) {
        size_t plen = (size_t)(end - colon - 1);
        long port = 0;
        if (plen == 0 || plen > 5)
            return fg_err_set(err, FG_EINVAL, "bad port");
        for (size_t i = 0; i < plen; i++) {
            char c = colon[1 + i];
            if (c < '0' || c > '9')
                return fg_err_set(err, FG_EINVAL, "bad port");
            port = port * 10 + (c - '0');
        }
        if (port < 1 || port > 65535)
            return fg_err_set(err, FG_EINVAL, "port out of range");
        snprintf(u->port, sizeof(u->port), "%ld", port);
    } else {
        snprintf(u->port, sizeof(u->port), "80");
    }
    if (*end == '?' || *end == '#')
        return fg_err_set(err, FG_EINVAL, "query or fragment not allowed");
    size_t plen = strlen(end);
    while (plen && end[plen - 1] == '/')
        plen--;
    for (size_t i = 0; i < plen; i++)
        if ((unsigned char)end[i] <= ' ' || end[i] == 0x7f)
            return fg_err_set(err, FG_EINVAL, "bad character in path");
    if (plen + sizeof("/v1development/profiles") > sizeof(u->path))
        return fg_err_set(err, FG_EINVAL, "path too long");
    memcpy(u->path, end, plen);
    memcpy(u->path + plen, "/v1development/profiles", sizeof("/v1development/profiles"));
    return 0;
}

static bool token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int fg__headers_parse(const char *spec, char **out, struct fg_err *err)
{
    struct fg_buf b;
    fg_buf_init(&b, 64 * 1024);
    const char *p = spec;
    int rc;
    *out = NULL;
    while (*p) {
        const char *item = p, *comma = p + strcspn(p, ",");
        const char *eq = memchr(item, '=', (size_t)(comma - item));
        while (item < comma && (*item == ' ' || *item == '\t'))
            item++;
        if (item == comma) { /* empty item: "a=b,,c=d" or a trailing comma */
            p = *comma ? comma + 1 : comma;
            continue;
        }
        if (!eq) {
            rc = fg_err_set(err, FG_EINVAL, "header item without '=': \"%.*s\"",
                            (int)(comma - item), item);
            goto fail;
        }
        const char *ke = eq;
        while (ke > item && (ke[-1] == ' ' || ke[-1] == '\t'))
            ke--;
        if (ke == item) {
            rc = fg_err_set(err, FG_EINVAL, "empty header name");
            goto fail;
        }
        for (const char *c = item; c < ke; c++)
            if (!token_char(*c)) {
                rc = fg_err_set(err, FG_EINVAL, "bad character in header name \"%.*s\"",
                                (int)(ke - item), item);
                goto fail;
            }
        if ((rc = fg_buf_append(&b, item, (size_t)(ke - item))) ||
            (rc = fg_buf_append_str(&b, ": ")))
            goto fail;
        const char *v = eq + 1, *ve = comma;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *c = v; c < ve; c++) {
            char ch = *c;
            if (ch == '%') {
                if (ve - c < 3 || fg_hex_digit(c[1]) < 0 || fg_hex_digit(c[2]) < 0) {
                    rc = fg_err_set(err, FG_EINVAL, "bad %%-escape in header value");
                    goto fail;
                }
                ch = (char)(fg_hex_digit(c[1]) * 16 + fg_hex_digit(c[2]));
                c += 2;
            }
            if ((unsigned char)ch < ' ' && ch != '\t') {
                rc = fg_err_set(err, FG_EINVAL, "control character in header value");
                goto fail;
            }
            if ((rc = fg_buf_append(&b, &ch, 1)))
                goto fail;
        }
        if ((rc = fg_buf_append_str(&b, "\r\n")))
            goto fail;
        p = *comma ? comma + 1 : comma;
    }
    if ((rc = fg_buf_append(&b, "", 1)))
        goto fail;
    *out = (char *)fg_buf_steal(&b, NULL);
    return 0;
fail:
    fg_buf_free(&b);
    return rc;
}

static int wait_fd(int fd, short events, long long deadline, struct fg__http_cancel *cancel)
{
    bool woken = false;
    for (;;) {
        long long until = deadline;
        if (cancel)
            until = FG_MIN(until, atomic_load(&cancel->deadline_ms));
        long long left = until - fg__mono_ms();
        if (left <= 0)
            return FG_ETIMEOUT;
        struct pollfd pfd[2] = {{fd, events, 0}, {cancel ? cancel->wake_fd : -1, POLLIN, 0}};
        /* once woken, the wake fd stays readable: look at the new deadline, then ignore it */
        int n = poll(pfd, cancel && !woken ? 2 : 1, (int)FG_MIN(left, 1000000));
        if (n > 0 && pfd[0].revents)
            return 0;
        if (n > 0) {
            woken = true;
            continue;
        }
        if (n == 0)
            continue;
        if (errno != EINTR)
            return FG_EIO;
    }
}

static int connect_any(const struct fg__url *u, long long deadline,
                       struct fg__http_cancel *cancel, struct fg_err *err)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(u->host, u->port, &hints, &res);
    if (g != 0)
        return fg_err_set(err, FG_EIO, "resolve %s: %s", u->host, gai_strerror(g));
    int fd = -1, rc = FG_EIO;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS && (rc = wait_fd(fd, POLLOUT, deadline, cancel)) == 0) {
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
                break;
            errno = soerr;
            rc = FG_EIO;
        }
        fg_err_set(err, rc, "connect %s:%s: %s", u->host, u->port,
                   rc == FG_ETIMEOUT ? "timed out" : strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd >= 0 ? fd : rc;
}

static int send_all(int fd, const uint8_t *p, size_t len, long long deadline,
                    struct fg__http_cancel *cancel)
{
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLOUT, deadline, cancel);
            if (rc)
                return rc;
            continue;
        }
        return FG_EIO;
    }
    return 0;
}

int fg__http_post(const struct fg__url *u, const char *headers, const char *content_type,
                  const uint8_t *body, size_t len, int timeout_ms, int *status,
                  struct fg__http_cancel *cancel, struct fg_err *err)
{
    long long deadline = fg__mono_ms() + timeout_ms;
    struct fg_buf req;
    fg_buf_init(&req, 0);
    int fd = -1, rc;
    *status = 0;
    rc = fg_buf_printf(&req,
                       "POST %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: flamegate-agent/%s\r\n"
                       "Content-Type: %s\r\nContent-Encoding: gzip\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n%s\r\n",
                       u->path, u->host, u->port, FG_VERSION, content_type, len,
                       headers ? headers : "");
    if (rc) {
        fg_err_set(err, rc, "building the request: %s", fg_strerror(rc));
        goto fail;
    }
    fd = connect_any(u, deadline, cancel, err);
    if (fd < 0) {
        rc = fd;
        goto fail;
    }
    if ((rc = send_all(fd, req.data, req.len, deadline, cancel)) ||
        (rc = send_all(fd, body, len, deadline, cancel))) {
        fg_err_set(err, rc, "sending to %s:%s: %s", u->host, u->port, fg_strerror(rc));
        goto fail;
    }
    /* Only the status line matters; the body (a small ExportProfilesServiceResponse or a
     * google.rpc.Status) is not needed. */
    char head[256];
    size_t got = 0;
    while (got < sizeof(head) - 1 && !memchr(head, '\n', got)) {
        ssize_t n = recv(fd, head + got, sizeof(head) - 1 - got, 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if ((rc = wait_fd(fd, POLLIN, deadline, cancel)))
                break;
            continue;
        }
        rc = FG_EIO;
        break;
    }
    head[got] = '\0';
    int code = 0;
    if (strncmp(head, "HTTP/1.", 7) == 0 && got >= 12 && head[8] == ' ') {
        for (int i = 9; i < 12 && head[i] >= '0' && head[i] <= '9'; i++)
            code = code * 10 + (head[i] - '0');
    }
    if (code < 100 || code > 599) {
        rc = rc ? rc : FG_EIO;
        fg_err_set(err, rc, "no HTTP status from %s:%s (%s)", u->host, u->port,
                   fg_strerror(rc));
        goto fail;
    }
    *status = code;
    rc = 0;
fail:
    if (fd >= 0)
        close(fd);
    fg_buf_free(&req);
    return rc;
}
