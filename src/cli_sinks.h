/*
 * cli_sinks: what `pgsense validate --connect` asks of the HTTP sinks: a
 * HEAD to each webhook, Slack's auth.test for each Slack sink. Blocking
 * libcurl easy calls (a command-line tool); never prints a token, a header
 * value or a URL's path.
 */
#ifndef PGSENSE_CLI_SINKS_H_INCLUDED
#define PGSENSE_CLI_SINKS_H_INCLUDED

#include <stdio.h>

#include "config.h"

/* One [OK]/[ERROR] line per webhook and Slack sink of cfg; returns the error count. */
int cli_sinks_check(const config *cfg, FILE *out);

#endif /* PGSENSE_CLI_SINKS_H_INCLUDED */
