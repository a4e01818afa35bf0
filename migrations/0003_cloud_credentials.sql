-- Cloud credentials users bring (BYOC): sealed by the credential vault
-- (AES-256-GCM envelope `v1.<kid>.<nonce>.<ciphertext>`, bound to its row by
-- associated data), one per user and provider. `masked` is what lists show.
CREATE TABLE cloud_credentials (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    provider TEXT NOT NULL CHECK (provider IN ('hetzner', 'scaleway')),
    secret_envelope TEXT NOT NULL,
    masked TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (user_id, provider)
);
