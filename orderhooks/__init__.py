"""orderhooks: verified, durable, de-duplicated Genstore order webhooks."""

__version__ = "0.1.0"
