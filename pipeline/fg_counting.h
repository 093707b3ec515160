/* Counting consumers the service puts around components for the otelcol_* metrics: in
 * front of a receiver's next (accepted / refused / failed per transport, requests, bytes,
 * latency), on both sides of a processor (incoming / outgoing items) and in front of an
 * exporter that does not count itself (sent / send failed). */
#ifndef FG_COUNTING_H
#define FG_COUNTING_H

#include "fg_component.h"

enum fg_counting_role {
    FG_COUNT_RECEIVER,
    FG_COUNT_PROCESSOR_IN,
    FG_COUNT_PROCESSOR_OUT,
    FG_COUNT_EXPORTER,
};

struct fg_counting;

/* A consumer that counts what it passes to next (borrowed, must outlive it) and the series
 * it counts into, labelled with the component id. FG_ENOMEM (*out NULL). */
int fg_counting_new(enum fg_counting_role role, const char *id, struct fg_consumer *next,
                    struct fg_counting **out);
struct fg_consumer *fg_counting_consumer(struct fg_counting *c);
void fg_counting_free(struct fg_counting *c);

#endif
