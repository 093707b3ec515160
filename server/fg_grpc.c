/* gRPC helpers that need no connection: grpc-timeout parsing, grpc-message percent
 * encoding, google.rpc.Status details with RetryInfo, and code names. */
#include "fg_grpc.h"

#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_text.h"
#include "google/rpc/status.pb-c.h"

int fg_grpc_parse_timeout(const char *value, int64_t *ns)
{
    size_t n = value ? strlen(value) : 0;
    /* 1 to 8 ASCII digits and a unit (gRPC over HTTP/2, "Timeout"). */
    if (n < 2 || n > 9)
        return FG_EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (value[i] < '0' || value[i] > '9')
            return FG_EINVAL;
        v = v * 10 + (value[i] - '0');
    }
    int64_t mul;
    switch (value[n - 1]) {
    case 'H': mul = 3600LL * 1000000000LL; break;
    case 'M': mul = 60LL * 1000000000LL; break;
    case 'S': mul = 1000000000LL; break;
    case 'm': mul = 1000000LL; break;
    case 'u': mul = 1000LL; break;
    case 'n': mul = 1; break;
    default: return FG_EINVAL;
    }
    /* 99999999 hours overflows int64 nanoseconds: saturate. */
    *ns = v > INT64_MAX / mul ? INT64_MAX : v * mul;
    return 0;
}

void fg_grpc_percent_encode(const char *in, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (outsz == 0)
        return;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            if (o + 1 >= outsz)
                break;
            out[o++] = (char)*p;
        } else {
            if (o + 3 >= outsz)
                break;
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

void fg_grpc_percent_decode(const char *in, char *out, size_t outsz)
{
    /* A malformed escape is kept as is, as the gRPC spec asks of receivers; a long message
     * is cut. */
    fg_percent_decode(in, strlen(in), out, outsz, 0, NULL);
}

int fg_grpc_status_details(int code, const char *message, int64_t retry_delay_ns,
                           struct fg_buf *out)
{
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    Google__Rpc__RetryInfo ri = GOOGLE__RPC__RETRY_INFO__INIT;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    Google__Protobuf__Any *details[1] = {&any};
    uint8_t ribuf[32];
    st.code = code;
    st.message = (char *)(message ? message : "");
    if (retry_delay_ns > 0) {
        d.seconds = retry_delay_ns / 1000000000LL;
        d.nanos = (int32_t)(retry_delay_ns % 1000000000LL);
        ri.retry_delay = &d;
        /* RetryInfo{Duration{int64, int32}} packs into at most 2 + 2 + 10 + 1 + 5 bytes. */
        size_t n = google__rpc__retry_info__pack(&ri, ribuf);
        any.type_url = (char *)"type.googleapis.com/google.rpc.RetryInfo";
        any.value.data = ribuf;
        any.value.len = n;
        st.n_details = 1;
        st.details = details;
    }
    size_t len = google__rpc__status__get_packed_size(&st);
    int rc = fg_buf_reserve(out, len);
    if (rc)
        return rc;
    google__rpc__status__pack(&st, out->data + out->len);
    out->len += len;
    return 0;
}

const char *fg_grpc_code_name(int code)
{
    static const char *const names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    if (code < 0 || (size_t)code >= FG_ARRAY_LEN(names))
        return "UNKNOWN_CODE";
    return names[code];
}
