-- PostgreSQL form of ../20261203000001_leases.sql (see ../README.md): one row per lease of the
-- pair (its schema), with the epoch that fences page commits.
CREATE TABLE leases (
    name        TEXT COLLATE "C" PRIMARY KEY,
    holder      TEXT COLLATE "C" NOT NULL,
    host        TEXT COLLATE "C" NOT NULL,
    pid         BIGINT NOT NULL,
    epoch       BIGINT NOT NULL CHECK (epoch >= 1),
    acquired_at TEXT COLLATE "C" NOT NULL,
    renewed_at  TEXT COLLATE "C" NOT NULL,
    expires_at  TEXT COLLATE "C" NOT NULL
);
