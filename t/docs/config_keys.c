/*
 * Prints every pgsense.ini key of the config key table (config_keys()), one
 * per line: "section<TAB>key<TAB>type<TAB>default<TAB>reload<TAB>doc", the
 * section as written in the file ("" for the top level). Used by
 * t/docs/test_config_doc.sh to check that docs/config.md documents each one.
 */
#include <stdio.h>

#include "config.h"

int main(void)
{
    static const char *const reload[] = {"live", "worker", "sink", "restart"};
    size_t n;
    const config_key_def *keys = config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        const config_key_def *k = &keys[i];
        printf("%s\t%s\t%s\t%s\t%s\t%s\n", config_section_name(k->section), k->key, config_type_name(k->type),
               k->def ? k->def : "", reload[k->reload], k->doc);
    }
    return 0;
}
