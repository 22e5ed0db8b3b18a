"""Workstation toolchain: train, quantise, evaluate and package the classifier."""
