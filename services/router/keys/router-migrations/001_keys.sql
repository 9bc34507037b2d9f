-- The router's own tables (docs/keys.md): teams, virtual API keys and the spend ledger.
-- Recorded in promptmesh_router_schema_migrations, apart from the templates service's.

CREATE TABLE promptmesh_teams (
  id text PRIMARY KEY,
  name text NOT NULL,
  budget_micro_usd bigint CHECK (budget_micro_usd > 0),
  budget_period text CHECK (budget_period IN ('day', 'month')),
  rpm integer CHECK (rpm > 0),
  tpm bigint CHECK (tpm > 0),
  max_concurrent integer CHECK (max_concurrent > 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((budget_micro_usd IS NULL) = (budget_period IS NULL))
);

CREATE TABLE promptmesh_keys (
  id text PRIMARY KEY,
  name text NOT NULL,
  -- The first characters of the secret, for recognition; never enough to use it.
  prefix text NOT NULL,
  -- Only the SHA-256 of the secret is stored.
  sha256 text NOT NULL UNIQUE,
  -- After a rotation: the old secret's hash, valid until previous_valid_until.
  previous_sha256 text UNIQUE,
  previous_valid_until timestamptz,
  scopes text[] NOT NULL,
  models text[],
  rpm integer CHECK (rpm > 0),
  tpm bigint CHECK (tpm > 0),
  max_concurrent integer CHECK (max_concurrent > 0),
  budget_micro_usd bigint CHECK (budget_micro_usd > 0),
  budget_period text CHECK (budget_period IN ('day', 'month')),
  team text REFERENCES promptmesh_teams (id),
  expires_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- Revoked keys stay (soft delete): the spend ledger names them.
  revoked_at timestamptz,
  CHECK ((budget_micro_usd IS NULL) = (budget_period IS NULL))
);
CREATE INDEX promptmesh_keys_team ON promptmesh_keys (team);

-- One row per billed call, written once: call_id is the router's own id for the call, so a
-- retried flush inserts nothing twice (ON CONFLICT DO NOTHING).
CREATE TABLE promptmesh_spend (
  call_id text PRIMARY KEY,
  at timestamptz NOT NULL,
  key_id text NOT NULL,
  team text,
  provider text NOT NULL,
  model text NOT NULL,
  prompt text,
  micro_usd bigint NOT NULL CHECK (micro_usd >= 0),
  input_tokens bigint NOT NULL DEFAULT 0,
  cached_input_tokens bigint NOT NULL DEFAULT 0,
  output_tokens bigint NOT NULL DEFAULT 0,
  cache_hit boolean NOT NULL DEFAULT false
);
CREATE INDEX promptmesh_spend_at ON promptmesh_spend (at);
CREATE INDEX promptmesh_spend_key_at ON promptmesh_spend (key_id, at);
CREATE INDEX promptmesh_spend_team_at ON promptmesh_spend (team, at) WHERE team IS NOT NULL;
