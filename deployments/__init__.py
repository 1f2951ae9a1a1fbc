"""Prefect deployments (prefect.yaml), environment files, and the demo that drives them locally."""
