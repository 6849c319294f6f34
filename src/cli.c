/*
 * pgsense: the operator's command-line tool. Dispatches to the subcommands
 * declared in cli.h; exit codes: 0 ok, 1 the checked thing failed, 2 usage.
 */
#include "cli.h"
#include "cli_db.h"

#include <stdio.h>
#include <string.h>

#include "pgsense_config.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: pgsense COMMAND [options]\n"
                 "\n"
                 "commands:\n"
                 "  validate -c pgsense.ini [-r rules.yaml] [--connect]\n"
                 "  rules list -r rules.yaml\n"
                 "  rules test -r rules.yaml (--input V | --file F) [--format text|json]\n"
                 "  rules bench -r rules.yaml (--input V | --file F | --generate N) [--iterations N]\n"
                 "              [--format table|json]\n"
                 "  slots list -c pgsense.ini\n"
                 "  slots drop -c pgsense.ini NAME\n"
                 "  migrations --print-sql\n"
                 "  version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "validate") == 0)
        return cli_validate_main(argc - 1, argv + 1);
    if (strcmp(cmd, "rules") == 0)
        return cli_rules_main(argc - 1, argv + 1);
    if (strcmp(cmd, "slots") == 0)
        return cli_slots_main(argc - 1, argv + 1);
    if (strcmp(cmd, "migrations") == 0)
        return cli_migrations_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("pgsense %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "pgsense: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
