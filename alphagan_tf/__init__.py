"""alphagan_tf: differentiable architecture search for GAN generators (AlphaGAN)
and for text representation (TextNAS) on TensorFlow 2 / Keras 3.

Importing the package is cheap: TensorFlow, tfds, TF-Hub and keras-tuner are
imported only by the modules that need them.
"""

__version__ = "0.1.0"
