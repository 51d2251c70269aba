-- GIN companions for FerretDB's indexes, in the PostgreSQL database FerretDB stores in.
--
-- FerretDB v1 turns an index on field f into a btree on (_jsonb -> 'f'), but pushes an
-- equality filter on f down as (_jsonb -> 'f') @> '<value>', an operator btree cannot
-- serve: every find, count and conditional update by task_id scans the whole table
-- (internal/backends/postgresql/query.go). A GIN index on the same expression serves
-- @>. This trigger gives each FerretDB index such a companion for each of its fields,
-- so the lookups by task_id that every api call and every worker report make cost the
-- same with 100 tasks as with a million, as they do on MongoDB. It changes how
-- PostgreSQL finds rows, never which rows.
--
-- Applied by scripts/infra.sh to FerretDB's database (idempotent). Custom plans are
-- forced because FerretDB passes the field name as a statement parameter, and only a
-- plan made for the actual name can match an index on (_jsonb -> 'task_id').

SET client_min_messages = warning;

CREATE OR REPLACE FUNCTION taskmill_add_gin_companions(btree oid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  tbl regclass;
  expr text;
BEGIN
  SELECT i.indrelid INTO tbl
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
   WHERE i.indexrelid = btree AND a.amname = 'btree';
  IF tbl IS NULL THEN
    RETURN;  -- not a btree (e.g. one of our own GIN indexes)
  END IF;
  FOR k IN 1 .. (SELECT indnkeyatts FROM pg_index WHERE indexrelid = btree) LOOP
    expr := pg_get_indexdef(btree, k, true);
    CONTINUE WHEN expr NOT LIKE '(_jsonb -> %';  -- only FerretDB's field expressions
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING gin ((%s) jsonb_path_ops) '
                   'WITH (fastupdate = off)',
                   'gin_' || md5(tbl::text || expr), tbl, expr);
  END LOOP;
END $$;

CREATE OR REPLACE FUNCTION taskmill_gin_companions_trigger() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
  created record;
BEGIN
  FOR created IN SELECT objid FROM pg_event_trigger_ddl_commands()
                  WHERE command_tag = 'CREATE INDEX' AND object_type = 'index' LOOP
    PERFORM taskmill_add_gin_companions(created.objid);
  END LOOP;
END $$;

DROP EVENT TRIGGER IF EXISTS taskmill_gin_companions;
CREATE EVENT TRIGGER taskmill_gin_companions ON ddl_command_end WHEN TAG IN ('CREATE INDEX')
  EXECUTE FUNCTION taskmill_gin_companions_trigger();

-- Without fastupdate a GIN index takes each new entry into its tree at once. With it
-- (PostgreSQL's default) entries wait in a pending list that every lookup reads through
-- first: every change of a task adds an entry to each of them, so under load each
-- lookup by task_id read thousands (2-4 ms instead of a tenth of that).
SELECT format('ALTER INDEX %s SET (fastupdate = off)', c.oid::regclass)
  FROM pg_class c JOIN pg_am a ON a.oid = c.relam
 WHERE a.amname = 'gin' AND c.relname LIKE 'gin\_%' \gexec

-- Indexes FerretDB made before this file was applied.
SELECT taskmill_add_gin_companions(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast');

SELECT format('ALTER DATABASE %I SET plan_cache_mode = force_custom_plan', current_database()) \gexec
