"""The DuckDB schema as an ordered list of migrations.

A database records the number of migrations applied to it in `meta.schema_version`; opening a database applies
the missing ones in one transaction each. Never edit a released migration: append a new one.
"""

MIGRATIONS: list[list[str]] = [
    # 1: the data model of docs/ARCHITECTURE.md
    [
        "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
        "CREATE SEQUENCE image_ids START 1",
        """CREATE TABLE images (
            id BIGINT PRIMARY KEY DEFAULT nextval('image_ids'),
            relpath VARCHAR NOT NULL UNIQUE,
            sha256 VARCHAR,
            size BIGINT,
            mtime_ns BIGINT,
            width INTEGER,
            height INTEGER,
            status VARCHAR NOT NULL CHECK (status IN ('ok', 'error', 'missing')),
            error VARCHAR,
            added_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        """CREATE TABLE classes (
            id INTEGER PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            prompts VARCHAR[])""",
        """CREATE TABLE models (
            model_id VARCHAR PRIMARY KEY,
            spec VARCHAR NOT NULL,
            dim INTEGER NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        """CREATE TABLE predictions (
            image_id BIGINT NOT NULL,
            round INTEGER NOT NULL,
            source VARCHAR NOT NULL CHECK (source IN ('zeroshot', 'teacher')),
            model_id VARCHAR NOT NULL,
            class_ids INTEGER[] NOT NULL,
            probs FLOAT[] NOT NULL,
            label INTEGER NOT NULL,
            confidence FLOAT NOT NULL,
            margin FLOAT NOT NULL,
            entropy FLOAT NOT NULL,
            PRIMARY KEY (image_id, round))""",
        """CREATE TABLE labels (
            image_id BIGINT PRIMARY KEY,
            class_id INTEGER,
            source VARCHAR NOT NULL CHECK (source IN ('human', 'pseudo')),
            round INTEGER,
            updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        "CREATE SEQUENCE label_event_ids START 1",
        """CREATE TABLE label_events (
            id BIGINT PRIMARY KEY DEFAULT nextval('label_event_ids'),
            image_id BIGINT NOT NULL,
            from_class INTEGER,
            from_source VARCHAR,
            to_class INTEGER,
            to_source VARCHAR,
            actor VARCHAR NOT NULL,
            changed_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        """CREATE TABLE rounds (
            id INTEGER PRIMARY KEY,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            status VARCHAR NOT NULL,
            config VARCHAR,
            metrics VARCHAR)""",
    ],
    # 2: rounds need the zero-shot classifier without loading the model; background jobs
    [
        "ALTER TABLE models ADD COLUMN logit_scale FLOAT",
        """CREATE TABLE class_weights (
            model_id VARCHAR NOT NULL,
            class_id INTEGER NOT NULL,
            vec FLOAT[] NOT NULL,
            PRIMARY KEY (model_id, class_id))""",
        "CREATE SEQUENCE job_ids START 1",
        """CREATE TABLE jobs (
            id BIGINT PRIMARY KEY DEFAULT nextval('job_ids'),
            kind VARCHAR NOT NULL,
            status VARCHAR NOT NULL
                CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
            progress FLOAT NOT NULL DEFAULT 0,
            eta_seconds FLOAT,
            message VARCHAR,
            error VARCHAR,
            config VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            started_at TIMESTAMP,
            finished_at TIMESTAMP)""",
    ],
    # 3: a record of every export (what was written where, with which filters)
    [
        "CREATE SEQUENCE export_ids START 1",
        """CREATE TABLE exports (
            id BIGINT PRIMARY KEY DEFAULT nextval('export_ids'),
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            format VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            filters VARCHAR NOT NULL,
            counts VARCHAR NOT NULL)""",
    ],
    # 4: per round, out-of-sample probabilities of the human-labeled images (the label-mistake rule reads them) and
    # every image's outlier score ("fits no class")
    [
        """CREATE TABLE crossfit_probs (
            image_id BIGINT NOT NULL,
            round INTEGER NOT NULL,
            class_ids INTEGER[] NOT NULL,
            probs FLOAT[] NOT NULL,
            PRIMARY KEY (image_id, round))""",
        """CREATE TABLE outlier_scores (
            image_id BIGINT NOT NULL,
            round INTEGER NOT NULL,
            score FLOAT NOT NULL,
            PRIMARY KEY (image_id, round))""",
    ],
    # 5: the map's 2-D layouts, one per model and method, with the embeddings they were computed over
    [
        """CREATE TABLE layouts (
            model_id VARCHAR NOT NULL,
            method VARCHAR NOT NULL CHECK (method IN ('pca', 'umap')),
            embeddings_key VARCHAR NOT NULL,
            seconds FLOAT,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (model_id, method))""",
        """CREATE TABLE layout_points (
            model_id VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            image_id BIGINT NOT NULL,
            x FLOAT NOT NULL,
            y FLOAT NOT NULL,
            PRIMARY KEY (model_id, method, image_id))""",
    ],
    # 6: what the gallery shows of each image, kept by every write (storage/gallery.py); filled on first read
    [
        """CREATE TABLE gallery_rows (
            image_id BIGINT NOT NULL,
            relpath VARCHAR NOT NULL,
            sha256 VARCHAR,
            status VARCHAR NOT NULL,
            error VARCHAR,
            predicted INTEGER,
            confidence FLOAT,
            zero_shot INTEGER,
            label INTEGER,
            label_source VARCHAR,
            disagree BOOLEAN NOT NULL)""",
    ],
    # 7: labels a person gave again as they were (confirmed): never again a possible label mistake in that class
    [
        """CREATE TABLE label_confirmations (
            image_id BIGINT PRIMARY KEY,
            class_id INTEGER,
            actor VARCHAR NOT NULL,
            confirmed_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
    ],
    # 8: the random audit (engine/project/audit.py): each audit draws, in the order of one seeded permutation of the
    # images it started with, under one class list; a round the audit measured worse than the one before is held
    [
        """CREATE TABLE audits (
            id INTEGER PRIMARY KEY,
            started_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            seed BIGINT NOT NULL,
            class_ids INTEGER[] NOT NULL,
            population BIGINT NOT NULL,
            last_image_id BIGINT NOT NULL)""",
        """CREATE TABLE audit_draws (
            audit_id INTEGER NOT NULL,
            image_id BIGINT NOT NULL,
            position BIGINT NOT NULL,
            labelled_before BOOLEAN NOT NULL,
            drawn_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (audit_id, image_id))""",
        "ALTER TABLE rounds ADD COLUMN held BOOLEAN DEFAULT FALSE",
    ],
    # 9: each class's own key on the page (one letter or digit; NULL = none): the first nine classes keep 1-9, the
    # keys they had when a key was a class's position
    [
        "ALTER TABLE classes ADD COLUMN hotkey VARCHAR",
        """UPDATE classes SET hotkey = CAST(numbered.position AS VARCHAR)
           FROM (SELECT id, row_number() OVER (ORDER BY id) AS position FROM classes) AS numbered
           WHERE classes.id = numbered.id AND numbered.position <= 9""",
    ],
    # 10: a label belongs to the content it was given for: each label keeps the image's sha256 as it was then, and
    # each label change the sha256 of the label it replaced (undo gives it back). A label made before this is taken
    # as given for the content its image has now.
    [
        "ALTER TABLE labels ADD COLUMN sha256 VARCHAR",
        "UPDATE labels SET sha256 = i.sha256 FROM images i WHERE i.id = labels.image_id",
        "ALTER TABLE label_events ADD COLUMN from_sha256 VARCHAR",
        """UPDATE label_events SET from_sha256 = i.sha256 FROM images i
           WHERE i.id = label_events.image_id AND label_events.from_source IS NOT NULL""",
    ],
    # 11: multi-label projects (meta label_kind): a label is a set of tags (class ids) plus the tags a person looked
    # at, "has car, has no person" being tags [car] looked at [car, person]; class_id is then NULL. The history
    # carries both, so undo gives a tag set back. Single-label rows keep them NULL.
    [
        "ALTER TABLE labels ADD COLUMN tags INTEGER[]",
        "ALTER TABLE labels ADD COLUMN looked_at INTEGER[]",
        "ALTER TABLE label_events ADD COLUMN from_tags INTEGER[]",
        "ALTER TABLE label_events ADD COLUMN from_looked_at INTEGER[]",
        "ALTER TABLE label_events ADD COLUMN to_tags INTEGER[]",
        "ALTER TABLE label_events ADD COLUMN to_looked_at INTEGER[]",
    ],
    # 12: teams (engine/labels/team.py): the people of a project with their role; each person's own label of an
    # image, kept side by side with the others' (the image's label in `labels` is their consensus, or a reviewer's
    # decision); every review (approved or corrected, both classes kept); the images drawn for overlap (labelled by
    # at least two people), with the seed and share of the draw in meta
    [
        """CREATE TABLE people (
            name VARCHAR PRIMARY KEY,
            role VARCHAR NOT NULL CHECK (role IN ('labeler', 'reviewer')),
            added_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        """CREATE TABLE person_labels (
            image_id BIGINT NOT NULL,
            person VARCHAR NOT NULL,
            class_id INTEGER,
            sha256 VARCHAR,
            labelled_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (image_id, person))""",
        "CREATE SEQUENCE review_ids START 1",
        """CREATE TABLE reviews (
            id BIGINT PRIMARY KEY DEFAULT nextval('review_ids'),
            image_id BIGINT NOT NULL,
            labeler VARCHAR NOT NULL,
            reviewer VARCHAR NOT NULL,
            labelled_class INTEGER,
            decided_class INTEGER,
            approved BOOLEAN NOT NULL,
            reviewed_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        "CREATE TABLE overlap_images (image_id BIGINT PRIMARY KEY)",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)


def embeddings_table(model_id: str) -> str:
    """Name of the table holding one model's embeddings; each model gets its own FLOAT[d] column width."""
    if not model_id.isalnum():
        raise ValueError(f"model id must be alphanumeric, got {model_id!r}")
    return f"embeddings_{model_id}"
