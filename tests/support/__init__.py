"""Shared test set-up: one place each for stacks, signed deliveries, payloads, stored events and metrics."""
