-- The prompt registry (src/llm/prompt-store.ts). A prompt version is immutable once created: a case
-- result names the prompt version it was produced with, and that name must keep meaning the same text.
-- A label (production, staging, …) points at one version of a prompt; promoting moves the label.

CREATE TABLE dxflow_prompt (
  name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  version     integer NOT NULL CHECK (version > 0),
  template    text NOT NULL,
  sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  created_by  text,
  PRIMARY KEY (name, version)
);

-- Enforced in the database as well as in the code, so that no tool and no hand-written UPDATE can
-- change what a recorded prompt version meant. Removing a version is refused for the same reason.
CREATE FUNCTION dxflow_prompt_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'prompt % version % is immutable; create a new version instead', OLD.name, OLD.version
    USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TRIGGER dxflow_prompt_immutable
  BEFORE UPDATE OR DELETE ON dxflow_prompt
  FOR EACH ROW EXECUTE FUNCTION dxflow_prompt_immutable();

CREATE TABLE dxflow_prompt_label (
  name        text NOT NULL,
  label       text NOT NULL CHECK (label ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  version     integer NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, label),
  FOREIGN KEY (name, version) REFERENCES dxflow_prompt (name, version)
);
