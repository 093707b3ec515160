/* Private to the pyroscope exporter and its unit test: the typed config. */
#ifndef FG_PYROSCOPE_EXPORTER_H
#define FG_PYROSCOPE_EXPORTER_H

#include "fg_component.h"
#include "fg_exporter_helper.h"
#include "fg_option.h"
#include "fg_auth.h"
#include "fg_tls_client.h"

enum pyroscope_api { PYROSCOPE_API_INGEST, PYROSCOPE_API_PUSH };

struct pyroscope_basic_auth {
    char *username;
    char *password;
};

struct pyroscope_exporter_config {
    char *endpoint; /* base URL: <endpoint>/ingest or <endpoint>/push.v1.PusherService/Push */
    int api;        /* enum pyroscope_api */
    struct pyroscope_basic_auth basic_auth;
    char *bearer_token;
    struct fg_strmap headers;
    char *tenant_id; /* X-Scope-OrgID when the batch carries no tenant */
    struct fg_strmap external_labels;
    struct fg_exporter_settings exporter; /* timeout, retry_on_failure, sending_queue */
    struct fg_tls_client_config tls;
    struct fg_auth_config auth; /* client credentials from an authenticator extension */
};

extern const struct fg_factory fg_pyroscope_exporter_factory;

#endif
