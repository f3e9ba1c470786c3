"""Example orderhooks handler plugin: packing slips, tracking notices and refund notes."""
