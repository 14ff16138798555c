-- A routing stage can skip the stages of the branches it did not take; a skipped stage is recorded like
-- a checkpoint, so that a resumed case skips it again.
ALTER TABLE dxflow_stage_run DROP CONSTRAINT dxflow_stage_run_status_check;
ALTER TABLE dxflow_stage_run ADD CONSTRAINT dxflow_stage_run_status_check CHECK (status IN ('succeeded', 'failed', 'skipped'));

-- Events that created cases (object-store notifications, watched folders): one case per object version,
-- however often the event is delivered.
CREATE TABLE dxflow_event (
  source       text NOT NULL,
  bucket       text NOT NULL,
  object_key   text NOT NULL,
  version      text NOT NULL,
  case_id      text REFERENCES dxflow_case (id) ON DELETE SET NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (source, bucket, object_key, version)
);
