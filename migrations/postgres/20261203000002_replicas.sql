-- PostgreSQL form of ../20261203000002_replicas.sql (see ../README.md): the pair's replicas seen
-- recently, one row per daemon process.
CREATE TABLE replicas (
    holder  TEXT COLLATE "C" PRIMARY KEY,
    host    TEXT COLLATE "C" NOT NULL,
    pid     BIGINT NOT NULL,
    role    TEXT COLLATE "C" NOT NULL CHECK (role IN ('leader', 'standby')),
    seen_at TEXT COLLATE "C" NOT NULL
);
