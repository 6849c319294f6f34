/* Unit tests for the worker's pure parts: COPY text rows, catalog array parsing, units. */
#include <criterion/criterion.h>
#include <string.h>

#include "catalog.h"
#include "snapshot.h"
#include "unit.h"

static pgo_value vals[8];

Test(copy_row, plain_null_and_escapes)
{
    char line[] = "42\t\\N\tjane\\tdoe\\n\\\\x\t\\x41\\101\n";
    cr_assert_eq(snapshot_parse_copy_row(line, strlen(line), vals, 4), 0);
    cr_assert_eq(vals[0].kind, PGO_VAL_TEXT);
    cr_assert_eq(vals[0].len, 2);
    cr_assert(memcmp(vals[0].data, "42", 2) == 0);
    cr_assert_eq(vals[1].kind, PGO_VAL_NULL);
    cr_assert_eq(vals[2].len, 11);
    cr_assert(memcmp(vals[2].data, "jane\tdoe\n\\x", 11) == 0, "got %.*s", (int)vals[2].len, vals[2].data);
    cr_assert_eq(vals[3].len, 2);
    cr_assert(memcmp(vals[3].data, "AA", 2) == 0);
}

Test(copy_row, empty_fields_and_trailing_null)
{
    char line[] = "\t\t\\N";
    cr_assert_eq(snapshot_parse_copy_row(line, strlen(line), vals, 3), 0);
    cr_assert_eq(vals[0].kind, PGO_VAL_TEXT);
    cr_assert_eq(vals[0].len, 0);
    cr_assert_eq(vals[1].len, 0);
    cr_assert_eq(vals[2].kind, PGO_VAL_NULL);
}

Test(copy_row, wrong_field_count_rejected)
{
    char a[] = "1\t2\t3\n";
    cr_assert_eq(snapshot_parse_copy_row(a, strlen(a), vals, 2), -1);
    char b[] = "1\n";
    cr_assert_eq(snapshot_parse_copy_row(b, strlen(b), vals, 2), -1);
    char c[] = "\\Nx\t1";
    cr_assert_eq(snapshot_parse_copy_row(c, strlen(c), vals, 2), 0);
    cr_assert_eq(vals[0].kind, PGO_VAL_TEXT, "\\Nx is text, not NULL");
}

Test(catalog, name_arrays)
{
    char **items;
    size_t n;
    cr_assert_eq(catalog_parse_name_array("{id,email,\"odd \\\"name\"}", &items, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(items[0], "id");
    cr_assert_str_eq(items[2], "odd \"name");
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
    cr_assert_eq(catalog_parse_name_array("{}", &items, &n), 0);
    cr_assert_eq(n, 0);
    free(items);
    cr_assert_eq(catalog_parse_name_array("id,email", &items, &n), -1);
}

Test(catalog, types_sql_lists_oids)
{
    char sql[4096];
    uint32_t oids[] = {70000, 70001};
    cr_assert_eq(catalog_sql_types(oids, 2, sql, sizeof(sql)), 0);
    cr_assert_not_null(strstr(sql, "IN (70000,70001)"));
    cr_assert_eq(catalog_sql_types(oids, 2, sql, 40), -1, "too small a buffer is refused");
}

Test(unit, totals_and_seq)
{
    unit *u = unit_new();
    frame_pk pk = {"id", "7"};
    frame_finding fi = {.rule_id = "email-address", .category = "PII", .schema = "public", .table = "t",
                        .column = "c", .masked_sample = "ja****om", .primary_keys = &pk, .n_primary_keys = 1};
    cr_assert_eq(unit_add(u, &fi), 0);
    cr_assert_eq(unit_add(u, &fi), 0);
    cr_assert_eq(unit_count(u), 2);
    cr_assert_eq(unit_total(u), 2);
    cr_assert_gt(unit_bytes(u), 2 * strlen("email-address"));
    cr_assert(!unit_has_seq(u));
    unit_reset(u);
    cr_assert_eq(unit_count(u), 0);
    cr_assert_eq(unit_total(u), 0);
    unit_free(u);
}
