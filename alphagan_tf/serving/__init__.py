"""Exporting the fixed generator: SavedModel for TF Serving, TFLite, and runners.

- `generator_guard`: what every way of running a generator refuses (z's batch, finiteness
  and magnitude, count's range, non-finite images), as graph ops and as numpy checks.
- `signatures`: the served functions (`serving_default`: z -> images; `generate`: seed,
  count -> images), their input checks, and `latents_for_seed` (stateless Philox).
- `savedmodel`: versioned, atomic SavedModel export (`export_saved_model`) through
  `keras.export.ExportArchive`, loadable by the TF1 session loader TF Serving uses.
- `warmup`: `assets.extra/tf_serving_warmup_requests` (PredictionLog records).
- `tflite`: conversion (none / float16 / dynamic / int8) and a LiteRT runner.
- `samplers`: one way to sample from either format (`load_generator`, `sample_images`).

The CLIs are `python -m alphagan_tf.export` and `python -m alphagan_tf.sample`; the TF
Serving config and client examples are in export/ at the repository root.
"""
