/* Private to the resourcedetection processor and its tests: the detectors, each filling a
 * list of string attributes. */
#ifndef FG_RESOURCEDETECTION_H
#define FG_RESOURCEDETECTION_H

#include <stddef.h>

struct fg_rd_attr {
    char *key;
    char *value;
};

struct fg_rd_attrs {
    size_t n, cap;
    struct fg_rd_attr *items;
};

void fg__rd_attrs_free(struct fg_rd_attrs *a);
/* Adds key=value unless key is already there (the first detector to set a key wins). */
int fg__rd_attrs_add(struct fg_rd_attrs *a, const char *key, const char *value, size_t vlen);

/* OTEL_RESOURCE_ATTRIBUTES syntax: comma-separated key=value, values percent-decoded,
 * blanks around keys and values trimmed; malformed entries are skipped. */
int fg__rd_parse_resource_attributes(const char *text, struct fg_rd_attrs *out);

/* env: OTEL_SERVICE_NAME, then OTEL_RESOURCE_ATTRIBUTES. */
int fg__rd_env(struct fg_rd_attrs *out);
/* system: host.name, host.arch, os.type, os.description (os_release_path: /etc/os-release). */
int fg__rd_system(const char *os_release_path, struct fg_rd_attrs *out);
/* container.id from a /proc/self/cgroup-style file (cgroup v1, and v2 systemd scopes), else
 * from a /proc/self/mountinfo-style file (cgroup v2: .../containers/<id>/...). 0 and id
 * filled, or FG_ENOTFOUND. */
int fg__rd_container_id(const char *cgroup_path, const char *mountinfo_path, char id[65]);
/* k8s: the downward-API variables K8S_POD_NAME, K8S_POD_UID, K8S_NAMESPACE_NAME,
 * K8S_NODE_NAME, K8S_CONTAINER_NAME. */
int fg__rd_k8s(struct fg_rd_attrs *out);

#endif
