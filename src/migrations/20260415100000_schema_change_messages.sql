-- pgsense store = postgres, migration 20260415100000: after every ALTER TABLE
-- an event trigger emits a transactional logical message (prefix
-- supabase_etl_ddl) with the table's new column layout, which the worker
-- keeps as schema history. requires: superuser (CREATE EVENT TRIGGER).

-- Security definer: it runs for whoever alters a table, and that role needs
-- no privilege on the etl schema. It never fails the ALTER TABLE: an error
-- here becomes a WARNING and the message is not emitted.
create or replace function etl.emit_schema_change_messages()
returns event_trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    cmd record;
    msg jsonb;
begin
    for cmd in
        select e.objid, e.command_tag
          from pg_catalog.pg_event_trigger_ddl_commands() e
          join pg_catalog.pg_class c on c.oid = e.objid
         where e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           and e.objsubid = 0
           and c.relkind in ('r', 'p')
    loop
        begin
            select pg_catalog.jsonb_build_object(
                       'version', 1,
                       'event', cmd.command_tag,
                       'table_id', c.oid::bigint,
                       'schema_name', n.nspname::text,
                       'table_name', c.relname::text,
                       'lsn', pg_catalog.pg_current_wal_insert_lsn()::text,
                       'columns', coalesce((select pg_catalog.jsonb_agg(pg_catalog.to_jsonb(s) order by s.column_order)
                                              from etl.describe_table_schema(c.oid) s), '[]'::jsonb),
                       'identity', coalesce((select pg_catalog.jsonb_agg(pg_catalog.to_jsonb(k) order by k.key_ordinal)
                                               from etl.describe_table_identity(c.oid) k), '[]'::jsonb))
              into msg
              from pg_catalog.pg_class c
              join pg_catalog.pg_namespace n on n.oid = c.relnamespace
             where c.oid = cmd.objid;
            if msg is not null then
                perform pg_catalog.pg_logical_emit_message(true, 'supabase_etl_ddl', msg::text);
            end if;
        exception when others then
            raise warning 'etl.emit_schema_change_messages: no schema change message for table %: % (SQLSTATE %)',
                cmd.objid, sqlerrm, sqlstate;
        end;
    end loop;
end
$$;

drop event trigger if exists supabase_etl_ddl_message_trigger;

create event trigger supabase_etl_ddl_message_trigger
    on ddl_command_end
    when tag in ('ALTER TABLE')
    execute function etl.emit_schema_change_messages();
