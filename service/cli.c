/*
 * Command-line plumbing both programs share: where the configuration comes from and how
 * --check-config reports it.
 *
 * DESIGN: an explicit -c names a file that must load; without it the installed path is used
 * when present, and otherwise the built-in defaults (the Go demo's settings), so
 * `redstream-producer` works out of the box on a developer's machine exactly as
 * `go run producer` did, while a packaged service always runs from its file.
 */

#include "cli.h"

#include <stdio.h>
#include <unistd.h>

rs_config_t *rs_cli_load_config(const char *prog, const char *path)
{
    char err[512];
    rs_config_t *cfg;

    if (path == NULL && access(RS_CONFIG_DEFAULT_PATH, F_OK) == 0)
        path = RS_CONFIG_DEFAULT_PATH;
    if (path != NULL) {
        cfg = rs_config_load(path, err, sizeof(err));
        if (cfg == NULL)
            fprintf(stderr, "%s: %s\n", prog, err);
        else if (cfg->sets_nothing)
            fprintf(stderr,
                    "%s: warning: %s sets nothing (comments only): every setting is "
                    "its built-in default\n",
                    prog, path);
        return cfg;
    }
    cfg = rs_config_new_defaults(err, sizeof(err));
    if (cfg == NULL)
        fprintf(stderr, "%s: %s\n", prog, err);
    return cfg;
}

void rs_cli_print_check(const char *prog, const rs_config_t *cfg)
{
    if (cfg->path != NULL)
        printf("%s: configuration %s is valid\n", prog, cfg->path);
    else
        printf("%s: no configuration file (%s absent); built-in defaults apply\n", prog,
               RS_CONFIG_DEFAULT_PATH);
    rs_config_print_summary(cfg, stdout);
}
