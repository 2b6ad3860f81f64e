"""hostprep: reversible, verified Docker-socket access for Airflow workers on a fleet."""

__version__ = "0.1.0"
