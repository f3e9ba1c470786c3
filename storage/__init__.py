"""Storage: how both processes reach Redis and keep their records there."""
