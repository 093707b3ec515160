/* The configuration used when none is given: OTLP over gRPC and HTTP on loopback (the
 * Collector's ports), batched, written to ./flamegate-data and summarised by the debug
 * exporter. */
#include "fg_config.h"

const char fg_default_config_yaml[] =
    "receivers:\n"
    "  otlp:\n"
    "    protocols:\n"
    "      grpc:\n"
    "        endpoint: 127.0.0.1:4317\n"
    "      http:\n"
    "        endpoint: 127.0.0.1:4318\n"
    "\n"
    "processors:\n"
    "  batch:\n"
    "\n"
    "exporters:\n"
    "  file:\n"
    "    path: ./flamegate-data\n"
    "  debug:\n"
    "\n"
    "service:\n"
    "  pipelines:\n"
    "    profiles:\n"
    "      receivers: [otlp]\n"
    "      processors: [batch]\n"
    "      exporters: [file, debug]\n";
