-- The audit trail (FHIR AuditEvent-shaped): one row per read, write, export and denial, appended only.
-- Each row's hash covers its content and the previous row's hash, so an edited, inserted or deleted row
-- breaks the chain from there on (dxflow audit verify); a trigger refuses updates and deletes.
CREATE TABLE dxflow_audit (
  seq          bigint PRIMARY KEY,
  recorded_at  timestamptz NOT NULL,
  event        jsonb NOT NULL,
  prev_hash    text NOT NULL,
  hash         text NOT NULL
);

CREATE FUNCTION dxflow_audit_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'dxflow_audit is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER dxflow_audit_no_change BEFORE UPDATE OR DELETE ON dxflow_audit
  FOR EACH ROW EXECUTE FUNCTION dxflow_audit_append_only();
