/* Every OpenTelemetry semantic-convention key flamegate reads or writes, in one place, with
 * the semconv release it is taken from (open-telemetry/semantic-conventions v1.44.0, the
 * version pinned in ../shared/spec/WIRE.md). Use these instead of spelling keys inline. */
#ifndef FG_SEMCONV_H
#define FG_SEMCONV_H

#define FG_SEMCONV_VERSION "1.44.0"
#define FG_SEMCONV_SCHEMA_URL "https://opentelemetry.io/schemas/1.44.0"

/* service.* (stable) */
#define FG_SEMCONV_SERVICE_NAME "service.name"
#define FG_SEMCONV_SERVICE_NAMESPACE "service.namespace"
#define FG_SEMCONV_SERVICE_VERSION "service.version"
#define FG_SEMCONV_SERVICE_INSTANCE_ID "service.instance.id"
#define FG_SEMCONV_DEPLOYMENT_ENVIRONMENT_NAME "deployment.environment.name"

/* host.* and os.*: the system detector */
#define FG_SEMCONV_HOST_NAME "host.name"
#define FG_SEMCONV_HOST_ARCH "host.arch" /* amd64, arm32, arm64, ia64, ppc32, ppc64, s390x, x86 */
#define FG_SEMCONV_HOST_ID "host.id"
#define FG_SEMCONV_OS_TYPE "os.type" /* linux, darwin, freebsd, ... */
#define FG_SEMCONV_OS_DESCRIPTION "os.description"

/* container.*: the container detector */
#define FG_SEMCONV_CONTAINER_ID "container.id"

/* k8s.*: the k8s detector (from the downward API environment) */
#define FG_SEMCONV_K8S_POD_NAME "k8s.pod.name"
#define FG_SEMCONV_K8S_POD_UID "k8s.pod.uid"
#define FG_SEMCONV_K8S_NAMESPACE_NAME "k8s.namespace.name"
#define FG_SEMCONV_K8S_NODE_NAME "k8s.node.name"
#define FG_SEMCONV_K8S_CONTAINER_NAME "k8s.container.name"

/* process.* and thread.* (resource and sample attributes of profiles) */
#define FG_SEMCONV_PROCESS_PID "process.pid"
#define FG_SEMCONV_PROCESS_EXECUTABLE_NAME "process.executable.name"
#define FG_SEMCONV_PROCESS_EXECUTABLE_BUILD_ID_GNU "process.executable.build_id.gnu"
#define FG_SEMCONV_PROCESS_EXECUTABLE_BUILD_ID_GO "process.executable.build_id.go"
#define FG_SEMCONV_PROCESS_EXECUTABLE_BUILD_ID_HTLHASH "process.executable.build_id.htlhash"
#define FG_SEMCONV_THREAD_ID "thread.id"
#define FG_SEMCONV_THREAD_NAME "thread.name"

/* profiles (general/profiles.md) */
#define FG_SEMCONV_PROFILE_FRAME_TYPE "profile.frame.type"

/* pprof convertibility (general/profiles.md "Compatibility with pprof"): pprof.profile.*
 * since v1.38.0, pprof.scope.* since v1.40.0, pprof.mapping.* and pprof.location.* earlier */
#define FG_SEMCONV_PPROF_PROFILE_DROP_FRAMES "pprof.profile.drop_frames"
#define FG_SEMCONV_PPROF_PROFILE_KEEP_FRAMES "pprof.profile.keep_frames"
#define FG_SEMCONV_PPROF_PROFILE_DOC_URL "pprof.profile.doc_url"
#define FG_SEMCONV_PPROF_PROFILE_COMMENT "pprof.profile.comment"
#define FG_SEMCONV_PPROF_SCOPE_DEFAULT_SAMPLE_TYPE "pprof.scope.default_sample_type"
#define FG_SEMCONV_PPROF_SCOPE_SAMPLE_TYPE_ORDER "pprof.scope.sample_type_order"
#define FG_SEMCONV_PPROF_MAPPING_HAS_FUNCTIONS "pprof.mapping.has_functions"
#define FG_SEMCONV_PPROF_MAPPING_HAS_FILENAMES "pprof.mapping.has_filenames"
#define FG_SEMCONV_PPROF_MAPPING_HAS_LINE_NUMBERS "pprof.mapping.has_line_numbers"
#define FG_SEMCONV_PPROF_MAPPING_HAS_INLINE_FRAMES "pprof.mapping.has_inline_frames"
#define FG_SEMCONV_PPROF_LOCATION_IS_FOLDED "pprof.location.is_folded"

/* Not semconv, but the environment variables the OpenTelemetry SDK spec defines for
 * resources (sdk-environment-variables.md), read by the env detector. */
#define FG_OTEL_RESOURCE_ATTRIBUTES_ENV "OTEL_RESOURCE_ATTRIBUTES"
#define FG_OTEL_SERVICE_NAME_ENV "OTEL_SERVICE_NAME"

#endif
