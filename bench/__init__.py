"""`make bench`: orderhooks measured against baselines run side by side.

Every figure is taken in the same run as its baseline, on loopback only, each
Redis-backed run with its own embedded redis-server (`appendfsync always`, as
`orderhooks dev` runs it). `python -m bench --help` lists the knobs.
"""
