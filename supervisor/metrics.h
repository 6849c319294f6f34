/*
 * metrics: a small registry of labelled counters and gauges rendered in the
 * Prometheus text format (0.0.4). Owns names, labels and values only; it
 * knows no metric by name (the pipeline registers SPEC section 5's) and
 * never receives a raw value (label values are identifiers).
 */
#ifndef PGSENSE_METRICS_H_INCLUDED
#define PGSENSE_METRICS_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct metrics metrics;
typedef struct metrics_family metrics_family;

typedef enum {
    METRICS_COUNTER, /* only goes up */
    METRICS_GAUGE,   /* set to the current value */
} metrics_type;

#define METRICS_MAX_LABELS 4

metrics *metrics_new(void); /* NULL on ENOMEM */
void metrics_free(metrics *m);

/*
 * Register a family (rendered in registration order). labels: n label names
 * (n <= METRICS_MAX_LABELS). A family without labels has its one series
 * from the start, at 0. NULL on ENOMEM or bad arguments.
 */
metrics_family *metrics_register(metrics *m, const char *name, const char *help, metrics_type type, size_t n,
                                 const char *const *labels);

/*
 * Add to (counter or gauge) or set (gauge) the series with these label
 * values (as many as the family has labels; NULL is ""), creating it at 0
 * first. 0, or -1 on ENOMEM (nothing changed).
 */
__attribute__((warn_unused_result)) int metrics_add(metrics_family *f, const char *const *values,
                                                    int64_t delta);
__attribute__((warn_unused_result)) int metrics_set(metrics_family *f, const char *const *values, int64_t v);
/* The current value, 0 when the series does not exist. */
int64_t metrics_get(const metrics_family *f, const char *const *values);
/* Forget one series (a database removed at reload). */
void metrics_remove(metrics_family *f, const char *const *values);

/*
 * Prometheus text: per family "# HELP", "# TYPE", then one line per series
 * in creation order, label values escaped (\\, \", \n). 0 or -1 (write error).
 */
__attribute__((warn_unused_result)) int metrics_render(const metrics *m, FILE *out);

#endif /* PGSENSE_METRICS_H_INCLUDED */
