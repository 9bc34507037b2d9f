-- The templates service's schema. Versions are immutable (a trigger refuses UPDATE and DELETE);
-- labels point at one version or a weighted split; every change gets a sequence number in
-- commit order (see core.ts) for the change feed.

CREATE TABLE templates (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name            text NOT NULL UNIQUE,
  latest_version  integer NOT NULL CHECK (latest_version >= 1),
  created_at      timestamptz NOT NULL DEFAULT now(),
  created_by      text NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  archived_at     timestamptz,
  archived_by     text
);

CREATE TABLE template_versions (
  template_id  bigint NOT NULL REFERENCES templates (id),
  version      integer NOT NULL CHECK (version >= 1),
  type         text NOT NULL CHECK (type IN ('text', 'chat')),
  template     jsonb NOT NULL,
  variables    text[] NOT NULL,
  description  text,
  model        text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  created_by   text NOT NULL,
  PRIMARY KEY (template_id, version)
);

CREATE FUNCTION promptmesh_refuse_version_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'template versions are immutable';
END
$$;

CREATE TRIGGER template_versions_immutable
  BEFORE UPDATE OR DELETE ON template_versions
  FOR EACH ROW EXECUTE FUNCTION promptmesh_refuse_version_change();

-- split: [{"version": 3, "weight": 90}, {"version": 4, "weight": 10}], weights summing to 100.
CREATE TABLE template_labels (
  template_id  bigint NOT NULL REFERENCES templates (id),
  label        text NOT NULL,
  split        jsonb NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  updated_by   text NOT NULL,
  PRIMARY KEY (template_id, label)
);

CREATE TABLE template_label_history (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  template_id  bigint NOT NULL REFERENCES templates (id),
  label        text NOT NULL,
  from_split   jsonb,
  to_split     jsonb NOT NULL,
  actor        text NOT NULL,
  at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX template_label_history_by_label ON template_label_history (template_id, label, id);

CREATE TABLE template_changes (
  seq      bigserial PRIMARY KEY,
  name     text NOT NULL,
  kind     text NOT NULL CHECK (kind IN ('created', 'version', 'label', 'archived')),
  version  integer,
  label    text,
  at       timestamptz NOT NULL DEFAULT now()
);
