/*
 * cli: the `pgsense` command-line tool's subcommands. Each entry point takes
 * the arguments after its subcommand name and returns the process exit code.
 */
#ifndef PGSENSE_CLI_H_INCLUDED
#define PGSENSE_CLI_H_INCLUDED

/* pgsense validate -c pgsense.ini [-r rules.yaml] [--connect] */
int cli_validate_main(int argc, char **argv);
/* pgsense rules list|test|bench ... */
int cli_rules_main(int argc, char **argv);

#endif /* PGSENSE_CLI_H_INCLUDED */
