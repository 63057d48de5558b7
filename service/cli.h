#ifndef RS_CLI_H
#define RS_CLI_H

/*
 * What both programs' command lines share: exit codes, loading the configuration named by
 * -c/--config, and the --check-config report.
 */

#include "config.h"

/* Exit codes, from sysexits.h where one fits; documented in the README and --help. */
#define RS_EXIT_OK          0
#define RS_EXIT_FAILURE     1  /* a runtime failure not covered below */
#define RS_EXIT_USAGE       64 /* EX_USAGE: a bad flag or flag value */
#define RS_EXIT_UNAVAILABLE 69 /* EX_UNAVAILABLE: Redis unreachable */
#define RS_EXIT_NOPERM      77 /* EX_NOPERM: Redis refused the credentials */
/* RS_EXIT_CONFIG (78, EX_CONFIG) comes from config.h. */

/* Loads the configuration for program `prog`: `path` when given; otherwise
 * RS_CONFIG_DEFAULT_PATH when that file exists, else the built-in defaults. On failure prints
 * "<prog>: <message>" to stderr and returns NULL (exit with RS_EXIT_CONFIG); a file that sets
 * nothing (comments only) loads, with a warning on stderr saying so. Caller frees with
 * rs_config_free(). Main thread, before other threads start. */
rs_config_t *rs_cli_load_config(const char *prog, const char *path);

/* Prints the --check-config report (the source and the summary) to stdout. */
void rs_cli_print_check(const char *prog, const rs_config_t *cfg);

#endif
