"""The Fashion-MNIST groups study: test error against N for every conv type (``python -m experiments.fmnist_study``)."""
