-- Cases, their inputs, per-stage checkpoints and findings. One dialect (PostgreSQL) for PGlite and
-- PostgreSQL alike; every statement must run on both.

CREATE TABLE dxflow_case (
  id            text PRIMARY KEY,
  tenant        text NOT NULL DEFAULT 'local',
  pipeline      text NOT NULL,
  pipeline_version integer NOT NULL,
  status        text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
  metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
  error_code    text,
  error_message text,
  error_hint    text,
  error_stage   text,
  lease_owner   text,
  lease_until   timestamptz,
  attempts      integer NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  completed_at  timestamptz
);
CREATE INDEX dxflow_case_status_idx ON dxflow_case (status, updated_at);

CREATE TABLE dxflow_input (
  case_id     text PRIMARY KEY REFERENCES dxflow_case (id) ON DELETE CASCADE,
  object_key  text NOT NULL,
  sha256      text NOT NULL,
  bytes       bigint NOT NULL,
  media_type  text NOT NULL,
  mime_type   text NOT NULL,
  width       integer,
  height      integer
);

-- One row per (case, stage): the checkpoint. A re-run reads the stored output instead of running again.
CREATE TABLE dxflow_stage_run (
  case_id      text NOT NULL REFERENCES dxflow_case (id) ON DELETE CASCADE,
  stage        text NOT NULL,
  uses         text NOT NULL,
  seq          integer NOT NULL,
  status       text NOT NULL CHECK (status IN ('succeeded', 'failed')),
  attempts     integer NOT NULL,
  output       jsonb,
  duration_ms  double precision NOT NULL,
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz NOT NULL,
  PRIMARY KEY (case_id, stage)
);

CREATE TABLE dxflow_finding (
  case_id       text NOT NULL REFERENCES dxflow_case (id) ON DELETE CASCADE,
  stage         text NOT NULL,
  code          text NOT NULL,
  label         text NOT NULL,
  probability   double precision NOT NULL,
  model_name    text,
  model_version text,
  model_kind    text,
  model_sha256  text,
  PRIMARY KEY (case_id, stage, code)
);

CREATE TABLE dxflow_api_key (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  key_sha256  text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
