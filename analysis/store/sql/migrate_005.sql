-- Schema version 5: the user's own verdicts and the optional ImageNet-X factors.
-- reviews: one verdict per reviewer and error (model, dataset, image), written only by analysis.store.reviews (the
-- dashboard's review form, `reviews import`); `build` never touches it. The verdict is an error category id of
-- analysis.taxonomy.categories or 'label_wrong'; prediction and file_name record what was reviewed.
CREATE TABLE IF NOT EXISTS reviews (
    reviewer VARCHAR NOT NULL, reviewed_at TIMESTAMP NOT NULL, model_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL,
    image_id INTEGER NOT NULL, file_name VARCHAR NOT NULL, prediction SMALLINT NOT NULL, verdict VARCHAR NOT NULL,
    note VARCHAR NOT NULL DEFAULT ''
);
-- imagenet_x: ImageNet-X annotations of imagenet-val images (CC BY-NC 4.0), loaded by `build` when the imagenet-x
-- package is installed: the factors the annotator marked, the top one, and the annotator's justification.
CREATE TABLE IF NOT EXISTS imagenet_x (
    image_id INTEGER NOT NULL, file_name VARCHAR NOT NULL, class_id SMALLINT NOT NULL, factors VARCHAR[] NOT NULL,
    top_factor VARCHAR, justification VARCHAR NOT NULL, one_word VARCHAR NOT NULL
);
