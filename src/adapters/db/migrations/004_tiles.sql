-- Whole-slide fan-out (DESIGN.md §1.1): a slide stage plans its tiles once, tile-batch jobs score them
-- anywhere, and the stage pools the scores when the last batch is in.

-- One plan per (case, stage): the tile grid and the model, and the batch counters the last batch reads
-- to know that it is the last. The tile coordinates themselves are an object (tiles_key), read by range.
CREATE TABLE dxflow_tile_plan (
  case_id        text NOT NULL REFERENCES dxflow_case (id) ON DELETE CASCADE,
  stage          text NOT NULL,
  uses           text NOT NULL,
  seq            integer NOT NULL,
  model_name     text NOT NULL,
  model_version  text NOT NULL,
  model_sha256   text NOT NULL,
  tiles_key      text NOT NULL,
  grid           jsonb NOT NULL,
  batch_size     integer NOT NULL CHECK (batch_size > 0),
  tiles_total    integer NOT NULL CHECK (tiles_total >= 0),
  batches_total  integer NOT NULL CHECK (batches_total >= 0),
  tiles_done     integer NOT NULL DEFAULT 0,
  batches_done   integer NOT NULL DEFAULT 0,
  created_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz,
  PRIMARY KEY (case_id, stage)
);

-- A batch is counted once: its row is inserted in the same transaction as its scores and the counter.
CREATE TABLE dxflow_tile_batch (
  case_id      text NOT NULL,
  stage        text NOT NULL,
  batch        integer NOT NULL,
  tiles        integer NOT NULL,
  worker       text NOT NULL,
  duration_ms  double precision NOT NULL,
  finished_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (case_id, stage, batch),
  FOREIGN KEY (case_id, stage) REFERENCES dxflow_tile_plan (case_id, stage) ON DELETE CASCADE
);

-- One score per tile and model version: a batch run twice (a worker lost mid-batch) writes nothing new.
CREATE TABLE dxflow_tile_score (
  case_id       text NOT NULL,
  stage         text NOT NULL,
  model_sha256  text NOT NULL,
  tile          integer NOT NULL,
  col           integer NOT NULL,
  row           integer NOT NULL,
  score         real NOT NULL,
  attention     real,
  PRIMARY KEY (case_id, stage, model_sha256, tile),
  FOREIGN KEY (case_id, stage) REFERENCES dxflow_tile_plan (case_id, stage) ON DELETE CASCADE
);
