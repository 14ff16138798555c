-- DICOM instances received over DIMSE (C-STORE) or DICOMweb (STOW-RS), grouped into studies: a study
-- becomes one case once its instances stop arriving for the configured quiet period.
CREATE TABLE dxflow_dicom_study (
  study_uid   text PRIMARY KEY,
  first_at    timestamptz NOT NULL DEFAULT now(),
  last_at     timestamptz NOT NULL DEFAULT now(),
  case_id     text REFERENCES dxflow_case (id) ON DELETE SET NULL,
  cased_at    timestamptz
);
CREATE INDEX dxflow_dicom_study_open_idx ON dxflow_dicom_study (last_at) WHERE case_id IS NULL;

-- One row per instance: the same SOP Instance with the same bytes again changes nothing; with other
-- bytes it replaces the stored copy.
CREATE TABLE dxflow_dicom_instance (
  study_uid         text NOT NULL REFERENCES dxflow_dicom_study (study_uid) ON DELETE CASCADE,
  sop_instance_uid  text NOT NULL,
  series_uid        text NOT NULL,
  sop_class_uid     text NOT NULL,
  modality          text,
  instance_number   integer,
  sha256            text NOT NULL,
  object_key        text NOT NULL,
  bytes             bigint NOT NULL,
  received_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (study_uid, sop_instance_uid)
);
