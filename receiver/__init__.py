"""The HTTP edge: verification, intake and the read API."""
