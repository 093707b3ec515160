/* Internal to the OTLP codecs: short names for the protoc-c generated types, and the one
 * conversion from a decoded (protobuf-c) request into the model that both the protobuf
 * and the JSON decoder use. */
#ifndef FG_OTLP_PB_H
#define FG_OTLP_PB_H

#include <protobuf-c/protobuf-c.h>

#include "fg_model.h"
#include "opentelemetry/proto/collector/profiles/v1development/profiles_service.pb-c.h"
#include "opentelemetry/proto/profiles/v1development/profiles.pb-c.h"
#include "google/rpc/status.pb-c.h"

typedef Opentelemetry__Proto__Collector__Profiles__V1development__ExportProfilesServiceRequest
    pb_request;
typedef Opentelemetry__Proto__Collector__Profiles__V1development__ExportProfilesServiceResponse
    pb_response;
typedef Opentelemetry__Proto__Collector__Profiles__V1development__ExportProfilesPartialSuccess
    pb_partial_success;
typedef Opentelemetry__Proto__Profiles__V1development__ProfilesDictionary pb_dictionary;
typedef Opentelemetry__Proto__Profiles__V1development__ResourceProfiles pb_resource_profiles;
typedef Opentelemetry__Proto__Profiles__V1development__ScopeProfiles pb_scope_profiles;
typedef Opentelemetry__Proto__Profiles__V1development__Profile pb_profile;
typedef Opentelemetry__Proto__Profiles__V1development__Sample pb_sample;
typedef Opentelemetry__Proto__Profiles__V1development__ValueType pb_value_type;
typedef Opentelemetry__Proto__Profiles__V1development__Mapping pb_mapping;
typedef Opentelemetry__Proto__Profiles__V1development__Location pb_location;
typedef Opentelemetry__Proto__Profiles__V1development__Line pb_line;
typedef Opentelemetry__Proto__Profiles__V1development__Function pb_function;
typedef Opentelemetry__Proto__Profiles__V1development__Link pb_link;
typedef Opentelemetry__Proto__Profiles__V1development__Stack pb_stack;
typedef Opentelemetry__Proto__Profiles__V1development__KeyValueAndUnit pb_kvu;
typedef Opentelemetry__Proto__Common__V1__AnyValue pb_any_value;
typedef Opentelemetry__Proto__Common__V1__ArrayValue pb_array_value;
typedef Opentelemetry__Proto__Common__V1__KeyValueList pb_kvlist;
typedef Opentelemetry__Proto__Common__V1__KeyValue pb_keyvalue;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope pb_scope;
typedef Opentelemetry__Proto__Common__V1__EntityRef pb_entity_ref;
typedef Opentelemetry__Proto__Resource__V1__Resource pb_resource;
typedef Google__Rpc__Status pb_status;

/* Converts a decoded request into a new batch: range-checks every index, checks each
 * table's [0] entry is the zero value by meaning, resolves key_strindex /
 * string_value_strindex, and interns every entry (so duplicates on the wire collapse).
 * The request is borrowed. Error messages name the field, e.g.
 * "dictionary.stack_table[3].location_indices[1]: index 900 out of range (table has 412)". */
int fg__otlp_from_pb(const pb_request *req, struct fg_profiles **out, struct fg_err *err);

/* A protobuf-c allocator that takes from an arena (nothing is freed piece by piece). */
void fg__pb_arena_allocator(struct fg_arena *arena, ProtobufCAllocator *out);

#endif
