/* Private to the debug exporter and its unit test: the typed config. */
#ifndef FG_DEBUG_EXPORTER_H
#define FG_DEBUG_EXPORTER_H

#include "fg_component.h"

enum debug_verbosity { DEBUG_BASIC, DEBUG_NORMAL, DEBUG_DETAILED };

struct debug_config {
    int verbosity; /* enum debug_verbosity */
};

extern const struct fg_factory fg_debug_exporter_factory;

#endif
