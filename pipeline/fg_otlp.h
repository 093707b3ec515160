/* OTLP profiles codecs: ExportProfilesServiceRequest in protobuf and OTLP/JSON ⇄ the model.
 * Decoders check every index against its table and every [0] entry against the zero value
 * (by meaning), and name the offending field in err. */
#ifndef FG_OTLP_H
#define FG_OTLP_H

#include <stddef.h>
#include <stdint.h>

#include "fg_buf.h"
#include "fg_common.h"
#include "fg_model.h"

/* Protobuf ExportProfilesServiceRequest (or ProfilesData: same fields) → new batch. */
int fg_otlp_decode_proto(const uint8_t *data, size_t len, struct fg_profiles **out,
                         struct fg_err *err);
/* OTLP/JSON request → new batch. */
int fg_otlp_decode_json(const uint8_t *data, size_t len, struct fg_profiles **out,
                        struct fg_err *err);

/* Batch → protobuf request, appended to out. Only referenced dictionary entries are
 * guaranteed; resource/scope attributes are written inline (key / string_value) so that
 * older receivers keep them. */
int fg_otlp_encode_proto(const struct fg_profiles *p, struct fg_buf *out);
/* Batch → one OTLP/JSON document, appended to out. */
int fg_otlp_encode_json(const struct fg_profiles *p, struct fg_buf *out);

/* Response bodies. */
int fg_otlp_encode_response_proto(int64_t rejected, const char *message, struct fg_buf *out);
int fg_otlp_encode_response_json(int64_t rejected, const char *message, struct fg_buf *out);
/* google.rpc.Status{code, message} as protobuf or JSON. */
int fg_otlp_encode_status_proto(int code, const char *message, struct fg_buf *out);
int fg_otlp_encode_status_json(int code, const char *message, struct fg_buf *out);

#endif
