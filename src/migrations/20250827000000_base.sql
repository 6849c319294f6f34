-- pgsense store = postgres, migration 20250827000000: the etl schema and
-- per-table replication state. Needs CREATE on the database (for the schema)
-- unless the schema exists already; never a superuser.
do $$
begin
    if pg_catalog.to_regnamespace('etl') is null then
        create schema etl;
    end if;
end
$$;

-- Life of one published table, in order:
--   init           known, no snapshot yet
--   data_sync      its snapshot COPY is running
--   finished_copy  COPY done, some of its snapshot findings not yet acknowledged
--   sync_done      every snapshot finding acknowledged, catching up with the stream
--   ready          streamed only
--   errored        cannot be read (reason in error_reason); retried
create type etl.table_state as enum (
    'init', 'data_sync', 'finished_copy', 'sync_done', 'ready', 'errored'
);

-- One row per (pipeline, table). pipeline_id is the slot name
-- (pgsense_ + 16 hex digits); table_id 0 is the pipeline's own row, whose
-- confirmed_lsn is the last position pgsense confirmed to the slot.
create table etl.replication_state (
    pipeline_id text not null,
    table_id oid not null,
    schema_name text,
    table_name text,
    state etl.table_state not null default 'init',
    snapshot_lsn pg_lsn,
    confirmed_lsn pg_lsn,
    error_reason text,
    updated_at timestamptz not null default now(),
    primary key (pipeline_id, table_id)
);
