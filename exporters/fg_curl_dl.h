/* libcurl, loaded on first use: exporters/fg_curl_dl.c defines the curl_* functions
 * flamegate calls (hidden, so never seen by libcurl itself) and forwards them to
 * libcurl.so.4, which it dlopens the first time one is needed. A gateway that never sends
 * over HTTP does not map libcurl and its dependencies (OpenSSL, Kerberos, LDAP, ...).
 *
 * curl_slist_append and curl_slist_free_all are not forwarded: libcurl only reads such
 * lists, so headers are built at create without loading it. Until the library loads, every
 * other function fails the way libcurl reports failure (NULL, CURLE_FAILED_INIT, -1). */
#ifndef FG_CURL_DL_H
#define FG_CURL_DL_H

#include "fg_common.h"

#define FG_CURL_SONAME "libcurl.so.4"
#define FG_CURL_PACKAGE "libcurl4" /* the Debian package that ships it */

/* Loads libcurl once per process (any thread); 0, or FG_EUNSUPPORTED with a message naming
 * the library, the reason and the package to install. */
int fg_curl_dl_load(struct fg_err *err);

#endif
