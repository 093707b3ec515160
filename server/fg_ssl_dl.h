/* OpenSSL, loaded on first use: server/fg_ssl_dl.c defines the libssl/libcrypto functions
 * fg_tls.c calls (hidden, so never seen by OpenSSL or libcurl) and forwards them to
 * libssl.so.3, which it dlopens when the first TLS listener is set up. A gateway without a
 * `tls:` receiver (and without an HTTP exporter, see fg_curl_dl.h) does not map OpenSSL.
 * Until the library loads, each function fails the way OpenSSL reports failure. */
#ifndef FG_SSL_DL_H
#define FG_SSL_DL_H

#include "fg_common.h"

#define FG_SSL_SONAME "libssl.so.3"
#define FG_SSL_PACKAGE "libssl3" /* the Debian package that ships it and libcrypto.so.3 */

/* Loads libssl (and with it libcrypto) once per process (any thread); 0, or
 * FG_EUNSUPPORTED with a message naming the library, the reason and the package. */
int fg_ssl_dl_load(struct fg_err *err);

#endif
