/* cli_validate: `pgsense validate` (being written). */
#include <stdio.h>

#include "cli.h"

int cli_validate_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "pgsense validate: not built yet\n");
    return 2;
}
