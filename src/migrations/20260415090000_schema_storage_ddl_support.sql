-- pgsense store = postgres, migration 20260415090000: schema history of the
-- published tables (one version per table and LSN) and the functions that
-- describe a table's columns and identity from pg_catalog. No superuser.

create table etl.table_schemas (
    id bigserial primary key,
    pipeline_id text not null,
    table_id oid not null,
    schema_name text not null,
    table_name text not null,
    snapshot_id pg_lsn not null, -- the layout is valid from this LSN on
    created_at timestamptz not null default now(),
    unique (pipeline_id, table_id, snapshot_id)
);

create table etl.table_columns (
    table_schema_id bigint not null references etl.table_schemas (id) on delete cascade,
    column_name text not null,
    column_order integer not null,
    type_oid oid not null,
    type_name text not null,
    type_modifier integer not null,
    nullable boolean not null,
    primary_key_ordinal integer, -- 1-based position in the identity, null when not a key column
    primary key (table_schema_id, column_order)
);

create type etl.destination_table_schema_status as enum ('applying', 'applied', 'failed');

-- What the scanner (pgsense's destination) has made of each table: which
-- schema version it applies and which columns it scans.
create table etl.destination_tables_metadata (
    pipeline_id text not null,
    table_id oid not null,
    destination_table_id text not null,
    snapshot_id pg_lsn not null,
    schema_status etl.destination_table_schema_status not null default 'applying',
    replication_mask bytea,
    updated_at timestamptz not null default now(),
    primary key (pipeline_id, table_id)
);

-- The live columns of a table, in attribute order, with their primary key position.
create function etl.describe_table_schema(table_id oid)
returns table (
    column_name text,
    column_order integer,
    type_oid oid,
    type_name text,
    type_modifier integer,
    nullable boolean,
    primary_key_ordinal integer
)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select a.attname::text,
           a.attnum::integer,
           a.atttypid,
           pg_catalog.format_type(a.atttypid, a.atttypmod),
           a.atttypmod,
           not a.attnotnull,
           (select k.ord::integer
              from pg_catalog.pg_index i
             cross join lateral pg_catalog.unnest(i.indkey::pg_catalog.int2[]) with ordinality as k(attnum, ord)
             where i.indrelid = a.attrelid and i.indisprimary and k.attnum = a.attnum)
      from pg_catalog.pg_attribute a
     where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped
     order by a.attnum
$$;

-- The columns that identify a row: the primary key, else the replica
-- identity index, else none (REPLICA IDENTITY FULL's all columns are not a key).
create function etl.describe_table_identity(table_id oid)
returns table (
    column_name text,
    key_ordinal integer,
    type_oid oid,
    source text
)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    with idx as (
        select i.indkey, case when i.indisprimary then 'primary_key' else 'replica_identity' end as source
          from pg_catalog.pg_index i
          join pg_catalog.pg_class c on c.oid = i.indrelid
         where i.indrelid = $1 and (i.indisprimary or (c.relreplident = 'i' and i.indisreplident))
         order by i.indisprimary desc
         limit 1
    )
    select a.attname::text, k.ord::integer, a.atttypid, idx.source
      from idx
     cross join lateral pg_catalog.unnest(idx.indkey::pg_catalog.int2[]) with ordinality as k(attnum, ord)
      join pg_catalog.pg_attribute a on a.attrelid = $1 and a.attnum = k.attnum
     order by k.ord
$$;
