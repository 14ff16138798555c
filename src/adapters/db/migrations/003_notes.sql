-- The clinical note of a case: stored as an object (it may hold PHI), referenced here with its hash.
CREATE TABLE dxflow_note (
  case_id     text PRIMARY KEY REFERENCES dxflow_case (id) ON DELETE CASCADE,
  object_key  text NOT NULL,
  sha256      text NOT NULL,
  format      text NOT NULL CHECK (format IN ('text', 'json')),
  bytes       bigint NOT NULL
);
