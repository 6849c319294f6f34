/* cli_rules: `pgsense rules list|test|bench` (being written). */
#include <stdio.h>

#include "cli.h"

int cli_rules_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "pgsense rules: not built yet\n");
    return 2;
}
