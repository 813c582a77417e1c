"""wna-gui: white-noise analysis of neural networks."""

__version__ = "0.1.0"
