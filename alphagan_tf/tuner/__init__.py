"""Black-box search baselines over the AlphaGAN genotypes with KerasTuner.

Three parts, as KerasTuner separates them:
- `space.py`: what is searched, the generator space as a `keras_tuner.HyperModel`
  (one `hp.Choice` per edge) and the conversion between its values and `Genotype`;
- `objective.py`: what a trial costs and returns, a short retrain of the sampled
  genotype (`gan/train/loop.run_training`) scored by FID (lower is better) and IS;
- `tuners.py`: how it is searched, KerasTuner's random / Bayesian / Hyperband oracles
  with a `run_trial` that retrains;
- `report.py`: what a run leaves behind, the trial table (CSV, plot), failed trials with
  their error, and the best genotype as our JSON.
`alphagan_tf/tune.py` is the driver; `demo_classifier.py` makes the digits classifier
whose features the demo config's FID uses.

Importing this package does not import keras_tuner (or TensorFlow); its submodules do.
"""
