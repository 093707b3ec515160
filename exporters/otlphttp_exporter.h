/* Private to the otlphttp exporter and its unit test: the typed config, so the test can
 * build one from the option defaults without the YAML loader. */
#ifndef FG_OTLPHTTP_EXPORTER_H
#define FG_OTLPHTTP_EXPORTER_H

#include "fg_component.h"
#include "fg_exporter_helper.h"
#include "fg_option.h"
#include "fg_auth.h"
#include "fg_tls_client.h"

enum otlphttp_encoding { ENCODING_PROTO, ENCODING_JSON };
enum otlphttp_compression { COMPRESSION_GZIP, COMPRESSION_NONE };

struct otlphttp_config {
    char *endpoint;
    char *profiles_endpoint;
    int encoding;    /* enum otlphttp_encoding */
    int compression; /* enum otlphttp_compression */
    struct fg_strmap headers;
    bool include_original_payload; /* each profile's pprof in original_payload */
    struct fg_exporter_settings exporter; /* timeout, retry_on_failure, sending_queue */
    struct fg_tls_client_config tls;
    struct fg_auth_config auth; /* client credentials from an authenticator extension */
};

extern const struct fg_factory fg_otlphttp_exporter_factory;

#endif
