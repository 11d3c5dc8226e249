"""Numerical helpers: conjugate gradient, parameter vectors, masked statistics."""
