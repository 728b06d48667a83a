"""SoniqueBay assets: a Dagster data platform that turns a music folder into a searchable catalog."""

__version__ = "0.1.0"
